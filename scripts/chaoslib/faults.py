"""The faults of a chaos run: what was done to the stack, and when to do the next."""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scripts.chaoslib.poller import StatePoller

if TYPE_CHECKING:
    from scripts.chaoslib.stack import ChaosStack


@dataclass
class FaultLog:
    worker_kills: int = 0
    worker_kills_charge_pending: int = 0  # a charge attempt was under way
    worker_kills_money_unrecorded: int = 0  # ... and the provider had already moved the money
    worker_crashes_after_charge: int = 0
    worker_other_exits: int = 0
    temporal_restarts: int = 0
    db_drops: int = 0
    db_backends_terminated: int = 0
    temporal_downtime_seconds: float = 0.0


class FaultSchedule:
    """When to inject which fault; a separate seeded RNG so the order mix does not depend on it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(args.seed + 1)
        self.kill_every = args.kill_every
        self.min_kills = args.kills
        self.kill_gap = self._gap()
        # Progress points (share of orders driven) at which the rarer faults fire.
        self.temporal_points = [(n + 1) / (args.temporal_restarts + 1) for n in range(args.temporal_restarts)]
        self.db_points = [(n + 1) / (args.db_drops + 1) for n in range(args.db_drops)]

    def _gap(self) -> float:
        # Seconds a fresh worker gets before it is killed: long enough to take work, never regular.
        return self.rng.uniform(0.5 * self.kill_every, 1.5 * self.kill_every)

    def next_kill_due(self, stack: ChaosStack, poller: StatePoller) -> bool:
        """After the gap, aim: prefer a moment when money moved but is unrecorded, then any
        charge in flight, and kill regardless once the patience runs out."""
        ready = stack.worker_ready_at
        if ready is None:
            return False
        alive = time.monotonic() - ready
        if alive < self.kill_gap:
            return False
        patience = alive - self.kill_gap
        aimed = poller.charges_unrecorded > 0 or (poller.charges_pending > 0 and patience > self.kill_every)
        if not aimed and patience < 2 * self.kill_every:
            return False
        self.kill_gap = self._gap()
        return True

    def pending_minimum(self, stack: ChaosStack) -> bool:
        return stack.faults.worker_kills < self.min_kills or bool(self.temporal_points) or bool(self.db_points)

    def tick(self, stack: ChaosStack, poller: StatePoller, progress: float, driving: bool) -> None:
        """One step of injection. After the driving ends, only what is owed to the minimum."""
        if (driving or stack.faults.worker_kills < self.min_kills) and self.next_kill_due(stack, poller):
            stack.kill_worker()
        if self.temporal_points and (progress >= self.temporal_points[0] or not driving):
            self.temporal_points.pop(0)
            stack.restart_temporal()
        if self.db_points and (progress >= self.db_points[0] or not driving):
            self.db_points.pop(0)
            stack.drop_db_connections()
