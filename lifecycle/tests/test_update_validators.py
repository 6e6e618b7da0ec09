"""What the Update validators refuse, without a database (see test_state_diagram.py): each refusal
is an ApplicationError of a known type with the order's state as its detail, and changes nothing."""

from __future__ import annotations

from typing import Any

from lifecycle.states import State
from lifecycle.tests.workflow_doubles import NEW_ADDRESS, RITA, SAM, Doubles, an_order, run
from lifecycle.types import AddressChange
from lifecycle.workflows import ACTION_NOT_ALLOWED, ASK_SHIPPING, INVALID_ADDRESS


def test_a_second_approval_is_refused_and_changes_nothing(time_skipping: Any, doubles: Doubles) -> None:
    charge_held = doubles.hold("payment_charged")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("approve", RITA)
            refusal = await order.refused("approve", SAM)
            assert (refusal.type, refusal.message) == (
                ACTION_NOT_ALLOWED,
                "Cannot approve: the order is already approved",
            )
            assert refusal.details == ("AWAITING_APPROVAL",)
            assert (await order.status()).approved_by == "rita"
            charge_held.set()
            assert await order.result() == "COMPLETED"
            assert doubles.names().count("payment_charged") == 1

    run(time_skipping, scenario)


def test_an_invalid_address_is_refused_before_anything_is_written(time_skipping: Any, doubles: Doubles) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            refusal = await order.refused("change_address", AddressChange({"street": "1 Main St"}, "rita", "console"))
            assert refusal.type == INVALID_ADDRESS
            assert "zip" in refusal.message
            assert "update_order_address" not in doubles.names()

    run(time_skipping, scenario)


def test_after_a_cancellation_every_other_action_is_refused(time_skipping: Any, doubles: Doubles) -> None:
    cancel_held = doubles.hold("order_cancelled")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("cancel", SAM)
            await doubles.reached("order_cancelled")
            for name, arg in (("approve", RITA), ("cancel", RITA), ("change_address", AddressChange(NEW_ADDRESS))):
                refusal = await order.refused(name, arg)
                assert (refusal.type, refusal.details) == (ACTION_NOT_ALLOWED, ("CANCELLED",))
                assert "the order has ended (CANCELLED)" in refusal.message
            cancel_held.set()
            assert await order.result() == "CANCELLED"

    run(time_skipping, scenario)


def test_while_the_child_decides_the_order_sends_cancel_and_address_changes_there(
    time_skipping: Any, doubles: Doubles
) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles, workers=False) as order:
            await order.run_order_worker()
            await order.update("approve", RITA)
            await order.child_started()
            for name, arg in (("cancel", SAM), ("change_address", AddressChange(NEW_ADDRESS))):
                refusal = await order.refused(name, arg)
                assert (refusal.type, refusal.details) == (ASK_SHIPPING, ("SHIPPING",))
            refusal = await order.refused("approve", SAM)
            assert refusal.message == "Cannot approve: the order is already approved"
            await order.run_shipping_worker()
            assert await order.result() == "COMPLETED"

    run(time_skipping, scenario)


def test_the_child_refuses_cancel_and_address_changes_once_the_dispatch_is_scheduled(
    time_skipping: Any, doubles: Doubles
) -> None:
    dispatch_held = doubles.hold("carrier_dispatched")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.update("approve", RITA)
            await doubles.reached("carrier_dispatched")
            child = f"shipping-{order.id}"
            for name, arg in (("cancel", SAM), ("change_address", AddressChange(NEW_ADDRESS))):
                refusal = await order.refused(name, arg, workflow_id=child)
                assert (refusal.type, refusal.details) == (ACTION_NOT_ALLOWED, ("SHIPPING",))
                assert "the carrier has already been dispatched" in refusal.message
            dispatch_held.set()
            assert await order.result() == "COMPLETED"
            assert "update_order_address" not in doubles.names()

    run(time_skipping, scenario)


def test_while_a_cancellation_is_under_way_nothing_else_is_accepted(time_skipping: Any, doubles: Doubles) -> None:
    charge_held = doubles.hold("payment_charged")
    refund_held = doubles.hold("payment_refunded")

    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("approve", RITA)
            await doubles.reached("payment_charged")
            await order.update("cancel", SAM)
            charge_held.set()
            await doubles.reached("payment_refunded")
            assert (await order.status()).state == "PAYMENT_CHARGED"
            for name, arg in (("cancel", RITA), ("change_address", AddressChange(NEW_ADDRESS))):
                refusal = await order.refused(name, arg)
                assert refusal.message.endswith(": a cancellation is already under way")
            refund_held.set()
            assert await order.result() == "CANCELLED"
            assert doubles.names().count("order_cancelled") == 1

    run(time_skipping, scenario)
