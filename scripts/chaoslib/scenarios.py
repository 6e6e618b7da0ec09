"""The orders of a chaos run: a seeded mix of scenarios, each driven through the API with the end
state it must reach."""

from __future__ import annotations

import queue
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from scripts.chaoslib.api import Api, ApiGaveUp, Reply
from scripts.chaoslib.poller import CHARGED_STATES, END_STATES, StatePoller

UNDELIVERABLE_ZIP = "00000"
WAIT_CHARGED_SECONDS = 120.0

# Scenario mix: (kind, weight). Weights, not exact shares: the seeded RNG picks per order.
MIX: tuple[tuple[str, int], ...] = (
    ("approve", 26),
    ("double_approve", 12),
    ("duplicate_start", 12),
    ("cancel_before_approval", 12),
    ("cancel_after_payment", 16),
    ("address_change", 11),
    ("undeliverable", 11),
    ("claimed", 10),
)
# The users whose tokens approve four-eyes orders (the starter's token may not) and claim orders.
REVIEWERS = ("chaos-rita", "chaos-sam")
WAIT_REVIEW_SECONDS = 60.0


@dataclass
class Plan:
    index: int
    kind: str
    order_id: str
    body: dict[str, Any]
    new_address: dict[str, str] | None = None


@dataclass
class Outcome:
    """What the driver saw, and what the order must end as."""

    plan: Plan
    started: bool = False
    run_id: str = ""
    expected_states: frozenset[str] = frozenset()
    expected_charges: frozenset[int] = frozenset({1})
    anomalies: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trail: list[str] = field(default_factory=list)  # every API attempt: time, action, answer

    def expect(self, *states: str, charges: tuple[int, ...] = (1,)) -> None:
        self.expected_states = frozenset(states)
        self.expected_charges = frozenset(charges)


@dataclass(frozen=True)
class Review:
    """The two reviewers' tokens and the four-eyes threshold the stack runs with ('' for none)."""

    tokens: tuple[str, str]
    four_eyes_min_total: str = ""

    def four_eyes(self, plan: Plan) -> bool:
        try:
            threshold = Decimal(self.four_eyes_min_total.strip())
        except InvalidOperation:
            return False
        total = sum(Decimal(item["price"]) * item["quantity"] for item in plan.body["items"])
        return total >= threshold


def make_plans(count: int, seed: int, mix: dict[str, int]) -> list[Plan]:
    rng = random.Random(seed)
    kinds = list(mix)
    weights = list(mix.values())
    plans = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        order_id = f"chaos-{index:04d}"
        items = [
            {"name": f"Item {n}", "price": f"{rng.randint(100, 9999) / 100:.2f}", "quantity": rng.randint(1, 3)}
            for n in range(rng.randint(1, 3))
        ]
        zip_code = UNDELIVERABLE_ZIP if kind == "undeliverable" else f"{rng.randint(10000, 99999)}"
        body = {
            "payment_id": f"pay-{order_id}",
            "items": items,
            "address": {"street": f"{index} Main St", "city": "Springfield", "zip": zip_code},
        }
        new_address = (
            {"street": f"{index} Chaos Ave", "city": "Shelbyville", "zip": "90001"}
            if kind == "address_change"
            else None
        )
        plans.append(Plan(index, kind, order_id, body, new_address))
    return plans


class Driver:
    """Runs each order's scenario through the API, a bounded number at a time."""

    def __init__(
        self,
        api: Api,
        poller: StatePoller,
        plans: list[Plan],
        concurrency: int,
        halt: threading.Event,
        review: Review | None = None,
    ) -> None:
        self.api = api
        self.review = review or Review(("", ""))
        self.poller = poller
        self.halt = halt
        self.outcomes: dict[str, Outcome] = {}
        self.finished = 0
        self.lock = threading.Lock()
        self.todo: queue.Queue[Plan] = queue.Queue()
        for plan in plans:
            self.todo.put(plan)
        self.threads = [
            threading.Thread(target=self._work, name=f"driver-{n}", daemon=True) for n in range(concurrency)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self.threads)

    def _work(self) -> None:
        while not self.halt.is_set():
            try:
                plan = self.todo.get_nowait()
            except queue.Empty:
                return
            outcome = Outcome(plan)
            try:
                SCENARIOS[plan.kind](self, outcome)
            except ApiGaveUp as err:
                outcome.anomalies.append(f"gave up: {err}")
            except Exception as err:  # a bug in the driver must not hide the other orders' results
                outcome.anomalies.append(f"driver error: {type(err).__name__}: {err}")
            with self.lock:
                self.outcomes[plan.order_id] = outcome
                self.finished += 1

    # --- steps shared by the scenarios --------------------------------------------------------
    def start_order(self, outcome: Outcome) -> Reply:
        plan = outcome.plan
        reply = self.api.call("POST", f"/orders/{plan.order_id}/start", plan.body, outcome.trail)
        # 200 is right too when an earlier attempt created the order but its answer was lost.
        if reply.status == 201 or (reply.status == 200 and reply.uncertain):
            outcome.started = True
            outcome.run_id = str(reply.body.get("run_id", ""))
        else:
            outcome.anomalies.append(f"start answered {reply.status}: {reply.detail}")
        return reply

    def act(self, outcome: Outcome, action: str, body: dict[str, Any] | None = None, *, by: int = -1) -> Reply:
        """`action` with the starter's token, or with reviewer `by`'s (0 or 1)."""
        # One key per intended action, kept through its retries.
        key = f"{action}-{uuid.uuid4().hex}"
        token = self.review.tokens[by] if by >= 0 else None
        path = f"/orders/{outcome.plan.order_id}/signals/{action}"
        return self.api.call("POST", path, body, outcome.trail, key, token=token)

    def approve(self, outcome: Outcome, *, first_by: int = 0) -> Reply:
        """Approve as the starter; a four-eyes order by both reviewers instead, `first_by` first."""
        if not self.review.four_eyes(outcome.plan):
            reply = self.act(outcome, "approve")
        else:
            first = self.act(outcome, "approve", by=first_by)
            if not (first.status == 202 or (first.uncertain and _first_approval_taken(first))):
                outcome.anomalies.append(f"first approval answered {first.status}: {first.detail}")
            reply = self.act(outcome, "approve", by=1 - first_by)
        if not (reply.status == 202 or (reply.uncertain and _already_approved(reply))):
            outcome.anomalies.append(f"approve answered {reply.status}: {reply.detail}")
        return reply


def _already_approved(reply: Reply) -> bool:
    """A 409 that proves an approval was applied: it says so, or the order has since completed (only
    an approved order can). An approval retried through 503s can arrive after the order finished."""
    return reply.status == 409 and ("already approved" in reply.detail or "has ended (COMPLETED)" in reply.detail)


def _first_approval_taken(reply: Reply) -> bool:
    """A 409 that proves a reviewer's first approval of a four-eyes order was applied."""
    return reply.status == 409 and ("gave the first approval" in reply.detail or _already_approved(reply))


def _cancel_taken(reply: Reply) -> bool:
    """A 409 that proves an earlier attempt of this cancel was applied."""
    return reply.status == 409 and ("cancellation is already under way" in reply.detail or "CANCELLED" in reply.detail)


def scenario_approve(driver: Driver, outcome: Outcome) -> None:
    outcome.expect("COMPLETED")
    if driver.start_order(outcome).status in (200, 201):
        driver.approve(outcome)


def scenario_double_approve(driver: Driver, outcome: Outcome) -> None:
    """Two approvals at once, as a double click would send them: one charge, whatever they answer."""
    outcome.expect("COMPLETED")
    if driver.start_order(outcome).status not in (200, 201):
        return
    # A four-eyes order: the two reviewers at once; either may be first, both must be applied.
    four_eyes = driver.review.four_eyes(outcome.plan)
    replies: list[Reply] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            replies.append(driver.act(outcome, "approve", by=1 if four_eyes else -1))
        except BaseException as err:  # re-raised below, on the scenario's own thread
            errors.append(err)

    other = threading.Thread(target=second, daemon=True)
    other.start()
    replies.append(driver.act(outcome, "approve", by=0 if four_eyes else -1))
    other.join()
    if errors:
        raise errors[0]
    statuses = sorted(reply.status for reply in replies)
    outcome.notes.append(f"double approve answered {statuses}")
    # One of the two must be the one applied (unless a lost answer hides it); the other is a 409.
    applied = any(r.status == 202 for r in replies) or any(r.uncertain for r in replies)
    if four_eyes:
        applied = all(r.status == 202 or (r.uncertain and _first_approval_taken(r)) for r in replies)
    if not applied or not all(r.status == 202 or _already_approved(r) or _first_approval_taken(r) for r in replies):
        outcome.anomalies.append(f"double approve answered {[(r.status, r.detail) for r in replies]}")


def scenario_duplicate_start(driver: Driver, outcome: Outcome) -> None:
    outcome.expect("COMPLETED")
    if driver.start_order(outcome).status not in (200, 201):
        return
    again = driver.api.call("POST", f"/orders/{outcome.plan.order_id}/start", outcome.plan.body, outcome.trail)
    if again.status != 200 or again.body.get("run_id") != outcome.run_id:
        outcome.anomalies.append(
            f"repeated start answered {again.status} run {again.body.get('run_id')} (first run {outcome.run_id})"
        )
    driver.approve(outcome)


def scenario_cancel_before_approval(driver: Driver, outcome: Outcome) -> None:
    outcome.expect("CANCELLED", charges=(0,))
    if driver.start_order(outcome).status not in (200, 201):
        return
    reply = driver.act(outcome, "cancel")
    if not (reply.status == 202 or (reply.uncertain and _cancel_taken(reply))):
        outcome.anomalies.append(f"cancel answered {reply.status}: {reply.detail}")


def scenario_cancel_after_payment(driver: Driver, outcome: Outcome) -> None:
    """Approve, wait until the money moved, cancel: a refund, or a 409 once dispatch began."""
    outcome.expect("COMPLETED")
    if driver.start_order(outcome).status not in (200, 201):
        return
    driver.approve(outcome)
    seen = driver.poller.wait(outcome.plan.order_id, CHARGED_STATES | END_STATES, WAIT_CHARGED_SECONDS, driver.halt)
    try:
        reply = driver.act(outcome, "cancel")
    except ApiGaveUp:
        # Reported as an anomaly by the caller; which end the order reaches is then unknown.
        outcome.expect("CANCELLED", "COMPLETED", charges=(0, 1))
        raise
    if reply.status == 202 or (reply.uncertain and _cancel_taken(reply)):
        # Seen charged: exactly one charge, refunded. Not seen yet (a slow order): the cancel
        # may have come before the charge, then nothing is charged at all.
        outcome.expect("CANCELLED", charges=(1,) if seen in CHARGED_STATES else (0, 1))
        outcome.notes.append("cancel after payment accepted")
    elif reply.status == 409 and ("carrier has already been dispatched" in reply.detail or "COMPLETED" in reply.detail):
        # Proof of refusal even after a retry: an accepted cancel would have stopped the dispatch.
        outcome.notes.append("cancel after payment refused: dispatch had started")
    elif reply.status == 409 and reply.uncertain:
        # The first attempt's fate is unknown and the retry cannot tell: the end state decides.
        outcome.expect("CANCELLED", "COMPLETED", charges=(0, 1))
        outcome.notes.append("cancel after payment: outcome unknown (retried), either end is right")
    else:
        outcome.anomalies.append(f"cancel answered {reply.status}: {reply.detail} (seen {seen})")


def scenario_address_change(driver: Driver, outcome: Outcome) -> None:
    outcome.expect("COMPLETED")
    if driver.start_order(outcome).status not in (200, 201):
        return
    reply = driver.act(outcome, "update-address", {"address": outcome.plan.new_address})
    if reply.status != 202:
        outcome.anomalies.append(f"update-address answered {reply.status}: {reply.detail}")
    driver.approve(outcome)


def scenario_undeliverable(driver: Driver, outcome: Outcome) -> None:
    outcome.expect("FAILED")
    if driver.start_order(outcome).status in (200, 201):
        driver.approve(outcome)


def scenario_claimed(driver: Driver, outcome: Outcome) -> None:
    """Reviewer 0 claims the order under review: reviewer 1's approval is refused naming the
    claimant, then the claimant approves (and, for a four-eyes order, reviewer 1 gives the second)."""
    outcome.expect("COMPLETED")
    if driver.start_order(outcome).status not in (200, 201):
        return
    seen = driver.poller.wait(
        outcome.plan.order_id, frozenset({"AWAITING_APPROVAL"}) | END_STATES, WAIT_REVIEW_SECONDS, driver.halt
    )
    if seen != "AWAITING_APPROVAL":
        outcome.anomalies.append(f"not up for review within {WAIT_REVIEW_SECONDS:.0f} s (seen {seen})")
        return
    claimant = f"claimed by {REVIEWERS[0]}"
    claim = driver.act(outcome, "claim", by=0)
    if not (claim.status == 202 or (claim.uncertain and claim.status == 409 and claimant in claim.detail)):
        outcome.anomalies.append(f"claim answered {claim.status}: {claim.detail}")
    other = driver.act(outcome, "approve", by=1)
    if not (other.status == 409 and claimant in other.detail):
        outcome.anomalies.append(f"an approval past the claim answered {other.status}: {other.detail}")
    if driver.review.four_eyes(outcome.plan):
        driver.approve(outcome, first_by=0)
        return
    reply = driver.act(outcome, "approve", by=0)
    if not (reply.status == 202 or (reply.uncertain and _already_approved(reply))):
        outcome.anomalies.append(f"the claimant's approval answered {reply.status}: {reply.detail}")


SCENARIOS: dict[str, Callable[[Driver, Outcome], None]] = {
    "approve": scenario_approve,
    "double_approve": scenario_double_approve,
    "duplicate_start": scenario_duplicate_start,
    "cancel_before_approval": scenario_cancel_before_approval,
    "cancel_after_payment": scenario_cancel_after_payment,
    "address_change": scenario_address_change,
    "undeliverable": scenario_undeliverable,
    "claimed": scenario_claimed,
}
assert set(SCENARIOS) == {kind for kind, _ in MIX}
