"""The grouped database steps: each safe to run again, and a late attempt cannot move an order back."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from lifecycle.activities import order_delivered, order_intake, payment_charged, review_requested
from lifecycle.states import EventType
from lifecycle.types import DeliveredInput, IntakeInput, OrderInput, PaymentInput, StepInput
from lifecycle.workflows import event_id
from orders.models import Event, Order, ProviderCharge
from orders.tests.factories import new_order_id, order_body

DEADLINE = "2030-01-01T00:00:00+00:00"


def order_input(order_id: str, **overrides: Any) -> OrderInput:
    body = order_body(**overrides)
    return OrderInput(order_id, body["payment_id"], body["items"], body["address"])


def types(order_id: str) -> list[str]:
    return list(Event.objects.filter(order_id=order_id).order_by("timestamp", "id").values_list("type", flat=True))


def step(order_id: str, event_type: EventType, **fields: Any) -> StepInput:
    return StepInput(order_id, event_id(order_id, event_type), **fields)


def test_intake_run_twice_records_each_fact_once(transactional_db: None) -> None:
    order_id = new_order_id()
    intake = IntakeInput(order_input(order_id), DEADLINE)
    env = ActivityEnvironment()
    assert env.run(order_intake, intake) == ""
    assert env.run(order_intake, intake) == ""  # a retry after a lost answer
    assert types(order_id) == ["ORDER_RECEIVED", "ORDER_VALIDATED"]
    order = Order.objects.get(id=order_id)
    assert order.state == "AWAITING_APPROVAL"
    assert order.approval_deadline.isoformat() == DEADLINE


def test_intake_of_an_unacceptable_order_returns_why_and_records_only_its_receipt(transactional_db: None) -> None:
    order_id = new_order_id()
    bad = order_input(order_id, items=[{"name": "Widget", "price": "0", "quantity": 1}])
    reason = ActivityEnvironment().run(order_intake, IntakeInput(bad, DEADLINE))
    assert reason
    assert types(order_id) == ["ORDER_RECEIVED"]
    assert Order.objects.get(id=order_id).state == "ORDER_RECEIVED"


def test_a_late_review_request_does_not_reopen_a_cancelled_order(transactional_db: None) -> None:
    order_id = new_order_id()
    ActivityEnvironment().run(order_intake, IntakeInput(order_input(order_id), DEADLINE))
    Order.objects.filter(id=order_id).update(state="CANCELLED")  # the workflow moved on meanwhile
    late = step(order_id, EventType.ORDER_VALIDATED, payload={"approval_deadline": DEADLINE})
    ActivityEnvironment().run(review_requested, late)
    assert Order.objects.get(id=order_id).state == "CANCELLED"


@pytest.mark.parametrize("runs", [1, 2])
def test_the_charge_records_the_approval_first_and_both_once(transactional_db: None, runs: int) -> None:
    order_id = new_order_id()
    order = order_input(order_id)
    ActivityEnvironment().run(order_intake, IntakeInput(order, DEADLINE))
    approval = step(order_id, EventType.ORDER_APPROVED, actor="rita", via="console")
    payment = PaymentInput(order_id, order.payment_id, event_id(order_id, EventType.PAYMENT_CHARGED), approval)
    for _ in range(runs):
        ActivityEnvironment().run(payment_charged, payment)
    assert types(order_id)[-2:] == ["ORDER_APPROVED", "PAYMENT_CHARGED"]
    assert Event.objects.get(id=approval.event_id).payload_json["actor"] == "rita"
    assert ProviderCharge.objects.filter(idempotency_key=order.payment_id).count() == 1


def test_delivered_records_shipped_then_completed_once(transactional_db: None) -> None:
    order_id = new_order_id()
    ActivityEnvironment().run(order_intake, IntakeInput(order_input(order_id), DEADLINE))
    delivered = DeliveredInput(
        step(order_id, EventType.ORDER_SHIPPED, payload={"tracking_number": "TRK-1"}),
        step(order_id, EventType.ORDER_COMPLETED),
    )
    ActivityEnvironment().run(order_delivered, delivered)
    ActivityEnvironment().run(order_delivered, delivered)
    assert types(order_id)[-2:] == ["ORDER_SHIPPED", "ORDER_COMPLETED"]
    assert Order.objects.get(id=order_id).state == "COMPLETED"
