"""Test doubles for the workflow tests that need no database (test_state_diagram.py,
test_update_validators.py): the activities under the contract's names, and one order's workflow
on the time-skipping test server with the ways a test acts on it.

`Doubles` records each call, may hold an activity until the test lets it go, and answers like the
real activity (or refuses, when told to). The order and its shipping child poll two task queues,
so a test can keep the child waiting for a worker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
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
    AddressUpdateInput,
    OrderInput,
    PaymentInput,
    PaymentResult,
    StatusView,
    StepInput,
    Tuning,
)
from lifecycle.workflows import (
    DISPATCH_REFUSED,
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

    @activity.defn(name="order_claimed")
    async def order_claimed(self, step: StepInput) -> None:
        await self._call("order_claimed", step)

    @activity.defn(name="order_released")
    async def order_released(self, step: StepInput) -> None:
        await self._call("order_released", step)

    @activity.defn(name="first_approval")
    async def first_approval(self, step: StepInput) -> None:
        await self._call("first_approval", step)

    @activity.defn(name="order_escalated")
    async def order_escalated(self, step: StepInput) -> None:
        await self._call("order_escalated", step)

    @activity.defn(name="escalation_notified")
    async def escalation_notified(self, step: StepInput) -> None:
        await self._call("escalation_notified", step)

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
            self.order_claimed,
            self.order_released,
            self.first_approval,
            self.order_escalated,
            self.escalation_notified,
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
async def an_order(
    env: Any,
    doubles: Doubles,
    *,
    workers: bool = True,
    items: list[dict[str, Any]] | None = None,
    started_by: str = "",
    **tuning: Any,
) -> AsyncIterator[Order]:
    """A started order (id and task queues of its own), with both workers unless told otherwise;
    the workers stop and the workflow is gone (terminated if still running) afterwards. `items`,
    `started_by` and Tuning fields (e.g. `four_eyes_min_total="1000"`) change the order's input."""
    suffix = uuid.uuid4().hex[:10]
    order = Order(
        env,
        doubles,
        OrderInput(
            order_id=f"order-{suffix}",
            payment_id=f"pay-{suffix}",
            items=items or [{"name": "Widget", "price": "29.99", "quantity": 2}],
            address=dict(ADDRESS),
            tuning=Tuning(
                **{
                    "activity_timeout_seconds": 5,
                    "activity_max_attempts": 3,
                    "approval_timeout_seconds": APPROVAL_WINDOW_S,
                    **tuning,
                }
            ),
            shipping_task_queue=f"shipping-{suffix}",
            started_by=started_by,
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
