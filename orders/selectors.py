"""Read-side queries of orders, payments and events."""

from __future__ import annotations

from typing import Any

from lifecycle.states import allowed_actions
from orders.models import Order


def order_get(*, order_id: str) -> Order | None:
    return Order.objects.filter(id=order_id).first()


def order_status(*, order_id: str) -> dict[str, Any] | None:
    """The status document of the API: the order, its payment and its event timeline (3 queries)."""
    order = Order.objects.filter(id=order_id).first()
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
