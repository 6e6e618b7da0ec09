"""API tokens: random, shown once, stored as SHA-256 digests, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import OuterRef, QuerySet
from django.utils import timezone

from orders.models import ApiToken
from orders.permissions import grant, permission_held

TOKEN_PREFIX = "olc_"  # noqa: S105 (a public marker, not a secret)
LAST_USED_PRECISION = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_create(*, user: AbstractBaseUser, name: str = "") -> str:
    """Create a token for `user` and return it in clear; only its digest is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, name=name, prefix=token[:10], key_hash=_digest(token))
    return token


def token_authenticate(token: str, *, permissions: Iterable[str] = ()) -> AbstractBaseUser | None:
    """The active user a live token belongs to, or None; in the same query, which of
    `permissions` the user holds, kept as `user.api_permissions` (a frozenset)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    digest = _digest(token)
    permissions = list(permissions)
    held = {f"held_{i}": permission_held(OuterRef("user_id"), p) for i, p in enumerate(permissions)}
    row = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=digest, revoked_at__isnull=True)
        .annotate(**held)
        .first()
    )
    if row is None or not hmac.compare_digest(row.key_hash, digest) or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
    user = row.user
    user.api_permissions = frozenset(  # type: ignore[attr-defined]
        p for i, p in enumerate(permissions) if grant(user, getattr(row, f"held_{i}"))
    )
    return user


def token_revoke(*, tokens: QuerySet[ApiToken]) -> int:
    """End these tokens now; the rows stay as the record of who had access. Returns how many."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
