"""Read-side queries of orders, payments and events."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from lifecycle.states import State, allowed_actions
from lifecycle.validation import order_id_problem
from orders.models import Event, Order, Payment


def order_get(*, order_id: str) -> Order | None:
    if order_id_problem(order_id):  # no order has such an id; PostgreSQL would refuse a NUL
        return None
    return Order.objects.filter(id=order_id).first()


def order_status(*, order_id: str) -> dict[str, Any] | None:
    """The status document of the API: the order, its payment and its event timeline (3 queries)."""
    order = order_get(order_id=order_id)
    if order is None:
        return None
    payment = order.payments.order_by("created_at").first()
    events = list(order.events.order_by("timestamp", "id").values("id", "type", "payload_json", "timestamp"))
    return {
        "order_id": order.id,
        "workflow_id": order.workflow_id,
        "run_id": order.workflow_run_id or None,
        "state": order.state,
        "items": order.items_json,
        "address": order.address_json,
        "total": str(order.total),
        "payment": (
            {"payment_id": payment.payment_id, "status": payment.status, "amount": str(payment.amount)}
            if payment
            else {"payment_id": order.payment_id, "status": None, "amount": None}
        ),
        "approval_deadline": order.approval_deadline.isoformat() if order.approval_deadline else None,
        "allowed_actions": [action.value for action in allowed_actions(order.state)],
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "events": [
            {"id": e["id"], "type": e["type"], "timestamp": e["timestamp"].isoformat(), "payload": e["payload_json"]}
            for e in events
        ],
    }


# --- the review console ----------------------------------------------------------------------
QUEUE_FIELDS = ("id", "state", "items_json", "address_json", "total", "created_at", "updated_at", "approval_deadline")


def state_counts() -> dict[str, int]:
    """How many orders are in each state (one GROUP BY on the state index)."""
    from django.db.models import Count

    counts = {state.value: 0 for state in State}
    for row in Order.objects.order_by().values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    return counts


def review_queue(*, state: str | None, query: str = "") -> QuerySet[Order]:
    """Orders for the console's list: waiting ones oldest first, others most recent first."""
    orders = Order.objects.only(*QUEUE_FIELDS)
    if state:
        orders = orders.filter(state=state)
    if query:
        orders = orders.filter(id__startswith=query)
    if state == State.AWAITING_APPROVAL:
        return orders.order_by("created_at", "id")
    return orders.order_by("-created_at", "-id")


def order_page(*, order_id: str) -> tuple[Order, Payment | None, list[Event]] | None:
    """An order with its payment and its full timeline (3 queries)."""
    order = order_get(order_id=order_id)
    if order is None:
        return None
    payment = order.payments.order_by("created_at").first()
    return order, payment, list(order.events.order_by("timestamp", "id"))
