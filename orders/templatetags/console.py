"""Presentation helpers of the review console: states, items, addresses, events in words."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from lifecycle.states import State

register = template.Library()

STATE_TONES = {
    State.ORDER_RECEIVED: "neutral",
    State.ORDER_VALIDATED: "neutral",
    State.AWAITING_APPROVAL: "waiting",
    State.PAYMENT_CHARGED: "progress",
    State.SHIPPING: "progress",
    State.SHIPPED: "progress",
    State.COMPLETED: "done",
    State.FAILED: "bad",
    State.APPROVAL_TIMEOUT: "bad",
    State.CANCELLED: "muted",
}


@register.filter
def state_tone(state: str) -> str:
    try:
        return STATE_TONES[State(state)]
    except ValueError:
        return "neutral"


@register.filter
def state_label(state: str) -> str:
    return state.replace("_", " ").capitalize()


@register.filter
def items_summary(items: list[dict[str, Any]]) -> str:
    return ", ".join(f"{item.get('quantity', 1)} × {item.get('name', '?')}" for item in items or [])


@register.filter
def address_line(address: dict[str, Any]) -> str:
    if not isinstance(address, dict):
        return ""
    main = [address.get("street", ""), address.get("city", ""), address.get("zip", "")]
    extra = [str(v) for k, v in address.items() if k not in ("street", "city", "zip")]
    return ", ".join(str(part) for part in [*main, *extra] if part)


def _moment(value: Any) -> str:
    """An ISO timestamp from an event's payload, in the console's time zone, to the second."""
    try:
        moment = parse_datetime(str(value))
    except ValueError:  # well formatted but not a valid date
        moment = None
    if moment is None or timezone.is_naive(moment):
        return str(value)
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


@register.filter
def event_summary(payload: dict[str, Any]) -> str:
    """The one line a reviewer needs from an event's payload."""
    if not isinstance(payload, dict):
        return ""
    if "old" in payload and "new" in payload:
        return f"{address_line(payload['old'])} → {address_line(payload['new'])}"
    parts = []
    if "amount" in payload:
        parts.append(f"{payload['amount']} (payment {payload.get('payment_id', '')})")
    if "reason" in payload:
        parts.append(str(payload["reason"]))
    if "tracking_number" in payload:
        parts.append(f"tracking {payload['tracking_number']}")
    if "address" in payload and isinstance(payload["address"], dict):
        parts.append(f"to {address_line(payload['address'])}")
    if "total" in payload:
        parts.append(f"total {payload['total']}")
    if "approval_deadline" in payload:
        parts.append(f"review due by {_moment(payload['approval_deadline'])}")
    return "; ".join(parts)
