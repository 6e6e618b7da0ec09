"""The console's websocket stops with the right to see orders: signing out, a session ended
elsewhere, a deactivated user or a revoked `orders.view_order` closes it, and nothing more is sent.

Real ASGI application, real session cookie, real database; order changes come through the feed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.test import Client

from orders.permissions import REVIEWERS, ensure_groups
from orders.tests.factories import make_orders
from orders.tests.security.helpers import signed_in, user_with
from orders.tests.websocket import changes_until, next_output, review_socket, session_cookie

SIGNED_OUT = 4401
NO_PERMISSION = 4403


@pytest.fixture(autouse=True)
def fast_feed(settings: Any) -> None:
    settings.REVIEW_FEED_INTERVAL_SECONDS = 0.05


def _after_one_change(client: Client, act: Callable[[], Any], *, change_after: bool) -> list[dict[str, Any] | None]:
    """Opens the socket as `client`, sees one change arrive, runs `act`, then (if `change_after`)
    changes another order; returns the next message and whatever follows it within a second."""

    async def scenario() -> list[dict[str, Any] | None]:
        async with review_socket(session_cookie(client)) as socket:
            await sync_to_async(make_orders)(1, prefix="before", numbered=True)
            seen = await changes_until(socket, lambda ids: "before-00000" in ids, timeout=5)
            assert [change["order_id"] for change in seen] == ["before-00000"]
            await sync_to_async(act)()
            if change_after:
                await sync_to_async(make_orders)(1, prefix="after", numbered=True)
            first = await next_output(socket, timeout=5)
            if not change_after:
                await sync_to_async(make_orders)(1, prefix="after", numbered=True)
            return [first, await next_output(socket, timeout=1)]

    return async_to_sync(scenario)()


def _closed_with(code: int, outputs: list[dict[str, Any] | None]) -> None:
    first, then = outputs
    assert first == {"type": "websocket.close", "code": code}, f"expected the socket closed, got {first}"
    assert then is None, f"sent after the close: {then}"


def test_signing_out_closes_the_websocket_at_once(transactional_db: None) -> None:
    client = signed_in(user_with("watcher", "view_order"))

    def sign_out() -> None:
        assert client.post("/accounts/logout/").status_code == 302

    # No change comes between the sign-out and the close: the sign-out itself closes the socket.
    _closed_with(SIGNED_OUT, _after_one_change(client, sign_out, change_after=False))


def test_a_session_ended_elsewhere_closes_the_websocket_before_the_next_change(transactional_db: None) -> None:
    # Signed out through another web process, expired or removed: the session is gone from the store.
    client = signed_in(user_with("watcher", "view_order"))
    key = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    outputs = _after_one_change(client, lambda: Session.objects.filter(session_key=key).delete(), change_after=True)
    _closed_with(SIGNED_OUT, outputs)


def test_a_deactivated_user_gets_no_more_changes(transactional_db: None) -> None:
    user = user_with("watcher", "view_order")
    outputs = _after_one_change(
        signed_in(user), lambda: User.objects.filter(pk=user.pk).update(is_active=False), change_after=True
    )
    _closed_with(SIGNED_OUT, outputs)


def test_a_password_changed_elsewhere_ends_the_other_sessions_sockets(transactional_db: None) -> None:
    user = user_with("watcher", "view_order")

    def change_password() -> None:
        fresh = User.objects.get(pk=user.pk)
        fresh.set_password("an-entirely-new-pw-456")
        fresh.save()

    _closed_with(SIGNED_OUT, _after_one_change(signed_in(user), change_password, change_after=True))


@pytest.mark.parametrize("how", ["permission removed", "taken out of Reviewers"])
def test_a_revoked_view_permission_gets_no_more_changes(transactional_db: None, how: str) -> None:
    ensure_groups()
    reviewers = Group.objects.get(name=REVIEWERS)
    if how == "permission removed":
        user = user_with("watcher", "view_order")
        revoke: Callable[[], Any] = user.user_permissions.clear
    else:
        user = user_with("watcher")
        user.groups.add(reviewers)
        revoke = lambda: user.groups.remove(reviewers)  # noqa: E731
    _closed_with(NO_PERMISSION, _after_one_change(signed_in(user), revoke, change_after=True))


def test_a_user_who_keeps_the_right_keeps_receiving(transactional_db: None) -> None:
    client = signed_in(user_with("watcher", "view_order"))
    first, _ = _after_one_change(client, lambda: None, change_after=True)
    assert first is not None and first["type"] == "websocket.send" and "after-00000" in first["text"]
