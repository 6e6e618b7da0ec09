"""The groups people are put in, and the order permissions each holds."""

from __future__ import annotations

from typing import Any

REVIEWERS = "Reviewers"
API_CLIENTS = "API clients"
ACTION_PERMISSIONS = ["approve_order", "cancel_order", "change_order_address", "view_order"]
GROUPS = {
    REVIEWERS: ACTION_PERMISSIONS,
    API_CLIENTS: [*ACTION_PERMISSIONS, "add_order"],
}


def ensure_groups() -> None:
    """Create the groups with their permissions if missing (the migration does it on install)."""
    from django.contrib.auth.models import Group, Permission

    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="orders", codename__in=codenames))


def permission_held(user_ref: Any, permission: str) -> Any:
    """An Exists() expression: the user `user_ref` (a pk or an OuterRef) holds `permission`
    itself or through a group, as Django's ModelBackend counts it (before is_active and
    is_superuser, which the caller applies)."""
    from django.contrib.auth.models import Permission
    from django.db.models import Exists, Q

    app_label, _, codename = permission.partition(".")
    return Exists(
        Permission.objects.filter(content_type__app_label=app_label, codename=codename).filter(
            Q(user=user_ref) | Q(group__user=user_ref)
        )
    )


def grant(user: Any, held: bool) -> bool:
    """The verdict for a permission, given whether the user holds it (`permission_held`)."""
    return bool(user.is_active and (user.is_superuser or held))
