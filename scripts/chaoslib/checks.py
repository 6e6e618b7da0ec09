"""The checked lines of a chaos run: the driver's outcomes, the database's facts and Temporal's
histories held against what each order had to become."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from scripts.chaoslib.api import compress_trail
from scripts.chaoslib.facts import Facts, gather_facts, phantom_events, trail_gaps
from scripts.chaoslib.faults import FaultLog
from scripts.chaoslib.histories import History, fetch_histories
from scripts.chaoslib.poller import END_STATES, StatePoller
from scripts.chaoslib.scenarios import Driver, Outcome, Plan
from scripts.chaoslib.stack import ChaosStack

# The event a human action leaves, and the Update that must have been accepted for it.
ACTION_EVENTS = {
    "ORDER_APPROVED": "approve",
    "FIRST_APPROVAL": "approve",
    "ORDER_CANCELLED": "cancel",
    "ORDER_CLAIMED": "claim",
}


@dataclass
class Check:
    name: str
    value: Any
    expected: str
    ok: bool
    evidence: list[str] = field(default_factory=list)


def _sample(items: list[str], limit: int = 8) -> list[str]:
    return items[:limit] + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])


class Checker:
    """Turns the driver's outcomes, the database's facts and the histories into checked lines."""

    def __init__(
        self,
        outcomes: dict[str, Outcome],
        plans: list[Plan],
        facts: Facts,
        histories: dict[str, History],
        regressions: dict[str, list[str]],
    ) -> None:
        self.plans = plans
        self.regressions = regressions
        self.outcomes = outcomes
        self.facts = facts
        self.histories = histories
        self.by_id = {oid: o for oid, o in outcomes.items() if o.started}
        self.stuck = sorted(oid for oid in self.by_id if facts.states.get(oid) not in END_STATES)
        self.ended = sorted(oid for oid in self.by_id if oid not in self.stuck)
        self.payment_of = {p.order_id: str(p.body["payment_id"]) for p in plans}
        self.checks: list[Check] = []

    def add(self, name: str, value: Any, expected: str, ok: bool, evidence: list[str] | None = None) -> None:
        self.checks.append(Check(name, value, expected, ok, _sample(evidence or [])))

    def label(self, oid: str) -> str:
        return f"{oid} ({self.by_id[oid].plan.kind}, {self.facts.states.get(oid)})"

    def charges(self, oid: str) -> int:
        return self.facts.charges.get(self.payment_of[oid], 0)

    def refunds(self, oid: str) -> int:
        return self.facts.refunds.get(self.payment_of[oid], 0)

    # --- the lines ----------------------------------------------------------------------------
    def orders(self) -> None:
        total, started = len(self.plans), len(self.by_id)
        never = [f"{p.order_id} ({p.kind}) never started" for p in self.plans if p.order_id not in self.by_id]
        self.add("orders started", started, f"= {total}", started == total, never)
        anomalies = [f"{oid} ({o.plan.kind}): {a}" for oid, o in sorted(self.outcomes.items()) for a in o.anomalies]
        as_planned = sum(1 for o in self.outcomes.values() if not o.anomalies)
        self.add("orders whose API answers were as planned", as_planned, f"= {total}", as_planned == total, anomalies)
        expected = [oid for oid in self.ended if self.facts.states[oid] in self.by_id[oid].expected_states]
        unexpected = [oid for oid in self.ended if oid not in expected]
        self.add("orders ended in the expected state", len(expected), f"= {started}", len(expected) == started)
        wanted = {oid: "/".join(sorted(self.by_id[oid].expected_states)) for oid in unexpected}
        self.add("orders ended in an unexpected state", len(unexpected), "= 0", not unexpected,
                 [f"{self.label(oid)}, expected {wanted[oid]}; {self.evidence(oid)}" for oid in unexpected])  # fmt: skip
        self.add("orders stuck (not ended after the drain)", len(self.stuck), "= 0", not self.stuck,
                 [f"{self.label(oid)}; {self.evidence(oid)}" for oid in self.stuck])  # fmt: skip

    def evidence(self, oid: str) -> str:
        """What the API answered and what Temporal recorded, for an order that went wrong."""
        history = self.histories.get(oid)
        api = " | ".join(compress_trail(self.by_id[oid].trail))
        return f"{history.summary() if history else 'no history'}; API: {api}"

    def payments(self) -> None:
        charged = [oid for oid in self.by_id if self.charges(oid) > 0]
        rows = {oid: len(self.facts.payments.get(oid, [])) for oid in charged}
        self.add("payment rows per charged order (min / max)", f"{min(rows.values(), default=0)} / {max(rows.values(), default=0)}",
                 "1 / 1", all(n == 1 for n in rows.values()), [f"{oid}: {n} payment rows" for oid, n in rows.items() if n != 1])  # fmt: skip
        charges = self.facts.charges
        self.add("provider charges per idempotency key (max)", max(charges.values(), default=0), "<= 1",
                 all(n <= 1 for n in charges.values()), [f"{key}: charged {n} times" for key, n in charges.items() if n > 1])  # fmt: skip
        wrong = [
            f"{self.label(oid)}: {self.charges(oid)} charges, expected {'/'.join(map(str, sorted(self.by_id[oid].expected_charges)))}"
            for oid in self.ended
            if self.charges(oid) not in self.by_id[oid].expected_charges
            or (self.facts.states[oid] == "COMPLETED" and self.charges(oid) != 1)
        ]
        self.add("orders charged as planned (1; 0 if cancelled before approval)", len(self.ended) - len(wrong),
                 f"= {len(self.ended)}", not wrong, wrong)  # fmt: skip
        # A paid order that did not complete owes its money back, exactly once; others owe nothing.
        owed = {
            oid: self.charges(oid) if self.facts.states[oid] in ("CANCELLED", "FAILED") else 0 for oid in self.ended
        }
        wrong = [
            f"{self.label(oid)}: {self.refunds(oid)} refunds, {owed[oid]} owed"
            for oid in self.ended
            if self.refunds(oid) != owed[oid]
        ]
        self.add("refunds (1 per paid order cancelled or undeliverable, else 0)", f"{sum(owed.values())} owed",
                 f"{len(wrong)} wrong = 0", not wrong, wrong)  # fmt: skip
        statuses = {oid: self.facts.payments.get(oid, []) for oid in charged if oid in self.ended}
        want = {oid: ["COMPLETED" if self.facts.states[oid] == "COMPLETED" else "REFUNDED"] for oid in statuses}
        wrong = [
            f"{self.label(oid)}: payment {statuses[oid]}, expected {want[oid]}"
            for oid in statuses
            if statuses[oid] != want[oid]
        ]
        self.add(
            "payment status matches the end state", len(statuses) - len(wrong), f"= {len(statuses)}", not wrong, wrong
        )

    def money(self) -> None:
        facts = self.facts
        completed = sum((facts.totals[oid] for oid, s in facts.states.items() if s == "COMPLETED"), Decimal("0"))
        net = facts.money_charged - facts.money_refunded
        self.add("money: charges - refunds = total of COMPLETED orders", f"{net} vs {completed}", "equal", net == completed,
                 [f"charged {facts.money_charged}, refunded {facts.money_refunded}"])  # fmt: skip

    def events(self) -> None:
        duplicates = self.facts.duplicate_events
        self.add("duplicate events (same order and type, not ADDRESS_UPDATED or claims)", len(duplicates), "= 0", not duplicates,
                 [f"{oid}: {kind} x{n}" for oid, kind, n in duplicates])  # fmt: skip
        gaps = trail_gaps(self.ended, self.facts)
        self.add(
            "event trail complete for the end state",
            len(self.ended) - len(gaps),
            f"= {len(self.ended)}",
            not gaps,
            gaps,
        )
        # Over every order, ended or not: a stuck order may carry the phantom that stranded it.
        phantoms = [
            f"{line}; {self.evidence(line.split(' ')[0])}" for line in phantom_events(sorted(self.by_id), self.facts)
        ]
        self.add("events that contradict the end state (phantom steps)", len(phantoms), "= 0", not phantoms, phantoms)
        regressions = {oid: steps for oid, steps in self.regressions.items() if oid in self.by_id}
        self.add("orders whose stored state left an end state", len(regressions), "= 0", not regressions,
                 [f"{self.label(oid)}: {', '.join(steps)}; {self.evidence(oid)}" for oid, steps in regressions.items()])  # fmt: skip
        moved = [
            oid
            for oid in self.ended
            if self.by_id[oid].plan.kind == "address_change" and self.facts.states[oid] == "COMPLETED"
        ]
        dispatched = self.facts.dispatch_address
        wrong = [
            f"{oid}: dispatched to {dispatched.get(oid)}"
            for oid in moved
            if dispatched.get(oid) != self.by_id[oid].plan.new_address
        ]
        self.add(
            "address changes dispatched to the new address",
            len(moved) - len(wrong),
            f"= {len(moved)}",
            not wrong,
            wrong,
        )
        shipped = [oid for oid in self.ended if oid in dispatched]
        wrong = [
            f"{oid}: order says {self.facts.addresses.get(oid)}, carrier got {dispatched[oid]}"
            for oid in shipped
            if dispatched[oid] != self.facts.addresses.get(oid)
        ]
        self.add(
            "carrier got the address stored on the order",
            len(shipped) - len(wrong),
            f"= {len(shipped)}",
            not wrong,
            wrong,
        )

    def workflows(self) -> None:
        histories, states = self.histories, self.facts.states
        wrong = [
            f"{oid}: workflow {h.closed} with {h.result!r}, database {states.get(oid)}"
            for oid, h in sorted(histories.items())
            if h.closed != "COMPLETED" or h.result != states.get(oid)
        ]
        self.add("workflows completed with the database's end state", len(histories) - len(wrong), f"= {len(self.by_id)}",
                 not wrong and len(histories) == len(self.by_id), wrong)  # fmt: skip
        unaccepted = [f"{line}; {self.evidence(line.split(':')[0])}" for line in self._unaccepted_actions()]
        self.add(
            "actions in the database the workflow never accepted", len(unaccepted), "= 0", not unaccepted, unaccepted
        )

    def _unaccepted_actions(self) -> list[str]:
        """A human action's event must match an Update in the history: the API's promise is that
        what the workflow did not accept writes nothing."""
        found = []
        for oid, history in sorted(self.histories.items()):
            have = self.facts.event_types.get(oid, set())
            accepted = Counter(history.updates_accepted)
            missing = [event for event, update in ACTION_EVENTS.items() if event in have and not accepted[update]]
            moves = self.facts.address_events.get(oid, 0)
            if moves != accepted["change_address"]:
                missing.append(f"ADDRESS_UPDATED x{moves} for {accepted['change_address']} accepted")
            if missing:
                found.append(f"{oid}: {', '.join(missing)}")
        return found

    def risky_window(self, faults: FaultLog, crash_rate: float) -> None:
        """Whether the faults hit charges in flight: otherwise the money checks proved little."""
        histories = self.histories
        retried = sorted(oid for oid, h in histories.items() if h.attempts > 1)
        cut_off = [oid for oid in retried if histories[oid].last_failure_timeout or histories[oid].timed_out_events]
        # The last attempt began after the provider had moved the money: an earlier attempt
        # charged and died (or lost the answer) before recording it, and this one was replayed.
        replayed = [oid for oid in retried if self._replayed(oid)]
        missed = "the faults missed the risky window: "
        self.add("payment_charged activities run more than once", len(retried), "> 0", bool(retried),
                 [] if retried else [missed + "no charge was ever retried"])  # fmt: skip
        self.add("  ... the attempt before timed out (worker died, call hung)", len(cut_off), "> 0", bool(cut_off),
                 [] if cut_off else [missed + "no charge attempt was cut off"])  # fmt: skip
        self.add("  ... money moved by an earlier attempt, replayed by key", len(replayed), "> 0", bool(replayed),
                 [] if replayed else [missed + "no charge was replayed at the provider"])  # fmt: skip
        # Deaths inside the window itself: money moved at the provider, no attempt recorded it.
        deaths = faults.worker_kills_money_unrecorded + faults.worker_crashes_after_charge
        self.add("worker deaths with money moved but unrecorded", deaths, "> 0", deaths > 0,
                 [] if deaths else [missed + "no worker died between the charge and its record"])  # fmt: skip
        self.add("  ... SIGKILLs aimed at that moment", faults.worker_kills_money_unrecorded, "info", True)
        self.add(f"  ... crashes by the hook (rate {crash_rate:g})", faults.worker_crashes_after_charge, "info", True)
        self.add("SIGKILLs while any charge attempt was under way", faults.worker_kills_charge_pending, "info", True)

    def _replayed(self, oid: str) -> bool:
        started = self.histories[oid].last_started
        charged = self.facts.charged_at.get(self.payment_of[oid])
        return started is not None and charged is not None and charged < started

    def faults(self, faults: FaultLog, args: argparse.Namespace) -> None:
        if faults.worker_other_exits:
            self.add("worker exits for other reasons (see worker.log)", faults.worker_other_exits, "info", True)
        self.add("worker SIGKILLs", faults.worker_kills, f">= {args.kills}", faults.worker_kills >= args.kills)
        self.add("Temporal dev server restarts (SIGKILL)", faults.temporal_restarts, f">= {args.temporal_restarts}",
                 faults.temporal_restarts >= args.temporal_restarts)  # fmt: skip
        self.add("database connection drops (backends terminated)", f"{faults.db_drops} ({faults.db_backends_terminated})",
                 f">= {args.db_drops}", faults.db_drops >= args.db_drops)  # fmt: skip


def run_checks(
    driver: Driver, poller: StatePoller, plans: list[Plan], stack: ChaosStack, args: argparse.Namespace
) -> tuple[list[Check], dict[str, History]]:
    facts = gather_facts(stack.database.name)
    started = sorted(oid for oid, o in driver.outcomes.items() if o.started)
    histories = asyncio.run(fetch_histories(stack.temporal_address, started))
    checker = Checker(driver.outcomes, plans, facts, histories, poller.regressions)
    checker.orders()
    checker.payments()
    checker.money()
    checker.events()
    checker.workflows()
    checker.risky_window(stack.faults, stack.crash_rate)
    checker.faults(stack.faults, args)
    return checker.checks, histories
