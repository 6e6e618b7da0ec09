"""The groups people are put in, and the order permissions each holds."""

from __future__ import annotations

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
