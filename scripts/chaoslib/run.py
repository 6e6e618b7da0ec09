"""One chaos run: set the stack up, drive the orders while injecting faults, drain, check, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.chaoslib.api import Api
from scripts.chaoslib.checks import run_checks
from scripts.chaoslib.faults import FaultSchedule
from scripts.chaoslib.histories import running_workflows
from scripts.chaoslib.poller import END_STATES, POLL_SECONDS, StatePoller
from scripts.chaoslib.report import Report
from scripts.chaoslib.scenarios import REVIEWERS, Driver, Review, make_plans
from scripts.chaoslib.stack import START_TIMEOUT_SECONDS, ChaosStack, say
from scripts.stack import wait_for


@contextmanager
def phase(timings: dict[str, float], name: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - began, 1)


def setup(stack: ChaosStack) -> tuple[str, tuple[str, str]]:
    """Bring the stack up; the API token that starts the orders, and two reviewers' tokens (a
    four-eyes order needs two approvers, neither of them its starter)."""
    database = stack.database
    say(f"database {database.name}, Temporal on {stack.temporal_address}, web on {stack.base_url}, logs in {stack.tmp}")
    stack.snapshot_source()
    database.create()
    stack.start_temporal(wait=False)  # it boots while the migrations run
    stack.processes.manage("migrate", "--noinput", timeout=180)
    token = stack.create_token()
    reviewers = (stack.create_token(REVIEWERS[0]), stack.create_token(REVIEWERS[1]))
    stack.wait_for_temporal()
    stack.start_worker()
    stack.start_web()

    def worker_ready() -> bool:
        stack.supervise_worker()
        return stack.worker_ready_at is not None

    what = f"the worker to be ready (see {stack.tmp / 'worker.log'})"
    wait_for(worker_ready, seconds=START_TIMEOUT_SECONDS, what=what, interval=0.2)
    return token, reviewers


def drive(stack: ChaosStack, driver: Driver, poller: StatePoller, schedule: FaultSchedule, total: int) -> None:
    """Run the scenarios while injecting faults; the main thread supervises and injects."""
    driver.start()
    last_report = time.monotonic()
    while True:
        driving = not driver.done()
        if not driving and not schedule.pending_minimum(stack):
            return
        stack.supervise_worker()
        schedule.tick(stack, poller, driver.finished / total, driving)
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            f = stack.faults
            say(f"driven {driver.finished}/{total}; worker kills {f.worker_kills}, crashes after charge "
                f"{f.worker_crashes_after_charge}, Temporal restarts {f.temporal_restarts}, DB drops {f.db_drops}")  # fmt: skip
        time.sleep(POLL_SECONDS)


def drain(stack: ChaosStack, poller: StatePoller, order_ids: list[str], seconds: float) -> None:
    """No more faults: one calm worker (no crash hook) until every order has ended."""
    stack.replace_worker_with_calm_one()
    deadline = time.monotonic() + seconds
    last_report = time.monotonic()
    while time.monotonic() < deadline:
        stack.supervise_worker(calm=True)
        open_orders = [oid for oid in order_ids if poller.state(oid) not in END_STATES]
        # An order's last activity writes its end state one workflow task before the workflow
        # closes: wait for that task too, or the check would catch the workflow still running.
        if not open_orders:
            open_orders = asyncio.run(running_workflows(stack.temporal_address, order_ids))
            if not open_orders:
                return
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            say(
                f"draining: {len(open_orders)} orders not ended yet, e.g. {open_orders[0]} in {poller.state(open_orders[0])}"
            )
        time.sleep(0.5)


def execute(args: argparse.Namespace, stack: ChaosStack, command: str) -> int:
    timings: dict[str, float] = {}
    began = time.monotonic()
    halt = threading.Event()
    with phase(timings, "setup"):
        token, reviewers = setup(stack)
    plans = make_plans(args.orders, args.seed, args.mix)
    poller = StatePoller(stack.database.name)
    poller.start()
    api = Api(stack.base_url, token, halt)
    driver = Driver(api, poller, plans, args.concurrency, halt, Review(reviewers, args.four_eyes_min_total))
    try:
        say(f"driving {args.orders} orders, {args.concurrency} at a time, with faults")
        with phase(timings, "drive"):
            drive(stack, driver, poller, FaultSchedule(args), args.orders)
        say("all orders driven; faults stopped; draining")
        with phase(timings, "drain"):
            drain(stack, poller, [oid for oid, o in driver.outcomes.items() if o.started], args.drain_timeout)
    finally:
        halt.set()
        poller.halt.set()
    with phase(timings, "check"):
        # Nothing may move while the database and the histories are compared.
        stack.stop_workers()
        checks, histories = run_checks(driver, poller, plans, stack, args)
    timings["total"] = round(time.monotonic() - began, 1)
    report = Report(args, stack, command, timings, checks, api, plans, driver, histories)
    print(report.render(), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report.figures(), indent=2, default=str) + "\n")
    return 0 if all(check.ok for check in checks) else 1
