"""Test data and waiting helpers shared by the order and lifecycle tests."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal
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


def make_order(**fields: Any) -> Any:
    """One order row (awaiting approval) without a workflow, for tests that must not get as far as Temporal."""
    from django.utils import timezone

    from orders.models import Order

    defaults: dict[str, Any] = {
        "id": new_order_id(),
        "state": "AWAITING_APPROVAL",
        "payment_id": f"pay-{uuid.uuid4().hex[:12]}",
        "items_json": [{"name": "Widget", "price": "29.99", "quantity": 2}],
        "address_json": {"street": "123 Main St", "city": "NYC", "zip": "10001"},
        "total": Decimal("59.98"),
        "approval_deadline": timezone.now() + timedelta(minutes=5),
    }
    return Order.objects.create(**(defaults | fields))


def make_orders(
    count: int, *, state: str = "AWAITING_APPROVAL", prefix: str = "bulk", numbered: bool = False
) -> list[Any]:
    """`count` orders of the seed's example in one INSERT, with no workflow behind them.

    Ids are `<prefix>-00000`, `<prefix>-00001`, ... when `numbered` (one call per test), else random.
    """
    from django.utils import timezone

    from orders.models import Order

    now = timezone.now()
    return Order.objects.bulk_create(
        Order(
            id=f"{prefix}-{index:05d}" if numbered else f"{prefix}-{uuid.uuid4().hex[:10]}",
            state=state,
            items_json=[{"name": "Widget", "price": "29.99", "quantity": 2}],
            address_json={"street": f"{index} Main St", "city": "NYC", "zip": "10001"},
            payment_id=f"pay-{uuid.uuid4().hex[:12]}",
            total=Decimal("59.98"),
            approval_deadline=now + timedelta(minutes=5),
        )
        for index in range(count)
    )
