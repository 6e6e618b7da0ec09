"""The one place that says which order states exist and which human action each allows.

The workflow, the JSON API, the review console and admin all ask `allows()`; nothing else
encodes the state machine. This module imports nothing from Django so the workflow sandbox can
load it.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    ORDER_RECEIVED = "ORDER_RECEIVED"
    ORDER_VALIDATED = "ORDER_VALIDATED"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    PAYMENT_CHARGED = "PAYMENT_CHARGED"
    SHIPPING = "SHIPPING"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    APPROVAL_TIMEOUT = "APPROVAL_TIMEOUT"


class Action(StrEnum):
    APPROVE = "approve"
    CANCEL = "cancel"
    UPDATE_ADDRESS = "update_address"
    # Reviewer teams: take an order's review on (and give it back); see lifecycle.review.
    CLAIM = "claim"
    RELEASE = "release"


class EventType(StrEnum):
    ORDER_RECEIVED = "ORDER_RECEIVED"
    ORDER_VALIDATED = "ORDER_VALIDATED"
    PAYMENT_CHARGED = "PAYMENT_CHARGED"
    ADDRESS_UPDATED = "ADDRESS_UPDATED"
    ORDER_SHIPPED = "ORDER_SHIPPED"
    PACKAGE_PREPARED = "PACKAGE_PREPARED"
    CARRIER_DISPATCHED = "CARRIER_DISPATCHED"
    ORDER_APPROVED = "ORDER_APPROVED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    PAYMENT_REFUNDED = "PAYMENT_REFUNDED"
    APPROVAL_TIMEOUT = "APPROVAL_TIMEOUT"
    DISPATCH_FAILED = "DISPATCH_FAILED"
    ORDER_FAILED = "ORDER_FAILED"
    ORDER_COMPLETED = "ORDER_COMPLETED"
    ORDER_CLAIMED = "ORDER_CLAIMED"
    ORDER_RELEASED = "ORDER_RELEASED"
    FIRST_APPROVAL = "FIRST_APPROVAL"
    ORDER_ESCALATED = "ORDER_ESCALATED"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"


HAPPY_PATH: tuple[State, ...] = (
    State.ORDER_RECEIVED,
    State.ORDER_VALIDATED,
    State.AWAITING_APPROVAL,
    State.PAYMENT_CHARGED,
    State.SHIPPING,
    State.SHIPPED,
    State.COMPLETED,
)
# What a person reads for each state (admin, console); the stored value stays the name above.
STATE_LABELS: dict[State, str] = {
    State.ORDER_RECEIVED: "Received",
    State.ORDER_VALIDATED: "Validated",
    State.AWAITING_APPROVAL: "Awaiting approval",
    State.PAYMENT_CHARGED: "Payment charged",
    State.SHIPPING: "Shipping",
    State.SHIPPED: "Shipped",
    State.COMPLETED: "Completed",
    State.FAILED: "Failed",
    State.CANCELLED: "Cancelled",
    State.APPROVAL_TIMEOUT: "Approval timed out",
}
END_STATES = frozenset({State.COMPLETED, State.FAILED, State.CANCELLED, State.APPROVAL_TIMEOUT})

_BEFORE_APPROVAL = frozenset({State.ORDER_RECEIVED, State.ORDER_VALIDATED, State.AWAITING_APPROVAL})
_BEFORE_DISPATCH = _BEFORE_APPROVAL | {State.PAYMENT_CHARGED, State.SHIPPING}

ALLOWED_STATES: dict[Action, frozenset[State]] = {
    # An approval that arrives before review starts is remembered and applied at review.
    Action.APPROVE: _BEFORE_APPROVAL,
    # Cancel and address changes stay open until the carrier is dispatched; the workflow also
    # closes them the moment it hands the package to the carrier (dispatch_started below).
    Action.CANCEL: _BEFORE_DISPATCH,
    Action.UPDATE_ADDRESS: _BEFORE_DISPATCH,
    # A claim is on the review itself: taken and given back while the order awaits approval.
    Action.CLAIM: frozenset({State.AWAITING_APPROVAL}),
    Action.RELEASE: frozenset({State.AWAITING_APPROVAL}),
}


def allows(action: Action | str, state: State | str, *, approved: bool = False, dispatch_started: bool = False) -> bool:
    """Whether `action` may be applied to an order in `state`.

    `approved` and `dispatch_started` are what the workflow knows beyond the stored state; callers
    that only have the database row leave them False and the workflow has the final word.
    """
    action = Action(action)
    state = State(state)
    if state not in ALLOWED_STATES[action]:
        return False
    if action in (Action.APPROVE, Action.CLAIM, Action.RELEASE) and approved:
        return False
    return not (action in (Action.CANCEL, Action.UPDATE_ADDRESS) and dispatch_started)


def refusal_reason(
    action: Action | str, state: State | str, *, approved: bool = False, dispatch_started: bool = False
) -> str:
    """A sentence for a person saying why `action` is refused (empty when it is allowed)."""
    if allows(action, state, approved=approved, dispatch_started=dispatch_started):
        return ""
    action = Action(action)
    state = State(state)
    if state in END_STATES:
        return f"the order has ended ({state})"
    if action in (Action.CLAIM, Action.RELEASE) and not approved and state in _BEFORE_APPROVAL:
        return "the order is not up for review yet"
    if action in (Action.APPROVE, Action.CLAIM, Action.RELEASE):
        return "the order is already approved"
    if dispatch_started or state not in ALLOWED_STATES[action]:
        return "the carrier has already been dispatched"
    return f"not allowed while the order is {state}"


def refusal_message(action: Action | str, reason: str) -> str:
    """What a refused action is answered, everywhere: "Cannot <action>: <reason>"."""
    return f"Cannot {Action(action).value.replace('_', ' ')}: {reason}"


def allowed_actions(state: State | str) -> list[Action]:
    return [action for action in Action if allows(action, state)]
