"""OrderWorkflow and its ShippingWorkflow child.

The workflow owns an order's state: every change of `orders.state` is made by one of its
activities, in order, and every human action is checked here against `lifecycle.states`.
Nothing in this module imports Django.

`OrderWorkflow.run` reads as the README's state diagram, one arrow per comment. Each step says
at its call how it runs (decision record docs/decisions/0002-local-and-regular-steps.md):
- `local_step`: inside the workflow task that reaches it, with no activity task of its own. Only
  for a step whose writes depend on no accepted Update: the intake, the package's preparation
  and the shipped order's record.
- `activity_step`: a regular activity task, for every step scheduled because of an accepted
  Update (the charge after an approval, a cancellation, an address change, a refund) and for the
  dispatch, whose scheduling is the cut-off. A local activity writes before the workflow task
  that accepted an Update completes; if the worker died then, the Update would be lost while its
  effect stayed. A regular activity is scheduled by the completion of that very task.

Human actions arrive two ways:
- as Updates (`approve`, `cancel`, `change_address`) whose validators refuse what the order's
  state does not allow, so the caller learns atomically whether the action was applied;
- as the seed's signals (`approve_order`, `cancel_order`, `update_address`), e.g. from the
  Temporal CLI; a signal the state does not allow is logged and ignored.

"Before the carrier is dispatched" is one exact moment, decided by one workflow. While the order
ships, that is the shipping child: the order starts it with the final address and answers cancel
and address-change Updates with ASK_SHIPPING, so the client asks `shipping-<id>` instead. The
child accepts them until it schedules `carrier_dispatched`, and reports a cancellation and its
final address in its result. No message passes between the two on the happy path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, FailureError

with workflow.unsafe.imports_passed_through():
    from lifecycle import metrics
    from lifecycle.review import NEEDS_SECOND_REVIEWER, Review, approvals_required
    from lifecycle.states import Action, EventType, PaymentStatus, State, refusal_message, refusal_reason
    from lifecycle.types import (
        ActionResult,
        ActorRequest,
        AddressChange,
        AddressUpdateInput,
        DispatchFailure,
        OrderInput,
        PaymentInput,
        PaymentResult,
        ShippingInput,
        ShippingResult,
        StatusView,
        StepInput,
        Tuning,
    )
    from lifecycle.validation import address_problems, order_total

# Error types an activity raises for a permanent business failure: retrying cannot help.
ORDER_REJECTED = "OrderRejected"
DISPATCH_REFUSED = "DispatchRefused"
PAYMENT_CONFLICT = "PaymentConflict"
NON_RETRYABLE_ERRORS = [ORDER_REJECTED, DISPATCH_REFUSED, PAYMENT_CONFLICT]
ACTION_NOT_ALLOWED = "ActionNotAllowed"
# Error type of an Update the parent leaves to its shipping child: the client sends it there.
ASK_SHIPPING = "AskShippingWorkflow"
INVALID_ADDRESS = "InvalidAddress"

# The order's state as a search attribute (Keyword), kept by OrderWorkflow where the order
# rests, so that `temporal workflow list --query "OrderState='AWAITING_APPROVAL'"` finds the
# waiting orders. Each change is a visibility write, which on the dev server cost more CPU than
# anything else an order asks of it (docs/decisions/0009), so OrderState is written only:
# - once the order has rested in a state for REST_BEFORE_PUBLISHING: it waited that long for a
#   reviewer (on the review's one timer), the carrier, a refund or an address change (_resting_on);
# - from then on, at every state the order comes to rest in, and at its end.
# An order that rests nowhere that long (approved and shipped within seconds) is never written
# to visibility: its workflow's close status and result say how it ended.
ORDER_STATE = SearchAttributeKey.for_keyword("OrderState")
REST_BEFORE_PUBLISHING = timedelta(seconds=5)
# States a happy order only passes through within one workflow task (the server sees search
# attributes as a task ends): not written even once OrderState is set, unless the order comes to
# rest in them (_resting_on).
PASSING_STATES = frozenset({State.PAYMENT_CHARGED, State.SHIPPED})

T = TypeVar("T")

RETRY_INITIAL_INTERVAL = timedelta(milliseconds=5)
RETRY_BACKOFF = 2.0
RETRY_MAX_INTERVAL = timedelta(milliseconds=200)


def shipping_workflow_id(order_id: str) -> str:
    return f"shipping-{order_id}"


def event_id(order_id: str, event_type: EventType, sequence: int | None = None) -> str:
    """Deterministic event id: a retried activity finds its event already written."""
    suffix = f":{sequence}" if sequence is not None else ""
    return f"{order_id}:{event_type}{suffix}"


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


async def local_step(name: str, arg: Any, tuning: Tuning, *, result_type: type | None = None) -> Any:
    """Run the activity `name` as a local activity (a step whose writes depend on no Update)."""
    return await workflow.execute_local_activity(name, arg, result_type=result_type, **activity_options(tuning))


async def activity_step(name: str, arg: Any, tuning: Tuning, *, result_type: type | None = None) -> Any:
    """Run the activity `name` as a regular activity task."""
    return await workflow.execute_activity(name, arg, result_type=result_type, **activity_options(tuning))


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
                update = AddressUpdateInput(
                    order_id=self.order_id,
                    event_id=event_id(self.order_id, EventType.ADDRESS_UPDATED, self.changes),
                    address=dict(change.address),
                    actor=change.actor,
                    via=change.via,
                )
                await activity_step("update_order_address", update, self.tuning)
                self.address = dict(change.address)
        finally:
            self.running -= 1

    def settled(self) -> bool:
        return self.running == 0


class ReviewLog:
    """The review's own events (claims, releases, the first approval, the escalation), written
    one at a time in the order the workflow decided them, so the order's claim columns end as the
    workflow left them. `running` counts the events decided and not yet written."""

    def __init__(self, order_id: str, tuning: Tuning) -> None:
        self.order_id = order_id
        self.tuning = tuning
        self.claims = 0  # ORDER_CLAIMED and ORDER_RELEASED events so far: their ids' sequence
        self.running = 0
        self._lock = asyncio.Lock()

    async def record(
        self, name: str, event_type: EventType, request: ActorRequest | None = None, **payload: Any
    ) -> None:
        # Numbered before the first await: the ids follow the order of the decisions.
        sequence = None
        if event_type in (EventType.ORDER_CLAIMED, EventType.ORDER_RELEASED):
            self.claims += 1
            sequence = self.claims
        step = StepInput(
            order_id=self.order_id,
            event_id=event_id(self.order_id, event_type, sequence),
            actor=request.actor if request else "",
            reason=request.reason if request else "",
            via=request.via if request else "",
            payload=payload,
        )
        self.running += 1
        try:
            async with self._lock:
                await activity_step(name, step, self.tuning)
        finally:
            self.running -= 1

    def settled(self) -> bool:
        return self.running == 0


def check_address(change: AddressChange, state: State) -> None:
    problems = address_problems(change.address)
    if problems:
        raise ApplicationError(f"Invalid address: {problems}", state.value, type=INVALID_ADDRESS)


def action_error(action: Action, reason: str, state: State) -> ApplicationError:
    return ApplicationError(refusal_message(action, reason), state.value, type=ACTION_NOT_ALLOWED)


class DecidesUntilDispatch:
    """What the order and its shipping child share: each in turn decides cancel and address
    changes until the dispatch, through the same Updates (refused atomically by their validators)
    and the same seed signals (one the state does not allow, or with an invalid address, is
    logged and ignored: a signal has no answer)."""

    _cancel: ActorRequest | None
    _addresses: AddressBook

    def _order_id(self) -> str:
        raise NotImplementedError

    def _current_state(self) -> State:
        raise NotImplementedError

    def _refusal(self, action: Action) -> str:
        raise NotImplementedError

    def _check(self, action: Action) -> None:
        reason = self._refusal(action)
        if reason:
            raise action_error(action, reason, self._current_state())

    async def _passed_on(self, signal: str, arg: Any) -> bool:
        """Whether a seed signal went on to another workflow instead of being decided here."""
        return False

    def _ignored(self, action: Action, change: AddressChange | None = None) -> bool:
        reason = self._refusal(action)
        if not reason and change is not None and address_problems(change.address):
            reason = "invalid address"
        if reason:
            workflow.logger.warning("Ignoring %s signal for %s: %s", action.value, self._order_id(), reason)
        return bool(reason)

    @workflow.update(name="cancel")
    def cancel(self, request: ActorRequest) -> ActionResult:
        self._cancel = request
        return ActionResult(True, self._current_state().value, "cancellation accepted")

    @cancel.validator
    def _validate_cancel(self, request: ActorRequest) -> None:
        self._check(Action.CANCEL)

    @workflow.update(name="change_address")
    async def change_address(self, change: AddressChange) -> ActionResult:
        await self._addresses.change(change)
        return ActionResult(True, self._current_state().value, "address updated")

    @change_address.validator
    def _validate_change_address(self, change: AddressChange) -> None:
        self._check(Action.UPDATE_ADDRESS)
        check_address(change, self._current_state())

    @workflow.signal(name="cancel_order")
    async def cancel_order(self, request: ActorRequest | None = None) -> None:
        request = request or ActorRequest()
        if not await self._passed_on("cancel_order", request) and not self._ignored(Action.CANCEL):
            self._cancel = request

    @workflow.signal(name="update_address")
    async def update_address(self, change: AddressChange) -> None:
        if not await self._passed_on("update_address", change) and not self._ignored(Action.UPDATE_ADDRESS, change):
            await self._addresses.change(change)


@workflow.defn
class OrderWorkflow(DecidesUntilDispatch):
    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        self._order = order
        self.__state = State.ORDER_RECEIVED
        self._published: State | None = None  # OrderState as written to visibility; None: never
        # The state as the workflow's steps have written it so far: `_state` runs ahead of it while
        # the step that writes the new state is under way (reconcile compares with both).
        self._recorded = State.ORDER_RECEIVED
        self._addresses = AddressBook(order.order_id, order.address, order.tuning)
        self._approval: ActorRequest | None = None
        self._cancel: ActorRequest | None = None
        self._approval_deadline: str | None = None
        self._payment_status: str | None = None
        self._failure_reason = ""
        self._dispatch_started = False
        self._dispatch_failure: DispatchFailure | None = None
        # From the command that starts the shipping child until its result is in, the child
        # decides cancel and address changes; `_shipping` is its handle once it has started.
        self._child_decides = False
        self._shipping: workflow.ChildWorkflowHandle[Any, ShippingResult] | None = None
        tuning = order.tuning
        self._review = Review(
            approvals_required=approvals_required(order_total(order.items), tuning.four_eyes_min_total),
            started_by=order.started_by,
            claim_ttl=timedelta(seconds=tuning.claim_ttl_seconds),
            escalate_after=timedelta(seconds=tuning.escalate_after_seconds) if tuning.escalate_after_seconds else None,
        )
        self._review_log = ReviewLog(order.order_id, tuning)

    @property
    def _state(self) -> State:
        return self.__state

    @_state.setter
    def _state(self, state: State) -> None:
        self.__state = state
        if self._published is not None and state not in PASSING_STATES:
            self._publish_state()

    def _publish_state(self) -> None:
        """Upsert OrderState if it differs from the state; the upsert goes out with the commands of
        the same workflow task (no task of its own)."""
        if self.__state is not self._published:
            workflow.upsert_search_attributes([ORDER_STATE.value_set(self.__state.value)])
            self._published = self.__state

    # --- the lifecycle: one comment per arrow of the README's state diagram --------------------
    @workflow.run
    async def run(self, order: OrderInput) -> str:
        metrics.order_started()
        # [*] --> ORDER_RECEIVED: the API stored the row; this records the event.
        await local_step("order_received", order, order.tuning)
        if self._cancel is not None:
            return await self._cancelled()  # ORDER_RECEIVED --> CANCELLED
        if not await self._validate():
            return await self._end()  # ORDER_RECEIVED --> FAILED
        # ORDER_RECEIVED --> ORDER_VALIDATED --> AWAITING_APPROVAL: one local step.
        if not await self._await_review():  # claims, a first approval, escalation: lifecycle.review
            return await self._end()  # AWAITING_APPROVAL --> APPROVAL_TIMEOUT
        if self._cancel is not None:
            return await self._cancelled()  # AWAITING_APPROVAL --> CANCELLED
        await self._charge()  # AWAITING_APPROVAL --> PAYMENT_CHARGED: approve
        if self._cancel is not None:
            return await self._cancelled()  # PAYMENT_CHARGED --> CANCELLED (refund)
        shipment = await self._ship()  # PAYMENT_CHARGED --> SHIPPING
        if shipment is None or shipment.cancel is not None:
            return await self._cancelled()  # PAYMENT_CHARGED or SHIPPING --> CANCELLED (refund)
        if not shipment.dispatched:
            return await self._dispatch_failed(shipment)  # SHIPPING --> FAILED (refund)
        return await self._shipped(shipment)  # SHIPPING --> SHIPPED --> COMPLETED

    async def _validate(self) -> bool:
        """`order_validated` records ORDER_VALIDATED and puts the order up for review with its
        deadline, in one attempt. False: the order was rejected (ORDER_FAILED)."""
        timeout = timedelta(seconds=self._order.tuning.approval_timeout_seconds)
        deadline = (workflow.now() + timeout).isoformat()
        payload: dict[str, Any] = {"approval_deadline": deadline}
        if self._review.four_eyes:
            payload["approvals_required"] = self._review.approvals_required
        validated = self._step(EventType.ORDER_VALIDATED, payload=payload)
        try:
            await local_step("order_validated", validated, self._order.tuning)
        except STEP_ERRORS as err:
            rejected = business_error(err, ORDER_REJECTED)
            if rejected is None:
                raise
            await self._fail(EventType.ORDER_FAILED, rejected.message)
            return False
        self._approval_deadline = deadline
        self._review.began = workflow.now()
        self._state = self._recorded = State.AWAITING_APPROVAL
        return True

    def _decided(self) -> bool:
        return self._approval is not None or self._cancel is not None

    async def _await_review(self) -> bool:
        """Wait for the approval (or both of a four-eyes order's) or a cancellation until the
        deadline. On the way a lapsed claim is released and an overdue order escalated; one timer
        at a time runs, to the nearest of those moments (lifecycle.review). False: the deadline
        passed."""
        assert self._approval_deadline is not None
        deadline = datetime.fromisoformat(self._approval_deadline)
        review = self._review
        now = review_start = workflow.now()
        # An approval sent before review is already here: no wait, and no timer.
        while not self._decided():
            if now >= deadline:
                timed_out = self._step(
                    EventType.APPROVAL_TIMEOUT, payload={"approval_deadline": self._approval_deadline}
                )
                metrics.review_decided("timed_out", workflow.now() - review_start)
                await self._record_end(State.APPROVAL_TIMEOUT, "approval_timed_out", timed_out)
                return False
            publish_at = self._publish_at(review_start)
            if review.claim_lapsed(now):
                claimant = ActorRequest(actor=review.release(), reason="expired", via="timer")
                await self._review_log.record("order_released", EventType.ORDER_RELEASED, claimant)
            elif review.escalation_due(now):
                await self._escalate()
            elif publish_at is not None and now >= publish_at:
                self._publish_state()  # AWAITING_APPROVAL: the order has waited for a reviewer
            else:
                wake, version = review.next_wake(deadline), review.version
                if publish_at is not None:
                    wake = min(wake, publish_at)
                try:
                    await workflow.wait_condition(
                        lambda seen=version: self._decided() or review.version != seen, timeout=wake - now
                    )
                except TimeoutError:
                    now = max(workflow.now(), wake)  # what the timer was set for is due now
                    continue
            now = workflow.now()
        metrics.review_decided("cancelled" if self._cancel is not None else "approved", workflow.now() - review_start)
        return True

    async def _escalate(self) -> None:
        """ORDER_ESCALATED once, then the supervisors' email (itself sent once per escalation)."""
        self._review.escalated = True
        payload = {"approval_deadline": self._approval_deadline, "claimed_by": self._review.claimant}
        await self._review_log.record("order_escalated", EventType.ORDER_ESCALATED, **payload)
        notice = self._step(EventType.ORDER_ESCALATED, payload=payload)
        await activity_step("escalation_notified", notice, self._order.tuning)

    async def _charge(self) -> None:
        """`payment_charged` first records the approval (ORDER_APPROVED), then charges once."""
        assert self._approval is not None
        order = self._order
        approval = self._approved_step()
        if not self._review_log.settled():  # a claim's event is written before the approval's
            await workflow.wait_condition(self._review_log.settled)
        payment = PaymentInput(
            order.order_id, order.payment_id, event_id(order.order_id, EventType.PAYMENT_CHARGED), approval=approval
        )
        result: PaymentResult = await activity_step("payment_charged", payment, order.tuning, result_type=PaymentResult)
        self._payment_status = result.status
        self._state = self._recorded = State.PAYMENT_CHARGED

    async def _ship(self) -> ShippingResult | None:
        """Start the shipping child with the final address and wait for its result; it decides
        cancel and address changes until it dispatches. None: a cancellation came first."""
        order = self._order
        # Address changes accepted so far are written first: the child starts from the final address.
        if not (self._addresses.settled() or self._cancel is not None):
            # The order rests in PAYMENT_CHARGED meanwhile.
            await self._resting_on(
                workflow.wait_condition(lambda: self._addresses.settled() or self._cancel is not None)
            )
        if self._cancel is not None:
            return None
        self._state = State.SHIPPING
        self._child_decides = True
        shipping = ShippingInput(
            order.order_id, dict(self._addresses.address), order.tuning, address_changes=self._addresses.changes
        )
        try:
            self._shipping = await workflow.start_child_workflow(
                ShippingWorkflow.run,
                shipping,
                id=shipping_workflow_id(order.order_id),
                task_queue=order.shipping_task_queue,
            )
            result = await self._resting_on(self._shipping)
            self._recorded = State.SHIPPING  # the child's first step, package_prepared, wrote it
        except ChildWorkflowError as err:
            result = ShippingResult(order.order_id, dispatched=False, detail=str(err.cause or err))
        finally:
            self._child_decides = False
            self._shipping = None
        if result.address is not None:
            self._addresses.address = dict(result.address)
            self._addresses.changes = result.address_changes
        if result.cancel is not None:
            self._cancel = result.cancel
        else:
            self._dispatch_started = True
        return result

    def _publish_at(self, since: datetime) -> datetime | None:
        """When the order, resting in its state since `since`, gets OrderState written; None once
        it has been (from then on the state setter keeps it current)."""
        return since + REST_BEFORE_PUBLISHING if self._published is None else None

    async def _resting_on(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` while the order rests in its state. Once OrderState has been written,
        the state is written at once (even a passing one such as PAYMENT_CHARGED); before, only if
        the wait takes REST_BEFORE_PUBLISHING, on a timer that runs only then."""
        if self._published is not None:
            self._publish_state()
            return await awaitable
        task = asyncio.ensure_future(awaitable)
        try:
            await workflow.wait_condition(task.done, timeout=REST_BEFORE_PUBLISHING)
        except TimeoutError:
            self._publish_state()
        return await task

    async def _shipped(self, shipment: ShippingResult) -> str:
        """`order_shipped` records ORDER_SHIPPED, then ORDER_COMPLETED. Local: by now the carrier
        has the package and every action is refused."""
        self._state = State.SHIPPED
        shipped = self._step(EventType.ORDER_SHIPPED, payload={"tracking_number": shipment.tracking_number})
        await local_step("order_shipped", shipped, self._order.tuning)
        self._state = self._recorded = State.COMPLETED
        return await self._end()

    async def _dispatch_failed(self, shipment: ShippingResult) -> str:
        reason = self._dispatch_failure.reason if self._dispatch_failure else shipment.detail
        await self._refund()
        await self._fail(EventType.DISPATCH_FAILED, reason or "the carrier refused the package")
        return await self._end()

    async def _cancelled(self) -> str:
        cancel = self._cancel
        assert cancel is not None
        if self._approval is not None and self._payment_status is None:
            # Approved, then cancelled before the charge: the approval stays on record.
            await activity_step("order_approved", self._approved_step(), self._order.tuning)
        await self._refund()
        cancelled = self._step(EventType.ORDER_CANCELLED, actor=cancel.actor, reason=cancel.reason, via=cancel.via)
        await self._record_end(State.CANCELLED, "order_cancelled", cancelled)
        return await self._end()

    async def _refund(self) -> None:
        if self._payment_status != PaymentStatus.COMPLETED:
            return
        order = self._order
        refund = PaymentInput(order.order_id, order.payment_id, event_id(order.order_id, EventType.PAYMENT_REFUNDED))
        # A paid order rests where it is (PAYMENT_CHARGED too) while refunded.
        result: PaymentResult = await self._resting_on(
            activity_step("payment_refunded", refund, order.tuning, result_type=PaymentResult)
        )
        self._payment_status = result.status

    async def _fail(self, event_type: EventType, reason: str) -> None:
        self._failure_reason = reason
        await self._record_end(State.FAILED, "order_failed", self._step(event_type, reason=reason))

    async def _record_end(self, state: State, name: str, step: StepInput) -> None:
        """End the order: from now on every action is refused (the state changes first); address
        changes accepted before are written first, so nothing is recorded after the end."""
        self._state = state
        await workflow.wait_condition(lambda: self._addresses.settled() and self._review_log.settled())
        await activity_step(name, step, self._order.tuning)
        self._recorded = state

    async def _end(self) -> str:
        await workflow.wait_condition(workflow.all_handlers_finished)
        metrics.order_ended(self._state.value)
        return self._state.value

    def _approved_step(self) -> StepInput:
        """ORDER_APPROVED with its actor, and the first approver of a four-eyes order."""
        assert self._approval is not None
        first = self._review.first_approver
        return self._step(
            EventType.ORDER_APPROVED,
            actor=self._approval.actor,
            via=self._approval.via,
            payload={"first_approver": first} if first else None,
        )

    def _step(
        self,
        event_type: EventType,
        *,
        actor: str = "",
        reason: str = "",
        via: str = "",
        payload: dict[str, Any] | None = None,
    ) -> StepInput:
        order_id = self._order.order_id
        return StepInput(
            order_id=order_id,
            event_id=event_id(order_id, event_type),
            actor=actor,
            reason=reason,
            payload=payload or {},
            via=via,
        )

    # --- what an action is answered ------------------------------------------------------------
    def _refusal(self, action: Action) -> str:
        reason = refusal_reason(
            action, self._state, approved=self._approval is not None, dispatch_started=self._dispatch_started
        ) or ("a cancellation is already under way" if self._cancel is not None else "")
        if not reason and action is Action.RELEASE and not self._review.claimant:
            return "the order is not claimed"
        return reason

    def _check(self, action: Action) -> None:
        if self._child_decides and action in (Action.CANCEL, Action.UPDATE_ADDRESS):
            raise ApplicationError(
                f"the shipping workflow {shipping_workflow_id(self._order.order_id)} decides this action",
                self._state.value,
                type=ASK_SHIPPING,
            )
        super()._check(action)

    def _current_state(self) -> State:
        return self._state

    async def _passed_on(self, signal: str, arg: Any) -> bool:
        """A seed cancel_order / update_address that arrives while the shipping child decides goes
        on to the child, once it has started; if the child has ended by then, it came too late."""
        if not self._child_decides:
            return False
        await workflow.wait_condition(lambda: self._shipping is not None or not self._child_decides)
        if self._shipping is None:
            workflow.logger.warning("Ignoring %s signal for %s: shipping has ended", signal, self._order.order_id)
            return True
        try:
            await self._shipping.signal(signal, arg)
        except FailureError as err:  # the child ended in between
            workflow.logger.warning("Could not pass %s on for %s: %s", signal, self._order.order_id, err)
        return True

    def _order_id(self) -> str:
        return self._order.order_id

    # --- approve, as an Update and as the seed's signal (cancel and address changes: the base) ---
    def _check_review(self, action: Action, request: ActorRequest) -> None:
        """The team's rules (lifecycle.review) after the state's: claims, four-eyes, the starter."""
        self._check(action)
        review = self._review
        if action is Action.APPROVE:
            reason = review.approval_refusal(request.actor)
        elif action is Action.CLAIM:
            reason = review.claim_refusal(request.actor, may_reassign=request.may_reassign)
        else:
            reason = review.release_refusal(request.actor, may_reassign=request.may_reassign)
        if reason:
            raise action_error(action, reason, self._state)

    async def _approve(self, request: ActorRequest) -> ActionResult:
        """Count the approval; the last one needed lets the order go on to payment, a first one
        of two is recorded (FIRST_APPROVAL) and the order waits for a second reviewer."""
        held_claim = self._review.claimant == request.actor
        if self._review.approve(request.actor, workflow.now()):
            self._approval = request
            return ActionResult(True, self._state.value, "approved")
        # The first approver's claim ends with their approval (the FIRST_APPROVAL event says so).
        extra = {"released_claim": True} if held_claim else {}
        await self._review_log.record("first_approval", EventType.FIRST_APPROVAL, request, **extra)
        return ActionResult(True, self._state.value, f"first of two approvals; the order {NEEDS_SECOND_REVIEWER}")

    @workflow.update(name="approve")
    async def approve(self, request: ActorRequest) -> ActionResult:
        return await self._approve(request)

    @approve.validator
    def _validate_approve(self, request: ActorRequest) -> None:
        self._check_review(Action.APPROVE, request)

    @workflow.signal(name="approve_order")
    async def approve_order(self, request: ActorRequest | None = None) -> None:
        request = request or ActorRequest()
        reason = self._refusal(Action.APPROVE) or self._review.approval_refusal(request.actor)
        if reason:
            workflow.logger.warning("Ignoring approve signal for %s: %s", self._order.order_id, reason)
            return
        await self._approve(request)

    # --- claims: Updates only (a claim needs its answer) ---------------------------------------
    @workflow.update(name="claim")
    async def claim(self, request: ActorRequest) -> ActionResult:
        previous = self._review.claim(request.actor, workflow.now())
        if previous:  # a supervisor's takeover: the claim is first taken from its holder
            taken = ActorRequest(actor=previous, reason=f"taken over by {request.actor}", via=request.via)
            await self._review_log.record("order_released", EventType.ORDER_RELEASED, taken, by=request.actor)
        await self._review_log.record("order_claimed", EventType.ORDER_CLAIMED, request)
        return ActionResult(True, self._state.value, f"claimed by {request.actor}")

    @claim.validator
    def _validate_claim(self, request: ActorRequest) -> None:
        self._check_review(Action.CLAIM, request)

    @workflow.update(name="release")
    async def release(self, request: ActorRequest) -> ActionResult:
        previous = self._review.release()
        extra = {"claimed_by": previous} if previous != request.actor else {}
        await self._review_log.record("order_released", EventType.ORDER_RELEASED, request, **extra)
        return ActionResult(True, self._state.value, "released")

    @release.validator
    def _validate_release(self, request: ActorRequest) -> None:
        self._check_review(Action.RELEASE, request)

    # --- from the shipping child (the seed's "signals parent on dispatch failure") --------------
    @workflow.signal(name="dispatch_failed")
    def dispatch_failed(self, failure: DispatchFailure) -> None:
        self._dispatch_failure = failure

    @workflow.query(name="status")
    def status(self) -> StatusView:
        return StatusView(
            order_id=self._order.order_id,
            state=self._state.value,
            recorded_state=self._recorded.value,
            approved=self._approval is not None,
            approved_by=self._approval.actor if self._approval else "",
            cancel_requested=self._cancel is not None,
            dispatch_started=self._dispatch_started,
            address=self._addresses.address,
            approval_deadline=self._approval_deadline,
            payment_status=self._payment_status,
            failure_reason=self._failure_reason,
            allowed_actions=[a.value for a in Action if not self._refusal(a)],
            claimed_by=self._review.claimant,
            approvals=[{"actor": a.actor, "at": a.at} for a in self._review.approvals],
            approvals_required=self._review.approvals_required,
            escalated=self._review.escalated,
        )


@workflow.defn
class ShippingWorkflow(DecidesUntilDispatch):
    """Prepares the package and hands it to the carrier. Until it schedules the dispatch it
    decides cancel and address changes: the same Updates and seed signals as the order."""

    @workflow.init
    def __init__(self, shipping: ShippingInput) -> None:
        self._shipping = shipping
        self._addresses = AddressBook(shipping.order_id, shipping.address, shipping.tuning, shipping.address_changes)
        self._cancel: ActorRequest | None = None
        self._dispatch_started = False

    @workflow.run
    async def run(self, shipping: ShippingInput) -> ShippingResult:
        order_id, tuning = shipping.order_id, shipping.tuning
        # PACKAGE_PREPARED (the order's state becomes SHIPPING in the database).
        prepared = StepInput(order_id, event_id(order_id, EventType.PACKAGE_PREPARED))
        await local_step("package_prepared", prepared, tuning)
        # The cut-off: address changes already accepted are written first, then nothing more is.
        await workflow.wait_condition(self._addresses.settled)
        if self._cancel is not None:
            return await self._result(dispatched=False, detail="shipment cancelled before dispatch")
        self._dispatch_started = True
        # A regular activity: scheduling it is what makes the cut-off durable before the carrier
        # hears of the package. A local dispatch could reach the carrier in a workflow task that a
        # dying worker never completes, and the retried task could then accept a cancel.
        dispatch = AddressUpdateInput(
            order_id, event_id(order_id, EventType.CARRIER_DISPATCHED), self._addresses.address, ""
        )
        try:
            tracking_number: str = await activity_step("carrier_dispatched", dispatch, tuning, result_type=str)
        except STEP_ERRORS as err:
            refused = business_error(err, DISPATCH_REFUSED)
            if refused is None:
                raise
            parent = workflow.info().parent
            if parent is not None:
                await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                    "dispatch_failed", DispatchFailure(order_id, refused.message)
                )
            return await self._result(dispatched=False, detail=refused.message)
        return await self._result(dispatched=True, tracking_number=tracking_number)

    async def _result(self, *, dispatched: bool, detail: str = "", tracking_number: str = "") -> ShippingResult:
        """What the order learns: the outcome, a cancellation this child took, the final address."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ShippingResult(
            self._shipping.order_id,
            dispatched=dispatched,
            detail=detail,
            tracking_number=tracking_number,
            cancel=self._cancel,
            address=self._addresses.address,
            address_changes=self._addresses.changes,
        )

    # --- cancel and address changes until the dispatch -----------------------------------------
    def _refusal(self, action: Action) -> str:
        if self._cancel is not None:
            return "a cancellation is already under way"
        return refusal_reason(action, State.SHIPPING, dispatch_started=self._dispatch_started)

    def _current_state(self) -> State:
        return State.SHIPPING

    def _order_id(self) -> str:
        return self._shipping.order_id

    @workflow.query(name="dispatch_started")
    def dispatch_started(self) -> bool:
        return self._dispatch_started
