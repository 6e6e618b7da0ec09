"""The order permissions, the one place their names are written out, and the groups that hold them.

Code asks for a permission by its constant here (`has_perm(APPROVE_ORDER)`); the API and the
console find an action's permission in `ACTION_PERMISSIONS`. Templates may use Django's
`perms.orders.<codename>`. Migrations keep their own copies, as migrations must.
"""

from __future__ import annotations

from typing import Any

from lifecycle.states import Action

APP_LABEL = "orders"

VIEW_ORDER = "orders.view_order"
ADD_ORDER = "orders.add_order"
CHANGE_ORDER = "orders.change_order"
APPROVE_ORDER = "orders.approve_order"
CANCEL_ORDER = "orders.cancel_order"
CHANGE_ORDER_ADDRESS = "orders.change_order_address"
CHANGE_APITOKEN = "orders.change_apitoken"  # revoking a token is changing it
REASSIGN_ORDER = "orders.reassign_order"  # take over another reviewer's claim
VIEW_METRICS = "orders.view_metrics"  # GET /metrics (a monitoring system's token)
ADD_NOTE = "orders.add_note"  # a reviewer's note on an order (notes are never changed or deleted)

# The permission each human action needs, on every surface.
ACTION_PERMISSIONS: dict[Action, str] = {
    Action.APPROVE: APPROVE_ORDER,
    Action.CANCEL: CANCEL_ORDER,
    Action.UPDATE_ADDRESS: CHANGE_ORDER_ADDRESS,
    # Claiming is part of reviewing: whoever may approve may claim and release.
    Action.CLAIM: APPROVE_ORDER,
    Action.RELEASE: APPROVE_ORDER,
}
# What a bearer token's user may be asked for: loaded with the token in one query (orders.tokens).
API_PERMISSIONS = sorted({ADD_ORDER, VIEW_ORDER, REASSIGN_ORDER, *ACTION_PERMISSIONS.values()})

REVIEWERS = "Reviewers"
API_CLIENTS = "API clients"
SUPERVISORS = "Supervisors"  # also who gets an escalation's email
REVIEW_GROUPS = [REVIEWERS, SUPERVISORS]  # the groups whose members the console's team view lists
REVIEWER_PERMISSIONS = sorted({VIEW_ORDER, *ACTION_PERMISSIONS.values()})
GROUPS = {
    REVIEWERS: [*REVIEWER_PERMISSIONS, ADD_NOTE],
    SUPERVISORS: [*REVIEWER_PERMISSIONS, ADD_NOTE, REASSIGN_ORDER],
    API_CLIENTS: [*REVIEWER_PERMISSIONS, ADD_ORDER],
}


def codename(permission: str) -> str:
    """`approve_order` for `orders.approve_order`."""
    return permission.partition(".")[2]


def ensure_groups() -> None:
    """Create the groups with their permissions if missing (the migration does it on install)."""
    from django.contrib.auth.models import Group, Permission

    for name, permissions in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label=APP_LABEL, codename__in=[codename(p) for p in permissions]
            )
        )


def permission_held(user_ref: Any, permission: str) -> Any:
    """An Exists() expression: the user `user_ref` (a pk or an OuterRef) holds `permission`
    itself or through a group, as Django's ModelBackend counts it (before is_active and
    is_superuser, which the caller applies)."""
    from django.contrib.auth.models import Permission
    from django.db.models import Exists, Q

    app_label, _, name = permission.partition(".")
    return Exists(
        Permission.objects.filter(content_type__app_label=app_label, codename=name).filter(
            Q(user=user_ref) | Q(group__user=user_ref)
        )
    )


def grant(user: Any, held: bool) -> bool:
    """The verdict for a permission, given whether the user holds it (`permission_held`)."""
    return bool(user.is_active and (user.is_superuser or held))
