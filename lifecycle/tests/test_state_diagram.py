"""The order's decisions, without a database: one test per arrow of the README's state diagram,
then the Update validators' refusals.

The real OrderWorkflow and ShippingWorkflow run on the time-skipping test server; every activity
is a test double registered under the contract's name (`Doubles`), which records what it was
asked and answers as told, or holds until the test lets it go. The order and its shipping child
poll two task queues, so a test can keep the child waiting for a worker. Nothing here touches the
database (pytest-django would refuse it); the end-to-end tests in test_order_workflow.py run the
same paths through the API, the database and real workers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker

from lifecycle.states import State
from lifecycle.types import (
    ActionResult,
    ActorRequest,
    AddressChange,
    AddressUpdateInput,
    OrderInput,
    PaymentInput,
    PaymentResult,
    ShippingResult,
    StatusView,
    StepInput,
    Tuning,
)
from lifecycle.workflows import (
    ACTION_NOT_ALLOWED,
    ASK_SHIPPING,
    DISPATCH_REFUSED,
    INVALID_ADDRESS,
    ORDER_REJECTED,
    OrderWorkflow,
    ShippingWorkflow,
)

T = TypeVar("T")
APPROVAL_WINDOW_S = 300
ADDRESS = {"street": "123 Main St", "city": "NYC", "zip": "10001"}
NEW_ADDRESS = {"street": "9 Side Rd", "city": "Boston", "zip": "02101"}
RITA = ActorRequest(actor="rita", via="console")
SAM = ActorRequest(actor="sam", via="api", reason="customer asked")
WAIT_S = 10.0


class Doubles:
    """The activities, under the contract's names: each records its call, may hold until
    released, and answers like the real one (or refuses, when told to)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.reject_validation = ""
        self.refuse_dispatch = ""
        self._holds: dict[str, asyncio.Event] = {}
        self._reached: dict[str, asyncio.Event] = {}

    def hold(self, name: str) -> asyncio.Event:
        """Make the activity `name` wait until the returned event is set."""
        self._holds[name] = asyncio.Event()
        return self._holds[name]

    async def reached(self, name: str) -> None:
        await asyncio.wait_for(self._reached.setdefault(name, asyncio.Event()).wait(), WAIT_S)

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def arg(self, name: str) -> Any:
        return next(arg for called, arg in self.calls if called == name)

    async def _call(self, name: str, arg: Any) -> None:
        self.calls.append((name, arg))
        self._reached.setdefault(name, asyncio.Event()).set()
        if name in self._holds:
            await self._holds[name].wait()

    @activity.defn(name="order_received")
    async def order_received(self, order: OrderInput) -> None:
        await self._call("order_received", order)

    @activity.defn(name="order_validated")
    async def order_validated(self, step: StepInput) -> None:
        await self._call("order_validated", step)
        if self.reject_validation:
            raise ApplicationError(self.reject_validation, type=ORDER_REJECTED, non_retryable=True)

    @activity.defn(name="approval_timed_out")
    async def approval_timed_out(self, step: StepInput) -> None:
        await self._call("approval_timed_out", step)

    @activity.defn(name="order_approved")
    async def order_approved(self, step: StepInput) -> None:
        await self._call("order_approved", step)

    @activity.defn(name="payment_charged")
    async def payment_charged(self, payment: PaymentInput) -> PaymentResult:
        await self._call("payment_charged", payment)
        return PaymentResult(payment.payment_id, "59.98", "COMPLETED")

    @activity.defn(name="payment_refunded")
    async def payment_refunded(self, payment: PaymentInput) -> PaymentResult:
        await self._call("payment_refunded", payment)
        return PaymentResult(payment.payment_id, "59.98", "REFUNDED")

    @activity.defn(name="update_order_address")
    async def update_order_address(self, change: AddressUpdateInput) -> None:
        await self._call("update_order_address", change)

    @activity.defn(name="package_prepared")
    async def package_prepared(self, step: StepInput) -> None:
        await self._call("package_prepared", step)

    @activity.defn(name="carrier_dispatched")
    async def carrier_dispatched(self, dispatch: AddressUpdateInput) -> str:
        await self._call("carrier_dispatched", dispatch)
        if self.refuse_dispatch:
            raise ApplicationError(self.refuse_dispatch, type=DISPATCH_REFUSED, non_retryable=True)
        return f"TRK-{dispatch.order_id}"

    @activity.defn(name="order_shipped")
    async def order_shipped(self, step: StepInput) -> None:
        await self._call("order_shipped", step)

    @activity.defn(name="order_cancelled")
    async def order_cancelled(self, step: StepInput) -> None:
        await self._call("order_cancelled", step)

    @activity.defn(name="order_failed")
    async def order_failed(self, step: StepInput) -> None:
        await self._call("order_failed", step)

    def order_activities(self) -> list[Callable[..., Any]]:
        return [
            self.order_received,
            self.order_validated,
            self.approval_timed_out,
            self.order_approved,
            self.payment_charged,
            self.payment_refunded,
            self.update_order_address,
            self.order_shipped,
            self.order_cancelled,
            self.order_failed,
        ]

    def shipping_activities(self) -> list[Callable[..., Any]]:
        return [self.package_prepared, self.carrier_dispatched, self.update_order_address]


class Order:
    """One order's workflow on the test server, and the test's ways to act on it."""

    def __init__(self, env: Any, doubles: Doubles, order: OrderInput, order_queue: str) -> None:
        self.env = env
        self.client = env.client
        self.doubles = doubles
        self.input = order
        self.id = order.order_id
        self.order_queue = order_queue
        self.handle: WorkflowHandle[Any, str] = self.client.get_workflow_handle(self.id)
        self._workers = AsyncExitStack()

    async def start(self) -> None:
        # The handle start_workflow returns is the one whose result() lets the test server skip time.
        self.handle = await self.client.start_workflow(
            OrderWorkflow.run, self.input, id=self.id, task_queue=self.order_queue
        )

    async def run_order_worker(self) -> None:
        await self._run_worker(self.order_queue, OrderWorkflow, self.doubles.order_activities())

    async def run_shipping_worker(self) -> None:
        await self._run_worker(self.input.shipping_task_queue, ShippingWorkflow, self.doubles.shipping_activities())

    async def _run_worker(self, queue: str, workflow: type, activities: list[Callable[..., Any]]) -> None:
        worker = Worker(self.client, task_queue=queue, workflows=[workflow], activities=activities)
        await self._workers.enter_async_context(worker)

    async def stop_workers(self) -> None:
        await self._workers.aclose()

    async def update(self, name: str, arg: Any, *, workflow_id: str | None = None) -> ActionResult:
        handle = self.client.get_workflow_handle(workflow_id or self.id)
        return await asyncio.wait_for(handle.execute_update(name, arg, result_type=ActionResult), WAIT_S)

    async def refused(self, name: str, arg: Any, *, workflow_id: str | None = None) -> ApplicationError:
        """The update `name` is refused by its validator: the ApplicationError it gave."""
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await self.update(name, arg, workflow_id=workflow_id)
        assert isinstance(refused.value.cause, ApplicationError)
        return refused.value.cause

    async def status(self) -> StatusView:
        return await self.handle.query(OrderWorkflow.status, result_type=StatusView)

    async def reaches(self, state: State) -> StatusView:
        async def polled() -> StatusView:
            while (status := await self.status()).state != state:
                await asyncio.sleep(0.02)
            return status

        return await asyncio.wait_for(polled(), WAIT_S)

    async def result(self) -> str:
        return await asyncio.wait_for(self.handle.result(), WAIT_S)

    async def child_started(self) -> None:
        child = self.client.get_workflow_handle(f"shipping-{self.id}")

        async def described() -> None:
            while True:
                try:
                    await child.describe()
                    return
                except RPCError:
                    await asyncio.sleep(0.02)

        await asyncio.wait_for(described(), WAIT_S)


@asynccontextmanager
async def an_order(env: Any, doubles: Doubles, *, workers: bool = True) -> AsyncIterator[Order]:
    """A started order (id and task queues of its own), with both workers unless told otherwise;
    the workers stop and the workflow is gone (terminated if still running) afterwards."""
    suffix = uuid.uuid4().hex[:10]
    order = Order(
        env,
        doubles,
        OrderInput(
            order_id=f"order-{suffix}",
            payment_id=f"pay-{suffix}",
            items=[{"name": "Widget", "price": "29.99", "quantity": 2}],
            address=dict(ADDRESS),
            tuning=Tuning(
                activity_timeout_seconds=5, activity_max_attempts=3, approval_timeout_seconds=APPROVAL_WINDOW_S
            ),
            shipping_task_queue=f"shipping-{suffix}",
        ),
        order_queue=f"order-{suffix}",
    )
    await order.start()
    try:
        if workers:
            await order.run_order_worker()
            await order.run_shipping_worker()
        yield order
    finally:
        for workflow_id in (order.id, f"shipping-{order.id}"):
            try:
                await env.client.get_workflow_handle(workflow_id).terminate("test over")
            except RPCError:
                pass  # ended, or never started
        await order.stop_workers()


def run(env: Any, scenario: Callable[[], Awaitable[T]]) -> T:
    return env.run(scenario(), timeout=60)  # type: ignore[no-any-return]


@pytest.fixture
def doubles() -> Doubles:
    return Doubles()


# --- the arrows --------------------------------------------------------------------------------
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
            assert sorted(status.allowed_actions) == ["approve", "cancel", "update_address"]
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


# --- what the validators refuse ----------------------------------------------------------------
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
