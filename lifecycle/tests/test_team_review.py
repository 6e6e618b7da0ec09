"""A team's review without a database: claims, four-eyes approval, the starter, escalation.

The real OrderWorkflow on the time-skipping test server with the activity doubles
(workflow_doubles.py); the rules themselves are in lifecycle.review. End-to-end through the API,
the database and real workers: orders/tests/test_api_team_review.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from temporalio.api.enums.v1 import EventType as HistoryEventType

from lifecycle.review import Review, approvals_required
from lifecycle.states import Action, State, refusal_reason
from lifecycle.tests.workflow_doubles import RITA, SAM, Doubles, Order, an_order, run
from lifecycle.types import ActorRequest, StepInput
from lifecycle.workflows import ACTION_NOT_ALLOWED

BIG = [{"name": "Piano", "price": "1200.00", "quantity": 1}]
SUE = ActorRequest(actor="sue", via="api", may_reassign=True)
ALICE = ActorRequest(actor="alice", via="api")  # whose token starts the four-eyes orders


async def timers(order: Order) -> int:
    history = await order.handle.fetch_history()
    return sum(1 for e in history.events if e.event_type == HistoryEventType.EVENT_TYPE_TIMER_STARTED)


# --- the rules alone -----------------------------------------------------------------------------
def test_four_eyes_starts_at_the_threshold_and_an_empty_threshold_means_never() -> None:
    assert approvals_required(Decimal("999.99"), "1000.00") == 1
    assert approvals_required(Decimal("1000.00"), "1000.00") == 2
    assert approvals_required(Decimal("1000000"), "") == 1


def test_the_next_wake_is_the_nearest_of_claim_expiry_escalation_and_deadline() -> None:
    began = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    review = Review(
        approvals_required=1, started_by="", claim_ttl=timedelta(seconds=60), escalate_after=timedelta(seconds=120)
    )
    review.began = began
    deadline = began + timedelta(seconds=300)
    assert review.next_wake(deadline) == began + timedelta(seconds=120)
    review.claim("rita", began + timedelta(seconds=10))
    assert review.next_wake(deadline) == began + timedelta(seconds=70)
    review.release()
    review.escalated = True
    assert review.next_wake(deadline) == deadline


def test_a_claim_is_taken_only_while_the_order_awaits_approval() -> None:
    assert refusal_reason(Action.CLAIM, State.ORDER_RECEIVED) == "the order is not up for review yet"
    assert refusal_reason(Action.CLAIM, State.AWAITING_APPROVAL) == ""
    assert refusal_reason(Action.CLAIM, State.AWAITING_APPROVAL, approved=True) == "the order is already approved"
    assert refusal_reason(Action.RELEASE, State.PAYMENT_CHARGED) == "the order is already approved"
    assert refusal_reason(Action.CLAIM, State.CANCELLED) == "the order has ended (CANCELLED)"
    assert refusal_reason(Action.APPROVE, State.PAYMENT_CHARGED) == "the order is already approved"


# --- claims ----------------------------------------------------------------------------------------
def test_a_claim_refuses_anyone_elses_approval_naming_the_claimant_but_never_a_cancel(
    time_skipping: Any, doubles: Doubles
) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            assert (await order.update("claim", RITA)).detail == "claimed by rita"
            refusal = await order.refused("approve", SAM)
            assert (refusal.type, refusal.message) == (
                ACTION_NOT_ALLOWED,
                "Cannot approve: the order is claimed by rita",
            )
            assert (await order.refused("claim", SAM)).message == "Cannot claim: the order is claimed by rita"
            assert (await order.refused("release", SAM)).message == "Cannot release: the order is claimed by rita"
            assert (await order.status()).claimed_by == "rita"
            await order.update("cancel", SAM)
            assert await order.result() == "CANCELLED"
            claimed: StepInput = doubles.arg("order_claimed")
            assert (claimed.event_id, claimed.actor) == (f"{order.id}:ORDER_CLAIMED:1", "rita")
            assert "payment_charged" not in doubles.names()

    run(time_skipping, scenario)


def test_the_claimant_releases_and_then_anyone_may_approve(time_skipping: Any, doubles: Doubles) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("claim", RITA)
            await order.update("release", RITA)
            assert (await order.refused("release", RITA)).message == "Cannot release: the order is not claimed"
            await order.update("approve", SAM)
            assert await order.result() == "COMPLETED"
            released: StepInput = doubles.arg("order_released")
            assert (released.event_id, released.actor) == (f"{order.id}:ORDER_RELEASED:2", "rita")

    run(time_skipping, scenario)


def test_a_supervisor_takes_a_claim_over_releasing_it_first(time_skipping: Any, doubles: Doubles) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("claim", RITA)
            await order.update("claim", SUE)
            assert (await order.refused("approve", RITA)).message == "Cannot approve: the order is claimed by sue"
            review = [(name, arg.actor) for name, arg in doubles.calls if name in ("order_claimed", "order_released")]
            assert review == [("order_claimed", "rita"), ("order_released", "rita"), ("order_claimed", "sue")]
            assert doubles.calls[-2][1].payload == {"by": "sue"}
            await order.update("approve", SUE)
            assert await order.result() == "COMPLETED"

    run(time_skipping, scenario)


def test_an_unused_claim_lapses_and_the_order_escalates_once_before_it_times_out(
    time_skipping: Any, doubles: Doubles
) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles, claim_ttl_seconds=60, escalate_after_seconds=120) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("claim", RITA)
            assert await order.result() == "APPROVAL_TIMEOUT"  # the test server skips the 300 s
            review = [name for name in doubles.names() if name not in ("order_received", "order_validated")]
            assert review == [
                "order_claimed",
                "order_released",
                "order_escalated",
                "escalation_notified",
                "approval_timed_out",
            ]
            released: StepInput = doubles.arg("order_released")
            assert (released.actor, released.reason) == ("rita", "expired")
            assert doubles.arg("escalation_notified").event_id == f"{order.id}:ORDER_ESCALATED"
            status = await order.status()
            assert (status.claimed_by, status.escalated) == ("", True)

    run(time_skipping, scenario)


# --- four-eyes ---------------------------------------------------------------------------------
def test_four_eyes_needs_two_different_approvers_and_charges_once(time_skipping: Any, doubles: Doubles) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles, items=BIG, four_eyes_min_total="1000") as order:
            await order.reaches(State.AWAITING_APPROVAL)
            first = await order.update("approve", RITA)
            assert first.detail == "first of two approvals; the order needs a second reviewer"
            status = await order.status()
            assert (status.state, status.approvals_required, len(status.approvals)) == ("AWAITING_APPROVAL", 2, 1)
            refusal = await order.refused("approve", RITA)
            assert refusal.message == "Cannot approve: rita gave the first approval; the order needs a second reviewer"
            await order.update("approve", SAM)
            assert await order.result() == "COMPLETED"
            assert doubles.names().count("payment_charged") == 1
            assert doubles.arg("first_approval").actor == "rita"
            approval = doubles.arg("payment_charged").approval
            assert (approval.actor, approval.payload) == ("sam", {"first_approver": "rita"})

    run(time_skipping, scenario)


def test_the_starter_of_a_four_eyes_order_gives_neither_approval(time_skipping: Any, doubles: Doubles) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles, items=BIG, started_by="alice", four_eyes_min_total="1000") as order:
            await order.reaches(State.AWAITING_APPROVAL)
            assert "alice started this order" in (await order.refused("approve", ALICE)).message
            await order.update("approve", RITA)
            assert "alice started this order" in (await order.refused("approve", ALICE)).message
            assert "first_approval" in doubles.names()
            assert "payment_charged" not in doubles.names()

    run(time_skipping, scenario)


def test_below_the_threshold_the_starter_approves_alone(time_skipping: Any, doubles: Doubles) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles, started_by="alice", four_eyes_min_total="1000") as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("approve", ALICE)
            assert await order.result() == "COMPLETED"

    run(time_skipping, scenario)


def test_a_first_approval_ends_the_approvers_claim(time_skipping: Any, doubles: Doubles) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles, items=BIG, four_eyes_min_total="1000") as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("claim", RITA)
            await order.update("approve", RITA)
            assert (await order.status()).claimed_by == ""
            assert doubles.arg("first_approval").payload == {"released_claim": True}
            await order.update("approve", SAM)
            assert await order.result() == "COMPLETED"

    run(time_skipping, scenario)


# --- the happy path costs nothing more ---------------------------------------------------------------
def test_a_quick_approval_below_the_threshold_costs_the_review_timer_and_no_review_activity(
    time_skipping: Any, doubles: Doubles
) -> None:
    async def scenario() -> None:
        async with an_order(time_skipping, doubles, four_eyes_min_total="1000", escalate_after_seconds=150) as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.update("approve", RITA)
            assert await order.result() == "COMPLETED"
            # The review's one timer, and the one beside the shipping child (OrderState is not
            # written yet: the order has rested nowhere for REST_BEFORE_PUBLISHING).
            assert await timers(order) == 2
            review = {"order_claimed", "order_released", "first_approval", "order_escalated", "escalation_notified"}
            assert not review & set(doubles.names())

    run(time_skipping, scenario)


def test_the_seed_signal_counts_as_one_approver_of_a_four_eyes_order(time_skipping: Any, doubles: Doubles) -> None:
    """`temporal workflow signal --name approve_order` twice: one first approval, the second
    ignored (the same actor); a reviewer's Update then completes the order."""

    async def scenario() -> None:
        async with an_order(time_skipping, doubles, items=BIG, four_eyes_min_total="1000") as order:
            await order.reaches(State.AWAITING_APPROVAL)
            await order.handle.signal("approve_order")
            await order.handle.signal("approve_order")
            await doubles.reached("first_approval")
            status = await order.status()
            assert (status.state, [a["actor"] for a in status.approvals]) == ("AWAITING_APPROVAL", ["temporal-signal"])
            await order.update("approve", RITA)
            assert await order.result() == "COMPLETED"
            assert doubles.names().count("first_approval") == 1

    run(time_skipping, scenario)
