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


def holds_permission(user: Any, permission: str) -> bool:
    """`user.has_perm(permission)` as Django's ModelBackend answers it, in one query.

    has_perm loads and caches every permission the user and their groups hold (two queries and
    a set built in Python), which a view that checks a single permission once does not need. The
    API checks one per request, so this is its way.
    """
    from django.contrib.auth.models import Permission
    from django.db.models import Q

    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    app_label, _, codename = permission.partition(".")
    return (
        Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        .filter(Q(user=user) | Q(group__user=user))
        .exists()
    )
