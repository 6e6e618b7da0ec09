"""Dataclasses passed into and out of workflows, activities, signals, updates and queries.

Plain values only (ids, strings, lists, dicts), never model instances: they cross the Temporal
boundary as JSON. Amounts travel as strings so that Decimal totals stay exact.

Unlike the rest of the code, this module keeps its annotations evaluated (no `from __future__
import annotations`): Temporal's converter reads a dataclass's type hints every time it decodes
one, and string annotations are evaluated anew each time, which made decoding these three times
slower (an OrderInput: 142 µs against 50 µs).
"""

from dataclasses import dataclass, field
from typing import Any

CLI_ACTOR = "temporal-signal"
CLI_VIA = "signal"


@dataclass
class Tuning:
    """Timeouts and retry limits, fixed per workflow at start so replays are deterministic."""

    activity_timeout_seconds: float = 2.0
    activity_max_attempts: int = 1000
    approval_timeout_seconds: float = 86400.0
    # Reviewer teams (lifecycle.review): an order whose total is at least `four_eyes_min_total`
    # (a decimal string; empty: never) needs two approvers; a claim lapses after
    # `claim_ttl_seconds`; an order still unapproved `escalate_after_seconds` after review began
    # is escalated (0: never).
    four_eyes_min_total: str = ""
    claim_ttl_seconds: float = 900.0
    escalate_after_seconds: float = 0.0


@dataclass
class OrderInput:
    order_id: str
    payment_id: str
    items: list[dict[str, Any]]
    address: dict[str, Any]
    tuning: Tuning = field(default_factory=Tuning)
    shipping_task_queue: str = "shipping-tq"
    # The user whose token started the order: never one of a four-eyes order's approvers.
    started_by: str = ""


@dataclass
class ActorRequest:
    """Payload of approve and cancel (as signal or update); the seed's signals carry none."""

    actor: str = CLI_ACTOR
    reason: str = ""
    via: str = CLI_VIA
    # Checked by the caller (the web side holds the permissions): the actor may take over
    # another reviewer's claim (orders.reassign_order).
    may_reassign: bool = False


@dataclass
class AddressChange:
    """Payload of `update_address`: the seed's `{"address": {...}}`, plus who asked."""

    address: dict[str, Any] = field(default_factory=dict)
    actor: str = CLI_ACTOR
    via: str = CLI_VIA


@dataclass
class ActionResult:
    accepted: bool
    state: str
    detail: str = ""


@dataclass
class StepInput:
    """Input of the activities that record one transition of an order."""

    order_id: str
    event_id: str
    actor: str = ""
    reason: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    via: str = ""


@dataclass
class PaymentInput:
    order_id: str
    payment_id: str
    event_id: str
    # Recorded (ORDER_APPROVED) by the same activity, just before the charge.
    approval: StepInput | None = None


@dataclass
class PaymentResult:
    payment_id: str
    amount: str
    status: str


@dataclass
class AddressUpdateInput:
    order_id: str
    event_id: str
    address: dict[str, Any]
    actor: str
    via: str = ""


@dataclass
class ShippingInput:
    order_id: str
    address: dict[str, Any]
    tuning: Tuning = field(default_factory=Tuning)
    # Address changes the order already made: the child numbers its ADDRESS_UPDATED events after them.
    address_changes: int = 0


@dataclass
class DispatchFailure:
    """Sent by the shipping child to its parent when the carrier refuses the package."""

    order_id: str
    reason: str


@dataclass
class ShippingResult:
    order_id: str
    dispatched: bool
    detail: str = ""
    tracking_number: str = ""
    # What the child accepted until its cut-off: a cancellation (then nothing was dispatched), and
    # the address it ended with after the address changes it applied.
    cancel: ActorRequest | None = None
    address: dict[str, Any] | None = None
    address_changes: int = 0


@dataclass
class StatusView:
    order_id: str
    state: str
    approved: bool
    approved_by: str
    cancel_requested: bool
    dispatch_started: bool
    address: dict[str, Any]
    approval_deadline: str | None
    payment_status: str | None
    failure_reason: str
    allowed_actions: list[str] = field(default_factory=list)
    # What the workflow's steps have written so far; `state` is ahead of it while a step runs.
    recorded_state: str = ""
    # The team's review (lifecycle.review): who holds the claim, the approvals given (actor, at).
    claimed_by: str = ""
    approvals: list[dict[str, str]] = field(default_factory=list)
    approvals_required: int = 1
    escalated: bool = False
