"""Torture test: many orders through the real stack while workers, Temporal and the database fail.

It starts a stack of its own, shared with nothing (a Temporal dev server on free ports with its
state in a temporary directory, a fresh PostgreSQL database `chaos_<random>` on 127.0.0.1:5432,
one `manage.py runworker` process and the web app under uvicorn, all run from a snapshot of the
working tree), drives N orders through the JSON API with a seeded mix of scenarios, each with
the end state it must reach, and meanwhile:

- SIGKILLs the worker every few seconds (at least --kills times), preferably at a moment when a
  charge has moved money but is not recorded yet, and starts a new one;
- lets the worker crash right after the payment provider moved money, before the charge is
  recorded (CHAOS_CRASH_AFTER_CHARGE_RATE, the app's test-only hook in lifecycle/providers.py);
- kills and restarts the Temporal dev server (same database file, same port);
- terminates every PostgreSQL connection of the chaos database a few times.

Then it drains (one calm worker, no more faults), checks money, payments, events and workflow
histories with SQL and the Temporal client, prints a table with PASS/FAIL per line and exits
1 on any violation (2 if the stack could not be started). Everything it started is stopped and
the database dropped, also on Ctrl-C; the logs are kept when a check failed. See
docs/reliability.md. Run it from anywhere with the project's virtualenv:

    .venv/bin/python scripts/chaos.py [--orders N] [--kills K] [--concurrency C] [--seed S] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import functools
import json
import os
import platform
import queue
import random
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
HOST = "127.0.0.1"
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"

END_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "APPROVAL_TIMEOUT"})
CHARGED_STATES = frozenset({"PAYMENT_CHARGED", "SHIPPING"})
COMPLETED_TRAIL = frozenset(
    {
        "ORDER_RECEIVED", "ORDER_VALIDATED", "ORDER_APPROVED", "PAYMENT_CHARGED",
        "PACKAGE_PREPARED", "CARRIER_DISPATCHED", "ORDER_SHIPPED", "ORDER_COMPLETED",
    }
)  # fmt: skip
UNDELIVERABLE_ZIP = "00000"

# Scenario mix: (kind, weight). Weights, not exact shares: the seeded RNG picks per order.
MIX: tuple[tuple[str, int], ...] = (
    ("approve", 26),
    ("double_approve", 12),
    ("duplicate_start", 12),
    ("cancel_before_approval", 12),
    ("cancel_after_payment", 16),
    ("address_change", 11),
    ("undeliverable", 11),
)

POLL_SECONDS = 0.1
WORKER_READY_MARK = "runworker ready"
START_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
# Above the app's wait for a workflow's verdict: TEMPORAL_UPDATE_TIMEOUT_SECONDS (30 s) bounds each
# of the SDK's calls, and an Update can take two (admission, then the result): 503s come at ~45 s.
HTTP_TIMEOUT_SECONDS = 75.0
REQUEST_BUDGET_SECONDS = 240.0  # how long one API call is retried through outages
WAIT_CHARGED_SECONDS = 120.0
ACTIVITY_TIMEOUT_SECONDS = 2.0  # the app's default, which the chaos run keeps
PR_SET_PDEATHSIG = 1
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", ".data", "docs", "staticfiles", "test-results", "node_modules", "__pycache__", "*.pyc"
)


class SetupError(Exception):
    """The stack could not be started; the message says why, in one line."""


def say(message: str) -> None:
    print(f"chaos: {message}", flush=True)


# --- processes -------------------------------------------------------------------------------
_libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Children run in their own session (a Ctrl-C reaches only this script, which stops them in
    # order); if this script is SIGKILLed, the kernel still takes them down with it.
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    log_offset: int
    started_at: float = field(default_factory=time.monotonic)

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def log_text(self) -> str:
        """This incarnation's output (the log file is shared by restarts of the same process)."""
        try:
            with self.log.open("rb") as fh:
                fh.seek(self.log_offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""


def spawn(name: str, args: list[str], env: dict[str, str], log: Path, cwd: Path) -> Proc:
    """Start a child with its output appended to `log`. Call from the main thread only:
    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(f"--- {time.strftime('%H:%M:%S')} chaos: {shlex.join(args)}\n".encode())
        fh.flush()  # before the child appends to the same file
        offset = fh.tell()
        process = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    return Proc(name, process, log, offset)


def stop(proc: Proc | None, sig: int = signal.SIGTERM, grace: float = STOP_GRACE_SECONDS) -> None:
    if proc is None or proc.returncode is not None:
        return
    try:
        proc.process.send_signal(sig)
        proc.process.wait(grace)
    except subprocess.TimeoutExpired:
        proc.process.kill()
        proc.process.wait(10)
    except ProcessLookupError:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], bool], seconds: float, *, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- PostgreSQL ------------------------------------------------------------------------------
def pg_admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise SetupError(f"PostgreSQL is unreachable at 127.0.0.1:5432 as postgres ({first})") from None


def pg_connect(db_name: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        f"host=127.0.0.1 port=5432 user=postgres dbname={db_name}", autocommit=True, connect_timeout=5
    )


def query(db_name: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One query on a fresh connection, retried: the chaos itself terminates connections."""
    for attempt in range(20):
        try:
            with pg_connect(db_name) as conn:
                return list(conn.execute(sql, params).fetchall())
        except psycopg.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


CHARGES_IN_FLIGHT_SQL = (
    # PENDING: a charge attempt is under way. With a provider row: the money has moved but no
    # attempt has recorded it yet -- the window where a death must not lead to a second charge.
    "SELECT count(*), count(c.id) FROM payments p LEFT JOIN provider_charges c "
    "ON c.idempotency_key = p.payment_id AND c.kind = 'charge' WHERE p.status = 'PENDING'"
)


class StatePoller(threading.Thread):
    """Keeps current order states and charges in flight, read by the scenarios, the faults and the drain.

    One query a tick for all orders is far cheaper than each scenario polling on its own.
    """

    def __init__(self, db_name: str) -> None:
        super().__init__(name="state-poller", daemon=True)
        self.db_name = db_name
        self.states: dict[str, str] = {}
        self.charges_pending = 0
        self.charges_unrecorded = 0
        # Orders whose stored state left an end state again: e.g. CANCELLED -> AWAITING_APPROVAL.
        self.regressions: dict[str, list[str]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.halt.is_set():
            try:
                if conn is None or conn.closed:
                    conn = pg_connect(self.db_name)
                rows = conn.execute("SELECT id, state FROM orders").fetchall()
                self._note_regressions(rows)
                self.states = {row[0]: row[1] for row in rows}
                self.charges_pending, self.charges_unrecorded = conn.execute(CHARGES_IN_FLIGHT_SQL).fetchone() or (0, 0)
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None  # terminated by the chaos: reconnect on the next tick
            self.halt.wait(POLL_SECONDS)
        if conn is not None:
            conn.close()

    def _note_regressions(self, rows: list[tuple[Any, ...]]) -> None:
        stamp = time.strftime("%H:%M:%S")
        for order_id, state in rows:
            before = self.states.get(order_id)
            if before in END_STATES and state != before:
                self.regressions.setdefault(order_id, []).append(f"{stamp} {before} -> {state}")

    def state(self, order_id: str) -> str | None:
        return self.states.get(order_id)

    def wait(self, order_id: str, states: frozenset[str], seconds: float, halt: threading.Event) -> str | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not halt.is_set():
            current = self.state(order_id)
            if current in states:
                return current
            time.sleep(POLL_SECONDS / 2)
        return self.state(order_id)


# --- the JSON API ----------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    uncertain: bool  # an earlier attempt of this call may have been applied

    @property
    def detail(self) -> str:
        return str(self.body.get("detail", ""))


class ApiGaveUp(Exception):
    pass


class Api:
    """Bearer-token JSON client that retries through outages (503, 500, lost connections)."""

    RETRYABLE = frozenset({500, 502, 503, 504})

    def __init__(self, base_url: str, token: str, halt: threading.Event) -> None:
        self.base_url = base_url
        self.token = token
        self.halt = halt
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.longest_retry = 0.0  # seconds one call was retried before it got a real answer

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        trail: list[str] | None = None,
        key: str | None = None,
    ) -> Reply:
        """The answer to one request, retried through outages; every attempt is noted in `trail`.

        With `key`, every attempt carries it as Idempotency-Key, so a retry of an action whose first
        attempt was applied (but answered 503 or got lost) gets that first outcome, not a second action.
        """
        began = time.monotonic()
        deadline = began + REQUEST_BUDGET_SECONDS
        uncertain = False
        delay = 0.2
        while True:
            if self.halt.is_set():
                raise ApiGaveUp("interrupted")
            self._count("requests")
            outcome = self._once(method, path, body, key)
            if trail is not None:
                trail.append(_trail_line(path, outcome))
            if isinstance(outcome, Reply) and outcome.status not in self.RETRYABLE:
                outcome.uncertain = uncertain
                with self.lock:
                    self.longest_retry = max(self.longest_retry, time.monotonic() - began)
                return outcome
            # Lost connection, timeout or 5xx: the request may or may not have been applied.
            self._count(f"retried after {outcome.status}" if isinstance(outcome, Reply) else f"retried after {outcome}")
            uncertain = True
            if time.monotonic() + delay > deadline:
                last = f"{outcome.status} {outcome.detail}" if isinstance(outcome, Reply) else outcome
                raise ApiGaveUp(f"{method} {path}: no answer within {REQUEST_BUDGET_SECONDS:.0f} s (last: {last})")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _once(self, method: str, path: str, body: dict[str, Any] | None, key: str | None) -> Reply | str:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                return Reply(response.status, _json(response.read()), False)
        except urllib.error.HTTPError as err:
            return Reply(err.code, _json(err.read()), False)
        except (urllib.error.URLError, OSError) as err:
            return type(getattr(err, "reason", err)).__name__


def _trail_line(path: str, outcome: Reply | str) -> str:
    clock = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
    action = path.rsplit("/", 1)[-1]
    if isinstance(outcome, Reply):
        return f"{clock} {action} -> {outcome.status} {outcome.detail[:120]}".rstrip()
    return f"{clock} {action} -> {outcome}"


def compress_trail(trail: list[str]) -> list[str]:
    """Runs of the same answer folded into one line: `... -> 503 ... (x41 until 01:06:34.120)`."""
    folded: list[tuple[str, str, int, str]] = []  # first clock, answer, count, last clock
    for line in trail:
        clock, _, answer = line.partition(" ")
        if folded and folded[-1][1] == answer:
            first, _, count, _ = folded[-1]
            folded[-1] = (first, answer, count + 1, clock)
        else:
            folded.append((clock, answer, 1, clock))
    return [
        f"{first} {answer}" + (f" (x{count} until {last})" if count > 1 else "")
        for first, answer, count, last in folded
    ]


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"detail": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}


# --- the orders ------------------------------------------------------------------------------
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
        self, api: Api, poller: StatePoller, plans: list[Plan], concurrency: int, halt: threading.Event
    ) -> None:
        self.api = api
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

    def act(self, outcome: Outcome, action: str, body: dict[str, Any] | None = None) -> Reply:
        # One key per intended action, kept through its retries.
        key = f"{action}-{uuid.uuid4().hex}"
        return self.api.call("POST", f"/orders/{outcome.plan.order_id}/signals/{action}", body, outcome.trail, key)

    def approve(self, outcome: Outcome) -> Reply:
        reply = self.act(outcome, "approve")
        if not (reply.status == 202 or (reply.uncertain and _already_approved(reply))):
            outcome.anomalies.append(f"approve answered {reply.status}: {reply.detail}")
        return reply


def _already_approved(reply: Reply) -> bool:
    """A 409 that proves an approval was applied: it says so, or the order has since completed (only
    an approved order can). An approval retried through 503s can arrive after the order finished."""
    return reply.status == 409 and ("already approved" in reply.detail or "has ended (COMPLETED)" in reply.detail)


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
    replies: list[Reply] = []
    errors: list[BaseException] = []

    def second() -> None:
        try:
            replies.append(driver.act(outcome, "approve"))
        except BaseException as err:  # re-raised below, on the scenario's own thread
            errors.append(err)

    other = threading.Thread(target=second, daemon=True)
    other.start()
    replies.append(driver.act(outcome, "approve"))
    other.join()
    if errors:
        raise errors[0]
    statuses = sorted(reply.status for reply in replies)
    outcome.notes.append(f"double approve answered {statuses}")
    # One of the two must be the one applied (unless a lost answer hides it); the other is a 409.
    applied = any(r.status == 202 for r in replies) or any(r.uncertain for r in replies)
    if not applied or not all(r.status == 202 or _already_approved(r) for r in replies):
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


SCENARIOS: dict[str, Callable[[Driver, Outcome], None]] = {
    "approve": scenario_approve,
    "double_approve": scenario_double_approve,
    "duplicate_start": scenario_duplicate_start,
    "cancel_before_approval": scenario_cancel_before_approval,
    "cancel_after_payment": scenario_cancel_after_payment,
    "address_change": scenario_address_change,
    "undeliverable": scenario_undeliverable,
}
assert set(SCENARIOS) == {kind for kind, _ in MIX}


# --- the stack -------------------------------------------------------------------------------
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


class Stack:
    """The processes and the database of one chaos run, and the faults done to them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.src = self.tmp / "src"
        self.db_name = f"chaos_{secrets.token_hex(6)}"
        self.db_created = False
        self.temporal_port = free_port()
        self.web_port = free_port()
        suffix = secrets.token_hex(4)
        self.order_queue = f"chaos-order-{suffix}"
        self.shipping_queue = f"chaos-shipping-{suffix}"
        self.temporal: Proc | None = None
        self.worker: Proc | None = None
        self.web: Proc | None = None
        self.faults = FaultLog()
        self.worker_ready_at: float | None = None
        self.retiring: list[Proc] = []
        self.crash_rate = args.crash_rate

    @property
    def temporal_address(self) -> str:
        return f"{HOST}:{self.temporal_port}"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    def app_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CHAOS_", "FLAKY_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="orders_site.settings",
            DATABASE_URL=PG_URL.format(name=self.db_name),
            TEMPORAL_ADDRESS=self.temporal_address,
            TEMPORAL_NAMESPACE="default",
            ORDER_TASK_QUEUE=self.order_queue,
            SHIPPING_TASK_QUEUE=self.shipping_queue,
            FLAKY_CALL_FAILURE_RATE=str(self.args.flaky_rate),
            FLAKY_CALL_TIMEOUT_SHARE=str(self.args.hang_share),
            APPROVAL_TIMEOUT_SECONDS=str(self.args.approval_timeout),
            CHAOS_CRASH_AFTER_CHARGE_RATE="0",
            WORKER_GRACE_SECONDS="3",
            DEBUG="0",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    # --- setup --------------------------------------------------------------------------------
    def create_database(self) -> None:
        with pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.db_created = True

    def drop_database(self) -> None:
        if not self.db_created:
            return
        try:
            with pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self.db_created = False
        except (SetupError, psycopg.Error) as err:
            say(f"could not drop database {self.db_name}: {err}")

    def snapshot_source(self) -> None:
        """Run a copy of the code as it is now: a worker restarted mid-run must run the same
        workflow code as the others (an edit in the working tree would otherwise surface as
        nondeterminism errors that the app does not have)."""
        shutil.copytree(REPO_ROOT, self.src, ignore=SNAPSHOT_IGNORE, symlinks=True)

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.src,
            env=self.app_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise SetupError(f"manage.py {' '.join(args)} failed: {(result.stderr or result.stdout).strip()[-500:]}")
        return result.stdout

    def start_temporal(self, *, wait: bool = True) -> None:
        args = [
            str(BIN_DIR / "temporal"), "server", "start-dev",
            "--db-filename", str(self.tmp / "temporal.db"),
            "--ip", HOST, "--port", str(self.temporal_port), "--headless",
            "--log-level", "warn",
        ]  # fmt: skip
        self.temporal = spawn("temporal", args, self.app_env(), self.tmp / "temporal.log", self.tmp)
        if wait:
            self.wait_for_temporal()

    def wait_for_temporal(self) -> None:
        temporal = self.temporal
        assert temporal is not None
        if not wait_for(
            lambda: port_open(self.temporal_port) or temporal.returncode is not None, START_TIMEOUT_SECONDS
        ):
            raise SetupError(f"the Temporal dev server did not listen on {self.temporal_address}; see {temporal.log}")
        if temporal.returncode is not None:
            raise SetupError(f"the Temporal dev server exited ({temporal.returncode}): {temporal.log_text()[-500:]}")

    def start_worker(self, *, calm: bool = False) -> None:
        rate = "0" if calm else str(self.crash_rate)
        env = self.app_env(CHAOS_CRASH_AFTER_CHARGE_RATE=rate, LOG_LEVEL="INFO")
        self.worker = spawn(
            "worker", [sys.executable, "manage.py", "runworker"], env, self.tmp / "worker.log", self.src
        )
        self.worker_ready_at = None

    def start_web(self) -> None:
        args = [
            sys.executable, "-m", "uvicorn", "orders_site.asgi:application",
            "--host", HOST, "--port", str(self.web_port), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        self.web = spawn("web", args, self.app_env(), self.tmp / "web.log", self.src)
        if not wait_for(lambda: self.health() == 200, START_TIMEOUT_SECONDS, interval=0.5):
            raise SetupError(f"the web app did not become healthy on {self.base_url}; see {self.web.log}")

    def health(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.base_url}/health", timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0

    def create_token(self) -> str:
        out = self.manage("create_api_token", "chaos", "--create-user", "--name", "chaos")
        return out.strip().splitlines()[-1]

    # --- supervision and faults ---------------------------------------------------------------
    def supervise_worker(self, *, calm: bool = False) -> None:
        """Restart the worker whenever it has died; note when a new one is ready."""
        worker = self.worker
        if worker is None:
            self.start_worker(calm=calm)
            return
        code = worker.returncode
        if code is None:
            if self.worker_ready_at is None and WORKER_READY_MARK in worker.log_text():
                self.worker_ready_at = time.monotonic()
            return
        if code == 137:  # os._exit(137) in providers.crash_point: died right after a charge
            self.faults.worker_crashes_after_charge += 1
        elif code != -signal.SIGKILL:
            self.faults.worker_other_exits += 1
            say(f"worker exited with {code}: {worker.log_text().strip()[-300:]}")
        self.start_worker(calm=calm)

    def replace_worker_with_calm_one(self) -> None:
        """Start a worker without the crash hook, then let the old one drain: a rolling restart,
        so no moment passes without a worker polling."""
        old = self.worker
        self.start_worker(calm=True)
        if old is not None and old.returncode is None:
            old.process.send_signal(signal.SIGTERM)
            self.retiring.append(old)

    def kill_worker(self) -> None:
        if self.worker is not None and self.worker.returncode is None:
            # Looked at just before the kill, so the count says what the kill really cut off.
            pending, unrecorded = query(self.db_name, CHARGES_IN_FLIGHT_SQL)[0]
            self.worker.process.send_signal(signal.SIGKILL)
            self.worker.process.wait(10)
            self.faults.worker_kills += 1
            self.faults.worker_kills_charge_pending += int(pending > 0)
            self.faults.worker_kills_money_unrecorded += int(unrecorded > 0)
        # The restart is the supervisor's: the same path as any other death.

    def restart_temporal(self) -> None:
        """Crash the Temporal dev server (SIGKILL) and bring it back on the same file and port."""
        began = time.monotonic()
        stop(self.temporal, signal.SIGKILL)
        self.start_temporal()
        # Accepting TCP is not serving yet: wait until the web app reaches it again.
        wait_for(lambda: self.health() == 200, START_TIMEOUT_SECONDS, interval=0.5)
        self.faults.temporal_restarts += 1
        self.faults.temporal_downtime_seconds += time.monotonic() - began

    def drop_db_connections(self) -> None:
        rows = query(
            self.db_name,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.db_name,),
        )
        self.faults.db_drops += 1
        self.faults.db_backends_terminated += int(rows[0][0] or 0)

    def stop_all(self) -> None:
        # The highest layer first, so nothing loses what it depends on while stopping.
        for proc in (self.web, *self.retiring, self.worker, self.temporal):
            stop(proc)


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

    def next_kill_due(self, stack: Stack, poller: StatePoller) -> bool:
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

    def pending_minimum(self, stack: Stack) -> bool:
        return stack.faults.worker_kills < self.min_kills or bool(self.temporal_points) or bool(self.db_points)

    def tick(self, stack: Stack, poller: StatePoller, progress: float, driving: bool) -> None:
        """One step of injection. After the driving ends, only what is owed to the minimum."""
        if (driving or stack.faults.worker_kills < self.min_kills) and self.next_kill_due(stack, poller):
            stack.kill_worker()
        if self.temporal_points and (progress >= self.temporal_points[0] or not driving):
            self.temporal_points.pop(0)
            say("fault: restarting the Temporal dev server (SIGKILL, same database file and port)")
            stack.restart_temporal()
        if self.db_points and (progress >= self.db_points[0] or not driving):
            self.db_points.pop(0)
            stack.drop_db_connections()


# --- checks ----------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    value: Any
    expected: str
    ok: bool
    evidence: list[str] = field(default_factory=list)


@dataclass
class History:
    """What one order workflow's Temporal history (with its shipping child's) says: its charge
    attempts, its workflow tasks, the actions it accepted and how it ended."""

    attempts: int = 0  # of payment_charged
    last_failure_timeout: bool = False
    last_started: datetime | None = None  # when the last attempt of payment_charged started
    timed_out_events: int = 0
    result: str | None = None
    closed: str = "RUNNING"
    workflow_task_timeouts: int = 0
    workflow_task_max_attempt: int = 0
    updates_accepted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        accepted = ", ".join(self.updates_accepted) or "none"
        return (
            f"history: {self.closed}, updates accepted: {accepted}, workflow task timeouts "
            f"{self.workflow_task_timeouts}, highest workflow task attempt {self.workflow_task_max_attempt}"
        )


async def fetch_histories(address: str, order_ids: list[str]) -> dict[str, History]:
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    client = await Client.connect(address)
    limit = asyncio.Semaphore(8)
    closing = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "COMPLETED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "FAILED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "TERMINATED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "CANCELED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
    }

    async def child_updates(order_id: str, found: History) -> None:
        """The shipping child decides cancel and address changes while the order ships: its
        accepted Updates count as the order's, and its workflow tasks as well."""
        from temporalio.service import RPCError, RPCStatusCode

        try:
            async with limit:
                history = await client.get_workflow_handle(f"shipping-{order_id}").fetch_history()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return  # the order never shipped
            raise
        for event in history.events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                accepted = event.workflow_execution_update_accepted_event_attributes
                found.updates_accepted.append(accepted.accepted_request.input.name)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                attempt = event.workflow_task_scheduled_event_attributes.attempt
                found.workflow_task_max_attempt = max(found.workflow_task_max_attempt, attempt)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                found.workflow_task_timeouts += 1

    async def one(order_id: str) -> tuple[str, History]:
        found = History()
        await child_updates(order_id, found)
        async with limit:
            history = await client.get_workflow_handle(order_id).fetch_history()
        names: dict[int, str] = {}
        for event in history.events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                if names.get(started.scheduled_event_id) == "payment_charged":
                    # A retried activity's Started event is written once, for its last attempt,
                    # carrying that attempt's number and the previous attempt's failure.
                    found.attempts = max(found.attempts, started.attempt)
                    found.last_failure_timeout = started.last_failure.HasField("timeout_failure_info")
                    found.last_started = event.event_time.ToDatetime(tzinfo=UTC)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
                timed_out = event.activity_task_timed_out_event_attributes
                if names.get(timed_out.scheduled_event_id) == "payment_charged":
                    found.timed_out_events += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                attempt = event.workflow_task_scheduled_event_attributes.attempt
                found.workflow_task_max_attempt = max(found.workflow_task_max_attempt, attempt)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                found.workflow_task_timeouts += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                accepted = event.workflow_execution_update_accepted_event_attributes
                found.updates_accepted.append(accepted.accepted_request.input.name)
            elif kind in closing:
                found.closed = closing[kind]
                if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                    payloads = event.workflow_execution_completed_event_attributes.result.payloads
                    found.result = json.loads(payloads[0].data) if payloads else None
        return order_id, found

    pairs = await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return dict(pairs)


@dataclass
class Facts:
    """The database's view of every order after the drain."""

    states: dict[str, str]
    totals: dict[str, Decimal]
    payments: dict[str, list[str]]  # order id -> payment statuses
    charges: dict[str, int]  # payment id -> provider charge rows
    charged_at: dict[str, datetime]  # payment id -> when the provider moved the money
    refunds: dict[str, int]
    money_charged: Decimal
    money_refunded: Decimal
    duplicate_events: list[tuple[str, str, int]]
    event_types: dict[str, set[str]]
    dispatch_address: dict[str, Any]
    addresses: dict[str, Any]  # the address stored on the order
    address_events: dict[str, int]


def gather_facts(db_name: str) -> Facts:
    states: dict[str, str] = {}
    totals: dict[str, Decimal] = {}
    addresses: dict[str, Any] = {}
    for order_id, state, total, address in query(db_name, "SELECT id, state, total, address_json FROM orders"):
        states[order_id], totals[order_id], addresses[order_id] = state, total, address
    payments: dict[str, list[str]] = {}
    for order_id, status in query(db_name, "SELECT order_id, status FROM payments"):
        payments.setdefault(order_id, []).append(status)
    charges: dict[str, int] = {}
    refunds: dict[str, int] = {}
    for key, kind, count in query(
        db_name, "SELECT idempotency_key, kind, count(*) FROM provider_charges GROUP BY 1, 2"
    ):
        (charges if kind == "charge" else refunds)[key] = int(count)
    charged_at = dict(
        query(db_name, "SELECT idempotency_key, min(created_at) FROM provider_charges WHERE kind = 'charge' GROUP BY 1")
    )
    sums = dict(query(db_name, "SELECT kind, coalesce(sum(amount), 0) FROM provider_charges GROUP BY kind"))
    duplicates = [
        (order_id, kind, int(count))
        for order_id, kind, count in query(
            db_name,
            "SELECT order_id, type, count(*) FROM events WHERE type <> 'ADDRESS_UPDATED' "
            "GROUP BY 1, 2 HAVING count(*) > 1",
        )
    ]
    event_types: dict[str, set[str]] = {}
    address_events: Counter[str] = Counter()
    for order_id, kind in query(db_name, "SELECT order_id, type FROM events"):
        event_types.setdefault(order_id, set()).add(kind)
        if kind == "ADDRESS_UPDATED":
            address_events[order_id] += 1
    dispatch = {
        order_id: payload.get("address")
        for order_id, payload in query(
            db_name, "SELECT order_id, payload_json FROM events WHERE type = 'CARRIER_DISPATCHED'"
        )
    }
    return Facts(
        states, totals, payments, charges, charged_at, refunds,
        Decimal(sums.get("charge", 0)), Decimal(sums.get("refund", 0)),
        duplicates, event_types, dispatch, addresses, dict(address_events),
    )  # fmt: skip


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
        self.add("duplicate events (same order and type, not ADDRESS_UPDATED)", len(duplicates), "= 0", not duplicates,
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
    driver: Driver, poller: StatePoller, plans: list[Plan], stack: Stack, args: argparse.Namespace
) -> tuple[list[Check], dict[str, History]]:
    facts = gather_facts(stack.db_name)
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


# The event a human action leaves, and the Update that must have been accepted for it.
ACTION_EVENTS = {"ORDER_APPROVED": "approve", "ORDER_CANCELLED": "cancel"}
TERMINAL_EVENTS = {
    "ORDER_COMPLETED": "COMPLETED",
    "ORDER_CANCELLED": "CANCELLED",
    "APPROVAL_TIMEOUT": "APPROVAL_TIMEOUT",
    "DISPATCH_FAILED": "FAILED",
    "ORDER_FAILED": "FAILED",
}


def phantom_events(order_ids: list[str], facts: Facts) -> list[str]:
    """Orders with an event for a step their workflow did not take: an end other than the
    order's, two different ends, or an approval or charge on an order that timed out unapproved."""
    found = []
    for oid in order_ids:
        have = facts.event_types.get(oid, set())
        state = facts.states[oid]
        ends = {TERMINAL_EVENTS[kind] for kind in have if kind in TERMINAL_EVENTS}
        wrong = sorted(kind for kind in have if kind in TERMINAL_EVENTS and TERMINAL_EVENTS[kind] != state)
        if state == "APPROVAL_TIMEOUT":
            wrong += sorted(have & {"ORDER_APPROVED", "PAYMENT_CHARGED"})
        if wrong or len(ends) > 1:
            found.append(f"{oid} ({state}) has {', '.join(wrong) or sorted(ends)}")
    return found


def trail_gaps(order_ids: list[str], facts: Facts) -> list[str]:
    """Orders whose events do not tell the story their end state implies."""
    gaps = []
    for oid in order_ids:
        have = facts.event_types.get(oid, set())
        state = facts.states[oid]
        need = {"ORDER_RECEIVED", "ORDER_VALIDATED"}
        if state == "CANCELLED" and not have & {"ORDER_APPROVED", "PAYMENT_CHARGED"}:
            need = {"ORDER_RECEIVED"}  # a cancel that arrived before validation skips it
        if state == "COMPLETED":
            need |= COMPLETED_TRAIL
        elif state == "CANCELLED":
            need |= {"ORDER_CANCELLED"} | ({"PAYMENT_REFUNDED"} if "PAYMENT_CHARGED" in have else set())
        elif state == "FAILED":
            need |= {"DISPATCH_FAILED", "PAYMENT_CHARGED", "PAYMENT_REFUNDED", "PACKAGE_PREPARED"}
        missing = need - have
        if missing:
            gaps.append(f"{oid} ({state}): missing {sorted(missing)}")
    return gaps


# --- report ----------------------------------------------------------------------------------
def machine_facts(stack: Stack) -> dict[str, str]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    pg = query(stack.db_name, "SHOW server_version")[0][0] if stack.db_created else "?"
    return {
        "machine": run("uname", "-m"),
        "cpus": run("nproc"),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporal": run(str(BIN_DIR / "temporal"), "--version"),
        "postgresql": str(pg),
    }


@dataclass
class Report:
    args: argparse.Namespace
    stack: Stack
    command: str
    timings: dict[str, float]
    checks: list[Check]
    api: Api
    plans: list[Plan]
    driver: Driver
    histories: dict[str, History]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @functools.cached_property
    def header(self) -> dict[str, str]:
        t, args = self.timings, self.args
        return {
            **machine_facts(self.stack),
            "command": self.command,
            "seed": str(args.seed),
            "duration": f"{t['total']} s (setup {t['setup']}, drive {t['drive']}, drain {t['drain']}, check {t['check']})",
            "faults": (
                f"flaky calls {args.flaky_rate:.0%} ({args.hang_share:.0%} of them hang past the "
                f"{ACTIVITY_TIMEOUT_SECONDS:g} s activity timeout), crash after charge {args.crash_rate:.0%}, "
                f"a worker SIGKILL every ~{args.kill_every:g} s"
            ),
        }

    def kinds(self) -> Counter[str]:
        return Counter(plan.kind for plan in self.plans)

    def notes(self) -> Counter[str]:
        return Counter(note for outcome in self.driver.outcomes.values() for note in outcome.notes)

    def render(self) -> str:
        lines = ["", "=" * 100, "Order Lifecycle chaos run", ""]
        lines += [f"  {key:<10} {value}" for key, value in self.header.items()]
        lines += ["", f"  scenario mix: {', '.join(f'{k} {n}' for k, n in sorted(self.kinds().items()))}"]
        lines += [f"  driver notes: {', '.join(f'{k}: {n}' for k, n in sorted(self.notes().items()))}"]
        calls = ", ".join(f"{k} {n}" for k, n in sorted(self.api.counts.items()))
        lines += [f"  API calls:    {calls}; longest a call was retried: {self.api.longest_retry:.0f} s", ""]
        width = max(len(c.name) for c in self.checks)
        lines.append(f"  {'check':<{width}}  {'value':>22}  {'expected':<14} result")
        lines.append(f"  {'-' * width}  {'-' * 22}  {'-' * 14} ------")
        for check in self.checks:
            result = "info" if check.expected == "info" else "PASS" if check.ok else "FAIL"
            lines.append(f"  {check.name:<{width}}  {check.value!s:>22}  {check.expected:<14} {result}")
            lines += [f"      {line}" for line in check.evidence if not check.ok]
        failed = [c for c in self.checks if not c.ok]
        lines += ["", f"  RESULT: {'PASS' if not failed else f'FAIL ({len(failed)} checks)'}", "=" * 100, ""]
        return "\n".join(lines)

    def figures(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "header": self.header,
            "timings": self.timings,
            "faults": vars(self.stack.faults),
            "api": {**self.api.counts, "longest_retry_seconds": round(self.api.longest_retry, 1)},
            "scenarios": dict(self.kinds()),
            "notes": dict(self.notes()),
            "payment_attempts": dict(Counter(h.attempts for h in self.histories.values())),
            "checks": [
                {"name": c.name, "value": str(c.value), "expected": c.expected, "ok": c.ok, "evidence": c.evidence}
                for c in self.checks
            ],
        }


# --- the run ---------------------------------------------------------------------------------
class Interrupted(BaseException):
    """SIGTERM (or SIGINT) arrived: unwind every wait to the cleanup, like KeyboardInterrupt."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def phase(timings: dict[str, float], name: str) -> Iterator[None]:
    began = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - began, 1)


def setup(stack: Stack) -> str:
    say(f"database {stack.db_name}, Temporal on {stack.temporal_address}, web on {stack.base_url}, logs in {stack.tmp}")
    stack.snapshot_source()
    stack.create_database()
    stack.start_temporal(wait=False)  # it boots while the migrations run
    stack.manage("migrate", "--noinput")
    token = stack.create_token()
    stack.wait_for_temporal()
    stack.start_worker()
    stack.start_web()
    if not wait_for(lambda: (stack.supervise_worker(), stack.worker_ready_at is not None)[1], START_TIMEOUT_SECONDS):
        raise SetupError(f"the worker did not become ready; see {stack.tmp / 'worker.log'}")
    return token


def drive(stack: Stack, driver: Driver, poller: StatePoller, schedule: FaultSchedule, total: int) -> None:
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


async def running_workflows(address: str, order_ids: list[str]) -> list[str]:
    """The orders whose workflow has not closed yet."""
    from temporalio.client import Client, WorkflowExecutionStatus

    client = await Client.connect(address)
    limit = asyncio.Semaphore(8)

    async def running(order_id: str) -> bool:
        async with limit:
            description = await client.get_workflow_handle(order_id).describe()
        return description.status == WorkflowExecutionStatus.RUNNING

    flags = await asyncio.gather(*(running(order_id) for order_id in order_ids))
    return [order_id for order_id, flag in zip(order_ids, flags, strict=True) if flag]


def drain(stack: Stack, poller: StatePoller, order_ids: list[str], seconds: float) -> None:
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


def execute(args: argparse.Namespace, stack: Stack, command: str) -> int:
    timings: dict[str, float] = {}
    began = time.monotonic()
    halt = threading.Event()
    with phase(timings, "setup"):
        token = setup(stack)
    plans = make_plans(args.orders, args.seed, args.mix)
    poller = StatePoller(stack.db_name)
    poller.start()
    api = Api(stack.base_url, token, halt)
    driver = Driver(api, poller, plans, args.concurrency, halt)
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
        for worker in (*stack.retiring, stack.worker):
            stop(worker)
        checks, histories = run_checks(driver, poller, plans, stack, args)
    timings["total"] = round(time.monotonic() - began, 1)
    report = Report(args, stack, command, timings, checks, api, plans, driver, histories)
    print(report.render(), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report.figures(), indent=2, default=str) + "\n")
    return 0 if all(check.ok for check in checks) else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=300, help="how many orders to drive [300]")
    parser.add_argument("--kills", type=int, default=10, help="at least this many worker SIGKILLs [10]")
    parser.add_argument("--concurrency", type=int, default=20, help="orders driven at a time [20]")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed for the order mix and fault timing [random]")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--kill-every", type=float, default=3.5, help="mean seconds a worker lives before its SIGKILL [3.5]"
    )
    parser.add_argument("--temporal-restarts", type=int, default=1, help="Temporal dev server restarts [1]")
    parser.add_argument("--db-drops", type=int, default=3, help="times all database connections are terminated [3]")
    parser.add_argument(
        "--crash-rate", type=float, default=0.05, help="CHAOS_CRASH_AFTER_CHARGE_RATE of the worker [0.05]"
    )
    parser.add_argument("--flaky-rate", type=float, default=0.5, help="FLAKY_CALL_FAILURE_RATE [0.5]")
    parser.add_argument("--hang-share", type=float, default=0.1, help="FLAKY_CALL_TIMEOUT_SHARE [0.1]")
    parser.add_argument("--approval-timeout", type=float, default=600.0, help="APPROVAL_TIMEOUT_SECONDS [600]")
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds to wait for every order to end [300]"
    )
    parser.add_argument("--mix", type=parse_mix, default=dict(MIX), metavar="KIND=W,...",
                        help=f"scenario weights [{','.join(f'{k}={w}' for k, w in MIX)}]")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the log directory even when every check passes")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(1_000_000)
    if args.orders < 1 or args.concurrency < 1:
        parser.error("--orders and --concurrency must be at least 1")
    return args


def parse_mix(text: str) -> dict[str, int]:
    """`approve=3,cancel_before_approval=1`: only these scenarios, in these proportions."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in SCENARIOS:
            raise argparse.ArgumentTypeError(f"unknown scenario {kind!r}; known: {', '.join(SCENARIOS)}")
        mix[kind.strip()] = int(weight or 1)
    return mix


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([_display_python(), "scripts/chaos.py", *(sys.argv[1:] if argv is None else argv)])
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGINT)}
    stack = Stack(args)
    code = 1
    try:
        code = execute(args, stack, command)
    except SetupError as err:
        say(f"error: {err}")
        code = 2
    except (Interrupted, KeyboardInterrupt) as err:
        say(f"interrupted ({err or 'SIGINT'}); stopping everything")
        code = 130
    finally:
        # A second Ctrl-C must not leave processes behind: ignore it while cleaning up.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        stack.stop_all()
        stack.drop_database()
        if code == 0 and not args.keep:
            shutil.rmtree(stack.tmp, ignore_errors=True)
        else:
            say(f"logs kept in {stack.tmp}")
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


def _display_python() -> str:
    try:
        return os.path.relpath(sys.executable, Path.cwd())
    except ValueError:
        return sys.executable


if __name__ == "__main__":
    sys.exit(main())
