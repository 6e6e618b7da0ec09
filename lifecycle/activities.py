"""Activities: one service call each, synchronous, run on the worker's thread pool.

Every activity may run more than once (retries, worker crashes, timeouts); the services they call
are idempotent, keyed by the deterministic event ids and the payment_id the workflow passes in.
Each first passes through `providers.network()`: the seed's simulated flaky network, with quick
retries inside the attempt before Temporal's durable retry (see `providers.with_quick_retries`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from temporalio import activity
from temporalio.exceptions import ApplicationError

from lifecycle import providers
from lifecycle.states import EventType, State
from lifecycle.types import (
    AddressUpdateInput,
    OrderInput,
    PaymentInput,
    PaymentResult,
    StepInput,
)
from lifecycle.validation import order_problems
from lifecycle.workflows import DISPATCH_REFUSED, ORDER_REJECTED, PAYMENT_CONFLICT, event_id
from orders import services

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def with_db(fn: F) -> F:
    """Workers never see Django's request cycle: drop stale connections around each attempt.

    A failure that keeps coming back is logged at ERROR with the order id once the attempt number
    reaches ACTIVITY_ERROR_LOG_ATTEMPT, so it reaches whoever watches the logs; earlier attempts
    are expected noise (flaky calls) and stay at INFO.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        except ApplicationError:
            raise  # a business verdict, not a fault
        except Exception as err:
            _log_failure(fn.__name__, args[0] if args else None, err)
            raise
        finally:
            close_old_connections()

    return wrapper  # type: ignore[return-value]


def _log_failure(name: str, arg: Any, err: Exception) -> None:
    attempt = activity.info().attempt if activity.in_activity() else 1
    level = logging.ERROR if attempt >= settings.ACTIVITY_ERROR_LOG_ATTEMPT else logging.INFO
    order_id = getattr(arg, "order_id", "?")
    # A database error's text can quote the row's values (a payment id): name the error only.
    detail = "" if isinstance(err, DatabaseError) else f": {err}"
    logger.log(
        level,
        "activity %s for order %s failed on attempt %d: %s%s",
        name,
        order_id,
        attempt,
        type(err).__name__,
        detail,
        extra={"order_id": order_id},
    )


def _transition(
    step: StepInput,
    event_type: EventType,
    state: State | None,
    order_fields: dict[str, Any] | None = None,
    **payload: Any,
) -> None:
    providers.network()
    body = {**step.payload, **payload}
    if step.actor:
        body["actor"] = step.actor
        body["via"] = step.via
    if step.reason:
        body["reason"] = step.reason
    services.record_transition(
        order_id=step.order_id,
        event_id=step.event_id,
        event_type=event_type,
        payload=body,
        state=state,
        order_fields=order_fields,
    )


@activity.defn
@with_db
def order_received(order: OrderInput) -> None:
    providers.network()
    services.order_receive(
        order_id=order.order_id,
        payment_id=order.payment_id,
        items=order.items,
        address=order.address,
        event_id=event_id(order.order_id, EventType.ORDER_RECEIVED),
        run_id=activity.info().workflow_run_id if activity.in_activity() else "",
    )


@activity.defn
@with_db
def order_validated(step: StepInput) -> None:
    """Record ORDER_VALIDATED and put the order up for review (AWAITING_APPROVAL, with the
    deadline the workflow chose) in one write; a retry finds the event and writes nothing."""
    from orders.models import Order

    problem = order_problems(Order.objects.values_list("items_json", flat=True).get(id=step.order_id))
    if problem:
        raise ApplicationError(problem, type=ORDER_REJECTED, non_retryable=True)
    review = {
        "approval_deadline": datetime.fromisoformat(step.payload["approval_deadline"]),
        "approvals_required": step.payload.get("approvals_required", 1),
    }
    _transition(step, EventType.ORDER_VALIDATED, State.AWAITING_APPROVAL, review)


@activity.defn
@with_db
def order_approved(step: StepInput) -> None:
    _transition(step, EventType.ORDER_APPROVED, None)


# --- the team's review (lifecycle.review): each event keeps the order's review columns current --
def _at() -> datetime:
    """The moment of the review event, for the order's columns (the event has its own timestamp)."""
    return timezone.now()


@activity.defn
@with_db
def order_claimed(step: StepInput) -> None:
    claimant = services.user_id_for(username=step.actor)
    _transition(step, EventType.ORDER_CLAIMED, None, {"claimed_by": claimant, "claimed_at": _at()})


@activity.defn
@with_db
def order_released(step: StepInput) -> None:
    _transition(step, EventType.ORDER_RELEASED, None, {"claimed_by": None, "claimed_at": None})


@activity.defn
@with_db
def first_approval(step: StepInput) -> None:
    fields: dict[str, Any] = {"first_approver": services.user_id_for(username=step.actor), "first_approved_at": _at()}
    if step.payload.get("released_claim"):
        fields |= {"claimed_by": None, "claimed_at": None}
    _transition(step, EventType.FIRST_APPROVAL, None, fields)


@activity.defn
@with_db
def order_escalated(step: StepInput) -> None:
    _transition(step, EventType.ORDER_ESCALATED, None, {"escalated_at": _at()})


@activity.defn
@with_db
def escalation_notified(step: StepInput) -> None:
    """Email the Supervisors about an escalated order, once per escalation (keyed by its event id)."""
    from orders import notifications

    notifications.escalation_notify(order_id=step.order_id, key=step.event_id)


@activity.defn
@with_db
def approval_timed_out(step: StepInput) -> None:
    _transition(step, EventType.APPROVAL_TIMEOUT, State.APPROVAL_TIMEOUT)


@activity.defn
@with_db
def payment_charged(payment: PaymentInput) -> PaymentResult:
    if payment.approval is not None:
        _transition(payment.approval, EventType.ORDER_APPROVED, None)
    try:
        row = services.payment_charge(
            order_id=payment.order_id, payment_id=payment.payment_id, event_id=payment.event_id
        )
    except services.PaymentConflict as err:
        raise ApplicationError(str(err), type=PAYMENT_CONFLICT, non_retryable=True) from err
    return PaymentResult(row.payment_id, str(row.amount), row.status)


@activity.defn
@with_db
def payment_refunded(payment: PaymentInput) -> PaymentResult:
    row = services.payment_refund(order_id=payment.order_id, payment_id=payment.payment_id, event_id=payment.event_id)
    return PaymentResult(row.payment_id, str(row.amount), row.status)


@activity.defn
@with_db
def update_order_address(change: AddressUpdateInput) -> None:
    providers.network()
    services.order_address_update(
        order_id=change.order_id, event_id=change.event_id, address=change.address, actor=change.actor, via=change.via
    )


@activity.defn
@with_db
def package_prepared(step: StepInput) -> None:
    _transition(step, EventType.PACKAGE_PREPARED, State.SHIPPING)


@activity.defn
@with_db
def carrier_dispatched(dispatch: AddressUpdateInput) -> str:
    try:
        tracking_number = providers.dispatch_to_carrier(order_id=dispatch.order_id, address=dispatch.address)
    except providers.CarrierRefused as err:
        raise ApplicationError(str(err), type=DISPATCH_REFUSED, non_retryable=True) from err
    services.record_transition(
        order_id=dispatch.order_id,
        event_id=dispatch.event_id,
        event_type=EventType.CARRIER_DISPATCHED,
        payload={"address": dispatch.address, "tracking_number": tracking_number},
    )
    return tracking_number


@activity.defn
@with_db
def order_shipped(step: StepInput) -> None:
    """Record ORDER_SHIPPED, then ORDER_COMPLETED: once shipped, the order is complete."""
    _transition(step, EventType.ORDER_SHIPPED, State.SHIPPED)
    completed = StepInput(step.order_id, event_id(step.order_id, EventType.ORDER_COMPLETED))
    _transition(completed, EventType.ORDER_COMPLETED, State.COMPLETED)


@activity.defn
@with_db
def order_cancelled(step: StepInput) -> None:
    _transition(step, EventType.ORDER_CANCELLED, State.CANCELLED)


@activity.defn
@with_db
def order_failed(step: StepInput) -> None:
    event_type = EventType(step.event_id.rsplit(":", 1)[-1])
    _transition(step, event_type, State.FAILED)


ORDER_ACTIVITIES = [
    order_received,
    order_validated,
    order_approved,
    order_claimed,
    order_released,
    first_approval,
    order_escalated,
    escalation_notified,
    approval_timed_out,
    payment_charged,
    payment_refunded,
    update_order_address,
    order_shipped,
    order_cancelled,
    order_failed,
]
# update_order_address too: the shipping child applies address changes until it dispatches.
SHIPPING_ACTIVITIES = [package_prepared, carrier_dispatched, update_order_address]
