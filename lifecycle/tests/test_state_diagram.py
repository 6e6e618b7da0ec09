"""The order's decisions without a database: one test per arrow of the README's state diagram.

The real OrderWorkflow and ShippingWorkflow run on the time-skipping test server; every activity is
a test double registered under the contract's name (workflow_doubles.py). Nothing here touches the
database (pytest-django would refuse it); the end-to-end tests in test_order_workflow.py run the
same paths through the API, the database and real workers.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from lifecycle.states import State
from lifecycle.tests.workflow_doubles import (
    APPROVAL_WINDOW_S,
    NEW_ADDRESS,
    RITA,
    SAM,
    Doubles,
    an_order,
    run,
)
from lifecycle.types import AddressChange, PaymentInput, ShippingResult, StepInput
from lifecycle.workflows import ASK_SHIPPING


def test_start_to_order_received_records_the_order_first(time_skipping: Any, doubles: Doubles) -> None:
    """[*] --> ORDER_RECEIVED"""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            assert doubles.calls[0] == ("order_received", order.input)

    run(time_skipping, scenario)


def test_received_to_validated_checks_the_order_with_the_review_deadline(time_skipping: Any, doubles: Doubles) -> None:
    """ORDER_RECEIVED --> ORDER_VALIDATED: one local step records it and asks for review by the deadline."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            status = await order.reaches(State.AWAITING_APPROVAL)
            assert doubles.names() == ["order_received", "order_validated"]
            validated: StepInput = doubles.arg("order_validated")
            assert validated.event_id == f"{order.id}:ORDER_VALIDATED"
            assert validated.payload == {"approval_deadline": status.approval_deadline}

    run(time_skipping, scenario)


def test_received_to_failed_when_validation_rejects_the_order(time_skipping: Any, doubles: Doubles) -> None:
    """ORDER_RECEIVED --> FAILED: validation rejects (ORDER_FAILED), and no review is waited for."""
    doubles.reject_validation = "every item needs a positive price"

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            assert await order.result() == "FAILED"
            assert doubles.names() == ["order_received", "order_validated", "order_failed"]
            failed: StepInput = doubles.arg("order_failed")
            assert (failed.event_id, failed.reason) == (f"{order.id}:ORDER_FAILED", doubles.reject_validation)

    run(time_skipping, scenario)


def test_received_to_cancelled_skips_validation(time_skipping: Any, doubles: Doubles) -> None:
    """ORDER_RECEIVED --> CANCELLED: a cancel that reaches the order before validation."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles, workers=False) as order:
            # No worker yet: the cancel is held by the server and reaches the workflow's first task.
            cancel = asyncio.create_task(order.update("cancel", SAM))
            await asyncio.sleep(0.3)
            await order.run_order_worker()
            assert (await cancel).accepted
            assert await order.result() == "CANCELLED"
            assert doubles.names() == ["order_received", "order_cancelled"]
            cancelled: StepInput = doubles.arg("order_cancelled")
            assert (cancelled.actor, cancelled.reason, cancelled.via) == ("sam", "customer asked", "api")

    run(time_skipping, scenario)


def test_validated_to_awaiting_approval_opens_the_review(time_skipping: Any, doubles: Doubles) -> None:
    """ORDER_VALIDATED --> AWAITING_APPROVAL: the order waits for a person until the deadline."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            status = await order.reaches(State.AWAITING_APPROVAL)
            assert status.approval_deadline is not None
            started = (await order.handle.describe()).start_time
            window = datetime.fromisoformat(status.approval_deadline) - started
            assert timedelta(seconds=APPROVAL_WINDOW_S) <= window < timedelta(seconds=APPROVAL_WINDOW_S + 5)
            assert sorted(status.allowed_actions) == ["approve", "cancel", "claim", "update_address"]
            await asyncio.sleep(0.2)
            assert doubles.names() == ["order_received", "order_validated"]  # nothing moves without a person

    run(time_skipping, scenario)


def test_awaiting_approval_to_payment_charged_on_approval(time_skipping: Any, doubles: Doubles) -> None:
    """AWAITING_APPROVAL --> PAYMENT_CHARGED: the charge records who approved, then charges."""
    shipping_held = doubles.hold("package_prepared")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            approved = await order.update("approve", RITA)
            assert (approved.accepted, approved.state) == (True, "AWAITING_APPROVAL")
            await doubles.reached("package_prepared")
            charge: PaymentInput = doubles.arg("payment_charged")
            assert (charge.payment_id, charge.event_id) == (order.input.payment_id, f"{order.id}:PAYMENT_CHARGED")
            assert charge.approval is not None
            assert (charge.approval.event_id, charge.approval.actor) == (f"{order.id}:ORDER_APPROVED", "rita")
            assert (await order.status()).payment_status == "COMPLETED"
            shipping_held.set()
            assert await order.result() == "COMPLETED"

    run(time_skipping, scenario)


def test_awaiting_approval_to_approval_timeout_when_nobody_decides(time_skipping: Any, doubles: Doubles) -> None:
    """AWAITING_APPROVAL --> APPROVAL_TIMEOUT: the test server skips the five-minute window."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            assert await order.result() == "APPROVAL_TIMEOUT"
            assert doubles.names() == ["order_received", "order_validated", "approval_timed_out"]

    run(time_skipping, scenario)


def test_awaiting_approval_to_cancelled_moves_no_money(time_skipping: Any, doubles: Doubles) -> None:
    """AWAITING_APPROVAL --> CANCELLED"""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            assert (await order.update("cancel", SAM)).accepted
            assert await order.result() == "CANCELLED"
            assert doubles.names() == ["order_received", "order_validated", "order_cancelled"]

    run(time_skipping, scenario)


def test_payment_charged_to_shipping_starts_the_child_with_the_final_address(
    time_skipping: Any, doubles: Doubles
) -> None:
    """PAYMENT_CHARGED --> SHIPPING: an address change accepted in review reaches the child."""
    shipping_held = doubles.hold("package_prepared")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("change_address", AddressChange(NEW_ADDRESS, "rita", "console"))
            await order.update("approve", RITA)
            await doubles.reached("package_prepared")
            status = await order.status()
            assert (status.state, status.address) == ("SHIPPING", NEW_ADDRESS)
            assert doubles.arg("package_prepared").event_id == f"{order.id}:PACKAGE_PREPARED"
            shipping_held.set()
            await order.result()
            assert doubles.arg("carrier_dispatched").address == NEW_ADDRESS

    run(time_skipping, scenario)


def test_payment_charged_to_cancelled_refunds_and_never_ships(time_skipping: Any, doubles: Doubles) -> None:
    """PAYMENT_CHARGED --> CANCELLED (refund): a cancel accepted while the payment is charged."""
    charge_held = doubles.hold("payment_charged")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("approve", RITA)
            await doubles.reached("payment_charged")
            assert (await order.update("cancel", SAM)).accepted
            charge_held.set()
            assert await order.result() == "CANCELLED"
            assert doubles.names()[2:] == ["payment_charged", "payment_refunded", "order_cancelled"]
            assert doubles.arg("payment_refunded").event_id == f"{order.id}:PAYMENT_REFUNDED"

    run(time_skipping, scenario)


def test_shipping_to_shipped_once_the_carrier_has_the_package(time_skipping: Any, doubles: Doubles) -> None:
    """SHIPPING --> SHIPPED: the carrier's tracking number is recorded with the shipped order."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.update("approve", RITA)
            await order.result()
            assert doubles.names()[-3:] == ["package_prepared", "carrier_dispatched", "order_shipped"]
            shipped: StepInput = doubles.arg("order_shipped")
            assert shipped.event_id == f"{order.id}:ORDER_SHIPPED"
            assert shipped.payload == {"tracking_number": f"TRK-{order.id}"}

    run(time_skipping, scenario)


def test_shipped_to_completed(time_skipping: Any, doubles: Doubles) -> None:
    """SHIPPED --> COMPLETED: order_shipped also records completion; nothing is allowed after."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.update("approve", RITA)  # remembered, applied when the review opens
            assert await order.result() == "COMPLETED"
            status = await order.status()
            assert (status.state, status.allowed_actions, status.dispatch_started) == ("COMPLETED", [], True)
            assert doubles.names()[-1] == "order_shipped"
            assert "payment_refunded" not in doubles.names()

    run(time_skipping, scenario)


def test_shipping_to_failed_when_the_carrier_refuses_refunds(time_skipping: Any, doubles: Doubles) -> None:
    """SHIPPING --> FAILED: the child tells the order why (dispatch_failed); refund, DISPATCH_FAILED."""
    doubles.refuse_dispatch = "the carrier does not deliver to zip 00000"

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.update("approve", RITA)
            assert await order.result() == "FAILED"
            assert doubles.names()[-2:] == ["payment_refunded", "order_failed"]
            failed: StepInput = doubles.arg("order_failed")
            assert (failed.event_id, failed.reason) == (f"{order.id}:DISPATCH_FAILED", doubles.refuse_dispatch)
            assert "order_shipped" not in doubles.names()
            assert (await order.status()).failure_reason == doubles.refuse_dispatch

    run(time_skipping, scenario)


def test_shipping_to_cancelled_when_the_child_takes_a_cancel_before_dispatch(
    time_skipping: Any, doubles: Doubles
) -> None:
    """SHIPPING --> CANCELLED (refund): the child decides while it ships; it never dispatches."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles, workers=False) as order:
            await order.run_order_worker()  # no shipping worker yet: the child waits for one
            await order.update("approve", RITA)
            await order.child_started()
            refusal = await order.refused("cancel", SAM)
            assert refusal.type == ASK_SHIPPING
            cancel = asyncio.create_task(order.update("cancel", SAM, workflow_id=f"shipping-{order.id}"))
            await asyncio.sleep(0.3)
            await order.run_shipping_worker()
            assert (await cancel).accepted
            assert await order.result() == "CANCELLED"
            assert "carrier_dispatched" not in doubles.names()
            assert doubles.names()[-3:] == ["package_prepared", "payment_refunded", "order_cancelled"]
            assert doubles.arg("order_cancelled").actor == "sam"
            child = order.client.get_workflow_handle(f"shipping-{order.id}", result_type=ShippingResult)
            shipment = await child.result()
            assert (shipment.dispatched, shipment.cancel) == (False, SAM)

    run(time_skipping, scenario)


# --- what an accepted action can count on ------------------------------------------------------
def test_an_address_change_accepted_before_a_cancel_is_written_before_the_order_ends(
    time_skipping: Any, doubles: Doubles
) -> None:
    """Nothing is recorded for an order after its end event (issue: ADDRESS_UPDATED after ORDER_CANCELLED)."""
    write_held = doubles.hold("update_order_address")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            change = asyncio.create_task(order.update("change_address", AddressChange(NEW_ADDRESS, "rita")))
            await doubles.reached("update_order_address")
            assert (await order.update("cancel", SAM)).accepted
            await asyncio.sleep(0.3)
            assert "order_cancelled" not in doubles.names()  # the end waits for the write
            write_held.set()
            assert (await change).accepted
            assert await order.result() == "CANCELLED"
            assert doubles.names()[-2:] == ["update_order_address", "order_cancelled"]

    run(time_skipping, scenario)
