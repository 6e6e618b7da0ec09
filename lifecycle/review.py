"""The rules of a team's review of one order: claims, four-eyes approval and escalation.

Django-free, so the workflow sandbox loads it (passed through). `OrderWorkflow` keeps one
`Review` per order and asks it what to refuse and when to wake next; the web side only sends the
facts it knows (the actor, whether they may take over a claim). See
docs/decisions/0007-reviewer-teams.md.

- A claim gives one reviewer the order's review: approvals by anyone else are refused (naming the
  claimant) until the claimant releases it, it lapses after the claim's time to live, or a
  supervisor takes it over. Cancelling is never blocked by a claim.
- An order whose total is at least the four-eyes threshold needs two approvals by two different
  users, neither of them the user who started the order.
- An order still unapproved some time after its review began is escalated, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

NEEDS_SECOND_REVIEWER = "needs a second reviewer"


def approvals_required(total: Decimal, four_eyes_min_total: str) -> int:
    """2 when `total` reaches the threshold (a decimal string; empty or unreadable: never), else 1."""
    try:
        threshold = Decimal(four_eyes_min_total.strip())
    except InvalidOperation:
        return 1
    return 2 if threshold.is_finite() and total >= threshold else 1


@dataclass(frozen=True)
class Approval:
    actor: str
    at: str  # ISO 8601, the workflow's time


class Review:
    """One order's review: who holds its claim, the approvals given so far, whether it escalated.

    `version` changes with every claim or release, so a workflow waiting on its timer can tell
    that the nearest wake-up time moved.
    """

    def __init__(
        self,
        *,
        approvals_required: int,
        started_by: str,
        claim_ttl: timedelta,
        escalate_after: timedelta | None,
    ) -> None:
        self.approvals_required = approvals_required
        self.started_by = started_by
        self.claim_ttl = claim_ttl
        self.escalate_after = escalate_after
        self.began: datetime | None = None
        self.claimant = ""
        self.claimed_at: datetime | None = None
        self.approvals: list[Approval] = []
        self.escalated = False
        self.version = 0

    @property
    def four_eyes(self) -> bool:
        return self.approvals_required > 1

    @property
    def complete(self) -> bool:
        return len(self.approvals) >= self.approvals_required

    @property
    def first_approver(self) -> str:
        return self.approvals[0].actor if self.four_eyes and self.approvals else ""

    # --- what is refused, and why (empty: allowed) ---------------------------------------------
    def _own_refusal(self, actor: str) -> str:
        """Why `actor` can give no approval of this order at all."""
        if not self.four_eyes:
            return ""
        if actor == self.started_by:
            return f"{actor} started this order; a four-eyes order needs two other reviewers"
        if self.approvals and self.approvals[0].actor == actor:
            return f"{actor} gave the first approval; the order {NEEDS_SECOND_REVIEWER}"
        return ""

    def claim_refusal(self, actor: str, *, may_reassign: bool = False) -> str:
        if self.claimant == actor:
            return f"the order is already claimed by {actor}"
        if self.claimant and not may_reassign:
            return f"the order is claimed by {self.claimant}"
        return self._own_refusal(actor)

    def release_refusal(self, actor: str, *, may_reassign: bool = False) -> str:
        if not self.claimant:
            return "the order is not claimed"
        if self.claimant != actor and not may_reassign:
            return f"the order is claimed by {self.claimant}"
        return ""

    def approval_refusal(self, actor: str) -> str:
        if self.claimant and self.claimant != actor:
            return f"the order is claimed by {self.claimant}"
        return self._own_refusal(actor)

    # --- changes (the workflow has checked the refusal first) ----------------------------------
    def claim(self, actor: str, now: datetime) -> str:
        """`actor` holds the claim from `now`; returns whom it was taken from ("" if nobody)."""
        previous = self.claimant
        self.claimant, self.claimed_at = actor, now
        self.version += 1
        return previous

    def release(self) -> str:
        """Nobody holds the claim any more; returns who held it."""
        previous = self.claimant
        self.claimant, self.claimed_at = "", None
        self.version += 1
        return previous

    def approve(self, actor: str, now: datetime) -> bool:
        """Count `actor`'s approval; True when it is the last one needed. A first approval of a
        four-eyes order also ends the approver's claim: the second must come from someone else."""
        self.approvals.append(Approval(actor, now.isoformat()))
        if not self.complete and self.claimant == actor:
            self.release()
        return self.complete

    # --- time ------------------------------------------------------------------------------------
    def claim_expires_at(self) -> datetime | None:
        return self.claimed_at + self.claim_ttl if self.claimed_at is not None else None

    def escalates_at(self) -> datetime | None:
        if self.escalated or self.began is None or not self.escalate_after:
            return None
        return self.began + self.escalate_after

    def claim_lapsed(self, now: datetime) -> bool:
        expires = self.claim_expires_at()
        return expires is not None and now >= expires

    def escalation_due(self, now: datetime) -> bool:
        at = self.escalates_at()
        return at is not None and now >= at

    def next_wake(self, deadline: datetime) -> datetime:
        """The nearest moment something happens by itself: a claim lapses, the order escalates,
        or the approval deadline passes. One timer to it is all the review needs."""
        moments = [deadline, self.claim_expires_at(), self.escalates_at()]
        return min(moment for moment in moments if moment is not None)
