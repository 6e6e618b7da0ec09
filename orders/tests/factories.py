"""Test data and waiting helpers shared by the order and lifecycle tests."""

from __future__ import annotations

import time
import uuid
from typing import Any


def wait_until(predicate: Any, *, timeout: float = 30, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_state(order_id: str, *states: str, timeout: float = 30) -> str:
    from orders.models import Order

    def current() -> str | None:
        state = Order.objects.filter(id=order_id).values_list("state", flat=True).first()
        return state if state in states else None

    return str(wait_until(current, timeout=timeout, what=f"{order_id} to reach {states}"))


def new_order_id() -> str:
    return f"order-{uuid.uuid4().hex[:12]}"


def order_body(*, payment_id: str | None = None, zip_code: str = "10001", **overrides: Any) -> dict[str, Any]:
    """The seed's example order (two Widgets at 29.99: 59.98)."""
    body: dict[str, Any] = {
        "payment_id": payment_id or f"pay-{uuid.uuid4().hex[:12]}",
        "items": [{"name": "Widget", "price": 29.99, "quantity": 2}],
        "address": {"street": "123 Main St", "city": "NYC", "zip": zip_code},
    }
    body.update(overrides)
    return body
