"""Steps that record more than one fact: each safe to run again, and a late attempt cannot move an order back."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from lifecycle.activities import order_received, order_shipped, order_validated, payment_charged
from lifecycle.states import EventType, State
from lifecycle.types import OrderInput, PaymentInput, StepInput
from lifecycle.workflows import event_id
from orders import services
from orders.models import Event, Order, ProviderCharge
from orders.tests.factories import new_order_id, order_body

DEADLINE = "2030-01-01T00:00:00+00:00"


def received(order_id: str, **overrides: Any) -> OrderInput:
    body = order_body(**overrides)
    order = OrderInput(order_id, body["payment_id"], body["items"], body["address"])
    ActivityEnvironment().run(order_received, order)
    return order


def types(order_id: str) -> list[str]:
    return list(Event.objects.filter(order_id=order_id).order_by("timestamp", "id").values_list("type", flat=True))


def step(order_id: str, event_type: EventType, **fields: Any) -> StepInput:
    return StepInput(order_id, event_id(order_id, event_type), **fields)


def validate_for_review(order_id: str) -> None:
    ActivityEnvironment().run(
        order_validated, step(order_id, EventType.ORDER_VALIDATED, payload={"approval_deadline": DEADLINE})
    )


def test_validation_with_a_deadline_puts_the_order_up_for_review_once(transactional_db: None) -> None:
    order_id = new_order_id()
    received(order_id)
    validate_for_review(order_id)
    validate_for_review(order_id)  # a retry after a lost answer
    assert types(order_id) == ["ORDER_RECEIVED", "ORDER_VALIDATED"]
    order = Order.objects.get(id=order_id)
    assert order.state == "AWAITING_APPROVAL"
    assert order.approval_deadline.isoformat() == DEADLINE


def test_an_unacceptable_order_is_rejected_before_any_review(transactional_db: None) -> None:
    order_id = new_order_id()
    received(order_id, items=[{"name": "Widget", "price": "0", "quantity": 1}])
    with pytest.raises(ApplicationError):
        validate_for_review(order_id)
    assert types(order_id) == ["ORDER_RECEIVED"]
    order = Order.objects.get(id=order_id)
    assert (order.state, order.approval_deadline) == ("ORDER_RECEIVED", None)


def test_a_late_validation_attempt_does_not_reopen_a_cancelled_order(transactional_db: None) -> None:
    order_id = new_order_id()
    received(order_id)
    validate_for_review(order_id)
    Order.objects.filter(id=order_id).update(state="CANCELLED")  # the workflow moved on meanwhile
    validate_for_review(order_id)  # an attempt that outlived its timeout writes late
    assert Order.objects.get(id=order_id).state == "CANCELLED"


@pytest.mark.parametrize("runs", [1, 2])
def test_the_charge_records_the_approval_first_and_both_once(transactional_db: None, runs: int) -> None:
    order_id = new_order_id()
    order = received(order_id)
    validate_for_review(order_id)
    approval = step(order_id, EventType.ORDER_APPROVED, actor="rita", via="console")
    payment = PaymentInput(order_id, order.payment_id, event_id(order_id, EventType.PAYMENT_CHARGED), approval)
    for _ in range(runs):
        ActivityEnvironment().run(payment_charged, payment)
    assert types(order_id)[-2:] == ["ORDER_APPROVED", "PAYMENT_CHARGED"]
    assert Event.objects.get(id=approval.event_id).payload_json["actor"] == "rita"
    assert ProviderCharge.objects.filter(idempotency_key=order.payment_id).count() == 1


def test_shipped_records_shipped_then_completed_both_once(transactional_db: None) -> None:
    order_id = new_order_id()
    received(order_id)
    shipped = step(order_id, EventType.ORDER_SHIPPED, payload={"tracking_number": "TRK-1"})
    ActivityEnvironment().run(order_shipped, shipped)
    ActivityEnvironment().run(order_shipped, shipped)
    assert types(order_id)[-2:] == ["ORDER_SHIPPED", "ORDER_COMPLETED"]
    assert Event.objects.get(id=shipped.event_id).payload_json == {"tracking_number": "TRK-1"}
    assert Order.objects.get(id=order_id).state == "COMPLETED"


def test_a_transition_is_written_once_and_never_without_its_order(transactional_db: None) -> None:
    """services.record_transition (one statement on PostgreSQL, a transaction on SQLite): the event
    and the order's new fields together, a repeat changes nothing, an unknown order writes nothing."""
    order_id = new_order_id()
    received(order_id)
    shipped = event_id(order_id, EventType.ORDER_SHIPPED)
    first = {"event_id": shipped, "event_type": EventType.ORDER_SHIPPED, "payload": {"tracking_number": "TRK-1"}}
    assert services.record_transition(order_id=order_id, state=State.SHIPPED, **first)
    assert not services.record_transition(
        order_id=order_id, state=State.COMPLETED, order_fields={"workflow_run_id": "x"}, **first
    )
    order = Order.objects.get(id=order_id)
    assert (order.state, order.workflow_run_id) == ("SHIPPED", "test-run")  # ActivityEnvironment's run id
    assert Event.objects.get(id=shipped).payload_json == {"tracking_number": "TRK-1"}

    with pytest.raises(IntegrityError):
        services.record_transition(
            order_id="no-such-order",
            event_id="no-such-order:ORDER_SHIPPED",
            event_type=EventType.ORDER_SHIPPED,
            payload={},
        )
    assert not Event.objects.filter(order_id="no-such-order").exists()


# Statements per step of an order the API stored (BEGIN, COMMIT and savepoints count: each is a
# round trip). PostgreSQL writes an event and its order's fields in one statement; SQLite takes a
# transaction for them.
STATEMENTS = {
    "postgresql": {"received": 1, "validated": 2, "charged": 10},
    "sqlite": {"received": 4, "validated": 5, "charged": 16},
}


def test_the_steps_of_an_order_the_api_stored_take_no_more_round_trips_than_counted(transactional_db: None) -> None:
    """The row exists, so receiving it is one write; a new payment and the provider's record are
    lone INSERTs, with no transaction around each (orders.db.get_or_insert)."""
    order_id = new_order_id()
    body = order_body()
    services.order_start(order_id=order_id, payment_id=body["payment_id"], items=body["items"], address=body["address"])
    order = OrderInput(order_id, body["payment_id"], body["items"], body["address"])
    approval = step(order_id, EventType.ORDER_APPROVED, actor="rita", via="console")
    runs = {
        "received": (order_received, order),
        "validated": (
            order_validated,
            step(order_id, EventType.ORDER_VALIDATED, payload={"approval_deadline": DEADLINE}),
        ),
        "charged": (
            payment_charged,
            PaymentInput(order_id, order.payment_id, event_id(order_id, EventType.PAYMENT_CHARGED), approval),
        ),
    }
    counted = {}
    for name, (activity, arg) in runs.items():
        with CaptureQueriesContext(connection) as queries:
            ActivityEnvironment().run(activity, arg)
        counted[name] = len(queries.captured_queries)
    assert counted == STATEMENTS[connection.vendor]
    assert types(order_id) == ["ORDER_RECEIVED", "ORDER_VALIDATED", "ORDER_APPROVED", "PAYMENT_CHARGED"]
