"""`manage.py reconcile [--fix]`: find (and repair) open orders whose database state drifted."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from lifecycle.client import TemporalUnavailable
from lifecycle.management.base import TemporalCommand
from orders.reconciliation import SETTLE_SECONDS, reconcile


class Command(TemporalCommand):
    help = "Compare every open order with its workflow's `status`; --fix repairs the database from the workflow."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix", action="store_true", help="Repair drift from the workflow (start missing workflows)."
        )
        parser.add_argument(
            "--settle",
            type=float,
            default=SETTLE_SECONDS,
            help="Seconds to wait before looking again at an order out of step; only a difference that "
            "stays put is drift [%(default)s].",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            checked, drifts = asyncio.run(reconcile(fix=options["fix"], settle=options["settle"]))
        except TemporalUnavailable as err:
            raise CommandError(str(err)) from None
        for drift in drifts:
            outcome = "fixed: " + drift.note if drift.fixed else drift.note or "not fixed (run with --fix)"
            self.stdout.write(
                f"{drift.order_id}  database={drift.database_state}  workflow={drift.workflow_state or '-'}  "
                f"{drift.problem}  -> {outcome}"
            )
        remaining = sum(1 for drift in drifts if not drift.fixed)
        self.stdout.write(f"{checked} open orders checked, {len(drifts)} drifted, {len(drifts) - remaining} fixed")
        if remaining:
            sys.exit(1)
