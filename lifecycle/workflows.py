"""OrderWorkflow and its ShippingWorkflow child.

The workflow owns an order's state: every change of `orders.state` is made by one of its
activities, in order, and every human action is checked here against `lifecycle.states`.
Nothing in this module imports Django.

Human actions arrive two ways:
- as Updates (`approve`, `cancel`, `change_address`) whose validators refuse what the order's
  state does not allow, so the caller learns atomically whether the action was applied;
- as the seed's signals (`approve_order`, `cancel_order`, `update_address`), e.g. from the
  Temporal CLI; a signal the state does not allow is logged and ignored.

"Before the carrier is dispatched" has one exact moment, and one workflow decides it. While the
order ships, that is the shipping child (patch CHILD_CUTOFF): the parent starts it with the final
address and answers cancel and address-change Updates with ASK_SHIPPING, so the client asks
`shipping-<id>` instead; the child accepts them until it schedules `carrier_dispatched`, and
reports a cancellation and its final address in its result. No message passes between the two on
the happy path. Orders started before that patch keep the earlier hand-shake: the child signals
`package_ready`, the parent closes the window and signals `dispatch` with the final address.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from lifecycle.states import Action, EventType, PaymentStatus, State, refusal_message, refusal_reason
    from lifecycle.types import (
        ActionResult,
        ActorRequest,
        AddressChange,
        AddressUpdateInput,
        DispatchFailure,
        DispatchOrder,
        OrderInput,
        PaymentInput,
        PaymentResult,
        ShippingInput,
        ShippingResult,
        StatusView,
        StepInput,
        Tuning,
    )
    from lifecycle.validation import address_problems

# Error types an activity raises for a permanent business failure: retrying cannot help.
ORDER_REJECTED = "OrderRejected"
DISPATCH_REFUSED = "DispatchRefused"
PAYMENT_CONFLICT = "PaymentConflict"
NON_RETRYABLE_ERRORS = [ORDER_REJECTED, DISPATCH_REFUSED, PAYMENT_CONFLICT]
ACTION_NOT_ALLOWED = "ActionNotAllowed"
# Error type of an Update the parent leaves to its shipping child: the client sends it there.
ASK_SHIPPING = "AskShippingWorkflow"
INVALID_ADDRESS = "InvalidAddress"


def shipping_workflow_id(order_id: str) -> str:
    return f"shipping-{order_id}"


# Patch id: the three steps the contract does not name ride along with a neighbour, so the
# parent runs four activities instead of seven: `order_validated` also puts the order up for
# review, `payment_charged` first records the approval, `order_shipped` then records completion.
# Each activity still writes one event per transaction, so events and states are the same and a
# retry skips what an earlier attempt wrote. Orders started before replay on the seven steps.
GROUPED_STEPS = "grouped-steps"

# Patch id: every step whose writes depend on no Update runs as a *local* activity, inside the
# workflow task that reaches it, with no activity task and no extra workflow task of its own: the
# intake (`order_received`, `order_validated`), the child's `package_prepared` and
# `carrier_dispatched` (after the parent's `dispatch` signal, which is durable history), and
# `order_shipped` (by then the carrier has the package and every action is refused). A step that
# follows an accepted Update (the charge after an approval, a cancellation, an address change, a
# refund) stays a regular activity; see `run_step`. Orders started before replay as they ran.
LOCAL_STEPS = "local-steps"
LOCAL_STEP_NAMES = frozenset(
    {"order_received", "order_validated", "package_prepared", "carrier_dispatched", "order_shipped"}
)

# Patch id: the shipping child owns the dispatch cut-off (see the module docstring), so the
# package_ready / dispatch hand-shake (two signals, four workflow tasks) is gone. The child's
# `carrier_dispatched` is then a regular activity: scheduling it is what makes the cut-off durable
# before the carrier hears of the package. Implies GROUPED_STEPS and LOCAL_STEPS, which such an
# order no longer records (one marker instead of three); the child learns it from its input.
CHILD_CUTOFF = "child-cutoff"

RETRY_INITIAL_INTERVAL = timedelta(milliseconds=5)
RETRY_BACKOFF = 2.0
RETRY_MAX_INTERVAL = timedelta(milliseconds=200)


def activity_options(tuning: Tuning) -> dict[str, Any]:
    return {
        "start_to_close_timeout": timedelta(seconds=tuning.activity_timeout_seconds),
        "retry_policy": RetryPolicy(
            initial_interval=RETRY_INITIAL_INTERVAL,
            backoff_coefficient=RETRY_BACKOFF,
            maximum_interval=RETRY_MAX_INTERVAL,
            maximum_attempts=tuning.activity_max_attempts,
            non_retryable_error_types=NON_RETRYABLE_ERRORS,
        ),
    }


async def run_step(
    name: str,
    arg: Any,
    tuning: Tuning,
    *,
    result_type: type | None = None,
    local_steps: bool = False,
    local_names: frozenset[str] = LOCAL_STEP_NAMES,
) -> Any:
    """Run one step: a regular activity, or a local one if it is in `LOCAL_STEP_NAMES` and the
    workflow runs with `local_steps` (patch LOCAL_STEPS).

    A local activity saves two trips through the server (its activity task and the workflow task
    that follows it), but it runs inside the workflow task, before that task is complete. Its
    writes could therefore outlive an Update that the same task accepted and then lost when the
    worker died: an Update is not history until the task that accepted it completes (the chaos
    run caught exactly that when every database step was local). A signal is history before any
    task sees it, so a step that follows a signal is safe. Hence only `LOCAL_STEP_NAMES` are
    local; a step scheduled because of an accepted Update is a regular activity, scheduled by the
    completion of the very task that makes the Update durable. A lost task runs its local steps
    again, and every step is idempotent.
    """
    options = activity_options(tuning)
    if local_steps and name in local_names:
        return await workflow.execute_local_activity(name, arg, result_type=result_type, **options)
    return await workflow.execute_activity(name, arg, result_type=result_type, **options)


def event_id(order_id: str, event_type: EventType, sequence: int | None = None) -> str:
    """Deterministic event id: a retried activity finds its event already written."""
    suffix = f":{sequence}" if sequence is not None else ""
    return f"{order_id}:{event_type}{suffix}"


# An activity's failure arrives as ActivityError (cause: the ApplicationError); a business error
# raised in the workflow itself arrives bare. `business_error` reads both.
STEP_ERRORS = (ActivityError, ApplicationError)


def business_error(err: BaseException, error_type: str) -> ApplicationError | None:
    """The ApplicationError of `error_type` behind an activity or child failure, if that is the cause."""
    cause = err.__cause__ if isinstance(err, (ActivityError, ChildWorkflowError)) else err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type == error_type:
            return cause
        cause = cause.__cause__
    return None


class AddressBook:
    """An order's shipping address and the changes applied to it, one at a time, in order.

    `running` counts the changes accepted and not yet written; a dispatch waits until it is 0, so
    the carrier gets the address of every change accepted before the cut-off.
    """

    def __init__(self, order_id: str, address: dict[str, Any], tuning: Tuning, changes: int = 0) -> None:
        self.order_id = order_id
        self.address = dict(address)
        self.tuning = tuning
        self.changes = changes
        self.running = 0
        self._lock = asyncio.Lock()

    async def change(self, change: AddressChange) -> None:
        # Counted before the first await so that a cut-off evaluated next waits for this change.
        self.running += 1
        try:
            async with self._lock:
                self.changes += 1
                await run_step(
                    "update_order_address",
                    AddressUpdateInput(
                        order_id=self.order_id,
                        event_id=event_id(self.order_id, EventType.ADDRESS_UPDATED, self.changes),
                        address=dict(change.address),
                        actor=change.actor,
                        via=change.via,
                    ),
                    self.tuning,
                )
                self.address = dict(change.address)
        finally:
            self.running -= 1


def check_address(change: AddressChange, state: State) -> None:
    problems = address_problems(change.address)
    if problems:
        raise ApplicationError(f"Invalid address: {problems}", state.value, type=INVALID_ADDRESS)


def action_error(action: Action, reason: str, state: State) -> ApplicationError:
    return ApplicationError(refusal_message(action, reason), state.value, type=ACTION_NOT_ALLOWED)


class SeedSignals:
    """What the order and its shipping child share for the seed's signals: one that the state
    does not allow, or with an invalid address, is logged and ignored (a signal has no answer)."""

    def _order_id(self) -> str:
        raise NotImplementedError

    def _refusal(self, action: Action) -> str:
        raise NotImplementedError

    def _ignored(self, action: Action, change: AddressChange | None = None) -> bool:
        reason = self._refusal(action)
        if not reason and change is not None and address_problems(change.address):
            reason = "invalid address"
        if reason:
            workflow.logger.warning("Ignoring %s signal for %s: %s", action.value, self._order_id(), reason)
        return bool(reason)


@workflow.defn
class OrderWorkflow(SeedSignals):
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        self._order = order
        self._state = State.ORDER_RECEIVED
        self._addresses = AddressBook(order.order_id, order.address, order.tuning)
        self._approval: ActorRequest | None = None
        self._cancel: ActorRequest | None = None
        self._package_ready = False
        self._dispatch_started = False
        self._dispatch_failure: DispatchFailure | None = None
        self._approval_deadline: str | None = None
        self._payment_status: str | None = None
        self._failure_reason = ""
        self._grouped = False
        self._local = False
        self._child_cutoff = False
        # From the command that starts the shipping child until its result is in, the child decides
        # cancel and address changes (CHILD_CUTOFF); its handle once it has started.
        self._child_decides = False
        self._deciding_child: workflow.ChildWorkflowHandle[Any, ShippingResult] | None = None
        self._forwards: list[asyncio.Task[None]] = []

    # --- the lifecycle ------------------------------------------------------------------------
    @workflow.run
    async def run(self, order: OrderInput) -> str:
        # The newest patch first: an order that has it implies the older two and never records them.
        self._child_cutoff = workflow.patched(CHILD_CUTOFF)
        self._grouped = self._child_cutoff or workflow.patched(GROUPED_STEPS)
        self._local = self._child_cutoff or workflow.patched(LOCAL_STEPS)
        await self._activity("order_received", order)
        if not await self._validate():
            return await self._end()
        if self._cancel is None:
            await self._await_review()
        if self._state is State.APPROVAL_TIMEOUT:
            return await self._end()
        approval_step: StepInput | None = None
        if self._approval is not None:
            approval = self._approval
            approval_step = self._step(EventType.ORDER_APPROVED, actor=approval.actor, via=approval.via)
            if not self._grouped or self._cancel is not None:
                # Recorded on its own; grouped, only when no charge follows to record it.
                await self._activity("order_approved", approval_step)
                approval_step = None
        if self._cancel is None:
            await self._charge(approval_step)
        if self._cancel is None:
            await self._ship()
        if self._cancel is not None and self._state not in (State.FAILED, State.COMPLETED):
            await self._cancelled()
        return await self._end()

    async def _validate(self) -> bool:
        payload: dict[str, Any] = {}
        if self._grouped:
            # The approval window starts now; order_validated also puts the order up for review.
            timeout = timedelta(seconds=self._order.tuning.approval_timeout_seconds)
            self._approval_deadline = (workflow.now() + timeout).isoformat()
            payload["approval_deadline"] = self._approval_deadline
        try:
            await self._activity("order_validated", self._step(EventType.ORDER_VALIDATED, payload=payload))
        except STEP_ERRORS as err:
            rejected = business_error(err, ORDER_REJECTED)
            if rejected is None:
                raise
            self._approval_deadline = None  # never put up for review
            await self._fail(EventType.ORDER_FAILED, rejected.message)
            return False
        self._state = State.AWAITING_APPROVAL if self._grouped else State.ORDER_VALIDATED
        return True

    async def _await_review(self) -> None:
        if self._grouped:
            # The deadline was set before validation; the review waits until then.
            assert self._approval_deadline is not None
            deadline = datetime.fromisoformat(self._approval_deadline)
            timeout = max(deadline - workflow.now(), timedelta(0))
        else:
            timeout = timedelta(seconds=self._order.tuning.approval_timeout_seconds)
            self._approval_deadline = (workflow.now() + timeout).isoformat()
            await self._activity(
                "review_requested",
                self._step(EventType.ORDER_VALIDATED, payload={"approval_deadline": self._approval_deadline}),
            )
            self._state = State.AWAITING_APPROVAL
        try:
            await workflow.wait_condition(
                lambda: self._approval is not None or self._cancel is not None, timeout=timeout
            )
        except TimeoutError:
            self._state = State.APPROVAL_TIMEOUT
            await self._activity(
                "approval_timed_out",
                self._step(EventType.APPROVAL_TIMEOUT, payload={"approval_deadline": self._approval_deadline}),
            )

    async def _charge(self, approval: StepInput | None) -> None:
        order = self._order
        payment = PaymentInput(
            order.order_id, order.payment_id, event_id(order.order_id, EventType.PAYMENT_CHARGED), approval=approval
        )
        result: PaymentResult = await run_step("payment_charged", payment, order.tuning, result_type=PaymentResult)
        self._payment_status = result.status
        self._state = State.PAYMENT_CHARGED

    async def _ship(self) -> None:
        if self._child_cutoff:
            result = await self._ship_child_decides()
        else:
            result = await self._ship_hand_shake()
        if result is None or (self._cancel is not None and not self._dispatch_started):
            return
        if not result.dispatched:
            reason = self._dispatch_failure.reason if self._dispatch_failure else result.detail
            await self._refund()
            await self._fail(EventType.DISPATCH_FAILED, reason or "the carrier refused the package")
            return
        self._state = State.SHIPPED
        shipped = self._step(EventType.ORDER_SHIPPED, payload={"tracking_number": result.tracking_number})
        if self._grouped:
            shipped.then_complete = True
            await self._activity("order_shipped", shipped)
            self._state = State.COMPLETED
            return
        await self._activity("order_shipped", shipped)
        self._state = State.COMPLETED
        await self._activity("order_completed", self._step(EventType.ORDER_COMPLETED))

    async def _ship_child_decides(self) -> ShippingResult | None:
        """Start the child with the final address; it decides cancel and address changes until it
        dispatches (CHILD_CUTOFF). None: a cancellation arrived before it started."""
        order = self._order
        # Address changes accepted so far are written first: the child starts from the final address.
        await workflow.wait_condition(lambda: self._addresses.running == 0 or self._cancel is not None)
        if self._cancel is not None:
            return None
        self._state = State.SHIPPING
        self._child_decides = True
        self._deciding_child = await workflow.start_child_workflow(
            ShippingWorkflow.run,
            ShippingInput(
                order.order_id,
                dict(self._addresses.address),
                order.tuning,
                owns_cutoff=True,
                address_changes=self._addresses.changes,
            ),
            id=shipping_workflow_id(order.order_id),
            task_queue=order.shipping_task_queue,
        )
        try:
            result: ShippingResult = await self._deciding_child
        except ChildWorkflowError as err:
            result = ShippingResult(order.order_id, dispatched=False, detail=str(err.cause or err))
        self._child_decides = False
        self._deciding_child = None
        if result.address is not None:
            self._addresses.address = dict(result.address)
            self._addresses.changes = result.address_changes
        if result.cancel is not None:
            self._cancel = result.cancel
        else:
            self._dispatch_started = True
        return result

    async def _ship_hand_shake(self) -> ShippingResult:
        """Orders started before CHILD_CUTOFF: the parent closes the window when the child is ready."""
        order = self._order
        self._state = State.SHIPPING
        child = await workflow.start_child_workflow(
            ShippingWorkflow.run,
            ShippingInput(order.order_id, dict(self._addresses.address), order.tuning),
            id=shipping_workflow_id(order.order_id),
            task_queue=order.shipping_task_queue,
        )
        await workflow.wait_condition(lambda: self._package_ready or self._cancel is not None or child.done())
        if self._cancel is not None and not child.done():
            await child.signal(ShippingWorkflow.abort)
        elif not child.done():
            # The cut-off: from here on cancel and address changes are refused.
            self._dispatch_started = True
            await workflow.wait_condition(lambda: self._addresses.running == 0)
            await child.signal(ShippingWorkflow.dispatch, DispatchOrder(dict(self._addresses.address)))
        try:
            return await child
        except ChildWorkflowError as err:
            return ShippingResult(order.order_id, dispatched=False, detail=str(err.cause or err))

    async def _cancelled(self) -> None:
        assert self._cancel is not None
        if self._payment_status == PaymentStatus.COMPLETED:
            await self._refund()
        self._state = State.CANCELLED
        await self._activity(
            "order_cancelled",
            self._step(
                EventType.ORDER_CANCELLED, actor=self._cancel.actor, reason=self._cancel.reason, via=self._cancel.via
            ),
        )

    async def _refund(self) -> None:
        if self._payment_status != PaymentStatus.COMPLETED:
            return
        order = self._order
        refund = PaymentInput(order.order_id, order.payment_id, event_id(order.order_id, EventType.PAYMENT_REFUNDED))
        result: PaymentResult = await run_step("payment_refunded", refund, order.tuning, result_type=PaymentResult)
        self._payment_status = result.status

    async def _fail(self, event_type: EventType, reason: str) -> None:
        self._state = State.FAILED
        self._failure_reason = reason
        await self._activity("order_failed", self._step(event_type, reason=reason))

    async def _end(self) -> str:
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state.value

    # --- helpers ------------------------------------------------------------------------------
    def _step(
        self,
        event_type: EventType,
        *,
        actor: str = "",
        reason: str = "",
        via: str = "",
        payload: dict[str, Any] | None = None,
    ) -> StepInput:
        return StepInput(
            order_id=self._order.order_id,
            event_id=event_id(self._order.order_id, event_type),
            actor=actor,
            reason=reason,
            payload=payload or {},
            via=via,
        )

    async def _activity(self, name: str, arg: Any, *, result_type: type | None = None) -> Any:
        return await run_step(name, arg, self._order.tuning, result_type=result_type, local_steps=self._local)

    def _refusal(self, action: Action) -> str:
        return refusal_reason(
            action, self._state, approved=self._approval is not None, dispatch_started=self._dispatch_started
        ) or ("a cancellation is already under way" if self._cancel is not None else "")

    def _check(self, action: Action) -> None:
        if self._child_decides and action is not Action.APPROVE:
            raise ApplicationError(
                f"the shipping workflow {shipping_workflow_id(self._order.order_id)} decides this action",
                self._state.value,
                type=ASK_SHIPPING,
            )
        reason = self._refusal(action)
        if reason:
            raise action_error(action, reason, self._state)

    def _accept_approval(self, request: ActorRequest) -> ActionResult:
        self._approval = request
        return ActionResult(True, self._state.value, "approved")

    def _accept_cancel(self, request: ActorRequest) -> ActionResult:
        self._cancel = request
        return ActionResult(True, self._state.value, "cancellation accepted")

    async def _change_address(self, change: AddressChange) -> ActionResult:
        await self._addresses.change(change)
        return ActionResult(True, self._state.value, "address updated")

    # --- updates: the API's way in, refused atomically when not allowed ------------------------
    @workflow.update(name="approve")
    def approve(self, request: ActorRequest) -> ActionResult:
        return self._accept_approval(request)

    @approve.validator
    def _validate_approve(self, request: ActorRequest) -> None:
        self._check(Action.APPROVE)

    @workflow.update(name="cancel")
    def cancel(self, request: ActorRequest) -> ActionResult:
        return self._accept_cancel(request)

    @cancel.validator
    def _validate_cancel(self, request: ActorRequest) -> None:
        self._check(Action.CANCEL)

    @workflow.update(name="change_address")
    async def change_address(self, change: AddressChange) -> ActionResult:
        return await self._change_address(change)

    @change_address.validator
    def _validate_change_address(self, change: AddressChange) -> None:
        self._check(Action.UPDATE_ADDRESS)
        check_address(change, self._state)

    # --- the seed's signals -------------------------------------------------------------------
    @workflow.signal(name="approve_order")
    def approve_order(self, request: ActorRequest | None = None) -> None:
        if self._ignored(Action.APPROVE):
            return
        self._accept_approval(request or ActorRequest())

    @workflow.signal(name="cancel_order")
    def cancel_order(self, request: ActorRequest | None = None) -> None:
        if self._child_decides:
            self._forward("cancel_order", request or ActorRequest())
            return
        if self._ignored(Action.CANCEL):
            return
        self._accept_cancel(request or ActorRequest())

    @workflow.signal(name="update_address")
    async def update_address(self, change: AddressChange) -> None:
        if self._child_decides:
            self._forward("update_address", change)
            return
        if not self._ignored(Action.UPDATE_ADDRESS, change):
            await self._change_address(change)

    def _forward(self, signal: str, arg: Any) -> None:
        """A seed signal sent to the order while the shipping child decides goes on to the child
        (once it has started; if it has ended by then, the signal came too late and is dropped)."""

        async def forward() -> None:
            await workflow.wait_condition(lambda: self._deciding_child is not None or not self._child_decides)
            if self._deciding_child is None:
                workflow.logger.warning("Ignoring %s signal for %s: shipping has ended", signal, self._order.order_id)
                return
            try:
                await self._deciding_child.signal(signal, arg)
            except FailureError as err:  # the child ended in between
                workflow.logger.warning("Could not pass %s on for %s: %s", signal, self._order.order_id, err)

        self._forwards.append(asyncio.create_task(forward()))

    def _order_id(self) -> str:
        return self._order.order_id

    # --- from the shipping child --------------------------------------------------------------
    @workflow.signal(name="package_ready")
    def package_ready(self) -> None:
        self._package_ready = True

    @workflow.signal(name="dispatch_failed")
    def dispatch_failed(self, failure: DispatchFailure) -> None:
        self._dispatch_failure = failure

    @workflow.query(name="status")
    def status(self) -> StatusView:
        return StatusView(
            order_id=self._order.order_id,
            state=self._state.value,
            approved=self._approval is not None,
            approved_by=self._approval.actor if self._approval else "",
            cancel_requested=self._cancel is not None,
            dispatch_started=self._dispatch_started,
            address=self._addresses.address,
            approval_deadline=self._approval_deadline,
            payment_status=self._payment_status,
            failure_reason=self._failure_reason,
            allowed_actions=[a.value for a in Action if not self._refusal(a)],
        )


# The child's steps when it owns the cut-off: the dispatch is a regular activity (CHILD_CUTOFF).
CHILD_LOCAL_STEP_NAMES = frozenset({"package_prepared"})


@workflow.defn
class ShippingWorkflow(SeedSignals):
    """Prepares the package and hands it to the carrier.

    Started with `owns_cutoff` (CHILD_CUTOFF), it also decides cancel and address changes until
    the dispatch: the same Updates and seed signals as the order, refused once the dispatch is
    scheduled. Otherwise it waits for the parent's `dispatch` signal (the earlier hand-shake).
    """

    @workflow.init
    def __init__(self, shipping: ShippingInput) -> None:
        self._shipping = shipping
        self._dispatch: DispatchOrder | None = None
        self._aborted = False
        self._addresses = AddressBook(shipping.order_id, shipping.address, shipping.tuning, shipping.address_changes)
        self._cancel: ActorRequest | None = None
        self._dispatch_started = False

    @workflow.run
    async def run(self, shipping: ShippingInput) -> ShippingResult:
        if shipping.owns_cutoff:
            return await self._prepare_then_dispatch()
        order_id = shipping.order_id
        local_steps = workflow.patched(LOCAL_STEPS)
        await self._prepare(local_steps)
        parent = workflow.info().parent
        parent_handle = workflow.get_external_workflow_handle(parent.workflow_id) if parent else None
        if parent_handle is None:
            self._dispatch = DispatchOrder(shipping.address)
        else:
            await parent_handle.signal("package_ready")
        await workflow.wait_condition(lambda: self._dispatch is not None or self._aborted)
        if self._dispatch is None:
            return ShippingResult(order_id, dispatched=False, detail="shipment aborted: the order was cancelled")
        return await self._hand_to_carrier(self._dispatch.address, local_steps, LOCAL_STEP_NAMES)

    async def _prepare_then_dispatch(self) -> ShippingResult:
        await self._prepare(True, CHILD_LOCAL_STEP_NAMES)
        # The cut-off: address changes already accepted are written first, then nothing more is.
        await workflow.wait_condition(lambda: self._addresses.running == 0)
        addresses = self._addresses
        if self._cancel is not None:
            return ShippingResult(
                self._shipping.order_id,
                dispatched=False,
                detail="shipment cancelled before dispatch",
                cancel=self._cancel,
                address=addresses.address,
                address_changes=addresses.changes,
            )
        self._dispatch_started = True
        result = await self._hand_to_carrier(addresses.address, True, CHILD_LOCAL_STEP_NAMES)
        result.address, result.address_changes = addresses.address, addresses.changes
        return result

    async def _prepare(self, local_steps: bool, local_names: frozenset[str] = LOCAL_STEP_NAMES) -> None:
        order_id = self._shipping.order_id
        await run_step(
            "package_prepared",
            StepInput(order_id, event_id(order_id, EventType.PACKAGE_PREPARED)),
            self._shipping.tuning,
            local_steps=local_steps,
            local_names=local_names,
        )

    async def _hand_to_carrier(
        self, address: dict[str, Any], local_steps: bool, local_names: frozenset[str]
    ) -> ShippingResult:
        order_id = self._shipping.order_id
        try:
            tracking_number: str = await run_step(
                "carrier_dispatched",
                AddressUpdateInput(order_id, event_id(order_id, EventType.CARRIER_DISPATCHED), address, ""),
                self._shipping.tuning,
                result_type=str,
                local_steps=local_steps,
                local_names=local_names,
            )
        except STEP_ERRORS as err:
            refused = business_error(err, DISPATCH_REFUSED)
            if refused is None:
                raise
            parent = workflow.info().parent
            if parent is not None:
                await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                    "dispatch_failed", DispatchFailure(order_id, refused.message)
                )
            return ShippingResult(order_id, dispatched=False, detail=refused.message)
        return ShippingResult(order_id, dispatched=True, tracking_number=tracking_number)

    # --- from the parent (the hand-shake of orders started before CHILD_CUTOFF) ----------------
    @workflow.signal(name="dispatch")
    def dispatch(self, order: DispatchOrder) -> None:
        self._dispatch = order

    @workflow.signal(name="abort")
    def abort(self) -> None:
        self._aborted = True

    # --- cancel and address changes until the dispatch (CHILD_CUTOFF) --------------------------
    def _refusal(self, action: Action) -> str:
        if not self._shipping.owns_cutoff:
            return "the order's workflow decides this action"
        if self._cancel is not None:
            return "a cancellation is already under way"
        return refusal_reason(action, State.SHIPPING, dispatch_started=self._dispatch_started)

    def _check(self, action: Action) -> None:
        reason = self._refusal(action)
        if reason:
            raise action_error(action, reason, State.SHIPPING)

    @workflow.update(name="cancel")
    def cancel(self, request: ActorRequest) -> ActionResult:
        self._cancel = request
        return ActionResult(True, State.SHIPPING.value, "cancellation accepted")

    @cancel.validator
    def _validate_cancel(self, request: ActorRequest) -> None:
        self._check(Action.CANCEL)

    @workflow.update(name="change_address")
    async def change_address(self, change: AddressChange) -> ActionResult:
        await self._addresses.change(change)
        return ActionResult(True, State.SHIPPING.value, "address updated")

    @change_address.validator
    def _validate_change_address(self, change: AddressChange) -> None:
        self._check(Action.UPDATE_ADDRESS)
        check_address(change, State.SHIPPING)

    @workflow.signal(name="cancel_order")
    def cancel_order(self, request: ActorRequest | None = None) -> None:
        if not self._ignored(Action.CANCEL):
            self._cancel = request or ActorRequest()

    @workflow.signal(name="update_address")
    async def update_address(self, change: AddressChange) -> None:
        if not self._ignored(Action.UPDATE_ADDRESS, change):
            await self._addresses.change(change)

    def _order_id(self) -> str:
        return self._shipping.order_id

    @workflow.query(name="dispatch_started")
    def dispatch_started(self) -> bool:
        return self._dispatch_started
