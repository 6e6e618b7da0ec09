"""The stack of one chaos run (scripts.stack), shared with nothing, and the faults done to it.

A Temporal dev server on free ports with its state in a temporary directory, a fresh PostgreSQL
database `chaos_<random>`, one `manage.py runworker` process and the web app under uvicorn, all
run from a snapshot of the working tree. The logs (`<name>.log`) stay in the same directory.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path

from scripts.chaoslib.faults import FaultLog
from scripts.chaoslib.poller import CHARGES_IN_FLIGHT_SQL, query
from scripts.stack import (
    REPO_ROOT,
    FreshDatabase,
    Process,
    Stack,
    StackError,
    TemporalServer,
    free_port,
    wait_for,
    web_health,
)
from scripts.stack.app import WORKER_READY_MARK

START_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", ".data", "docs", "staticfiles", "test-results", "node_modules", "__pycache__", "*.pyc"
)


def say(message: str) -> None:
    print(f"chaos: {message}", flush=True)


class ChaosStack:
    """The processes and the database of one chaos run, and the faults done to them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.src = self.tmp / "src"
        self.database = FreshDatabase.named("chaos")
        self.temporal_server = TemporalServer(free_port(), self.tmp / "temporal.db")
        self.web_port = free_port()
        suffix = secrets.token_hex(4)
        self.processes = Stack(
            {
                "DATABASE_URL": self.database.url,
                "TEMPORAL_ADDRESS": self.temporal_server.address,
                "TEMPORAL_NAMESPACE": "default",
                "ORDER_TASK_QUEUE": f"chaos-order-{suffix}",
                "SHIPPING_TASK_QUEUE": f"chaos-shipping-{suffix}",
                "FLAKY_CALL_FAILURE_RATE": args.flaky_rate,
                "FLAKY_CALL_TIMEOUT_SHARE": args.hang_share,
                "APPROVAL_TIMEOUT_SECONDS": args.approval_timeout,
                "FOUR_EYES_MIN_TOTAL": args.four_eyes_min_total,
                "CHAOS_CRASH_AFTER_CHARGE_RATE": 0,
                "WORKER_GRACE_SECONDS": 3,
                "DEBUG": False,
                "LOG_LEVEL": "WARNING",
            },
            cwd=self.src,
            log_dir=self.tmp,
            grace=STOP_GRACE_SECONDS,
            say=say,
        )
        self.temporal: Process | None = None
        self.worker: Process | None = None
        self.web: Process | None = None
        self.faults = FaultLog()
        self.worker_ready_at: float | None = None
        self.retiring: list[Process] = []
        self.crash_rate = args.crash_rate

    @property
    def temporal_address(self) -> str:
        return self.temporal_server.address

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    # --- setup --------------------------------------------------------------------------------
    def snapshot_source(self) -> None:
        """Run a copy of the code as it is now: a worker restarted mid-run must run the same
        workflow code as the others (an edit in the working tree would otherwise surface as
        nondeterminism errors that the app does not have)."""
        shutil.copytree(REPO_ROOT, self.src, ignore=SNAPSHOT_IGNORE, symlinks=True)

    def start_temporal(self, *, wait: bool = True) -> None:
        self.temporal = self.temporal_server.start(self.processes, wait=wait)

    def wait_for_temporal(self) -> None:
        assert self.temporal is not None
        self.temporal_server.wait(self.temporal)

    def start_worker(self, *, calm: bool = False) -> None:
        rate = 0 if calm else self.crash_rate
        # INFO: the worker says when it is ready (WORKER_READY_MARK).
        self.worker = self.processes.start_worker(CHAOS_CRASH_AFTER_CHARGE_RATE=rate, LOG_LEVEL="INFO")
        self.worker_ready_at = None

    def start_web(self) -> None:
        self.web = self.processes.start_web(self.web_port, options=("--no-access-log", "--log-level", "warning"))
        wait_for(
            lambda: self.health() == 200,
            seconds=START_TIMEOUT_SECONDS,
            what=f"the web app to become healthy on {self.base_url}",
            process=self.web,
            interval=0.5,
        )

    def health(self) -> int:
        return web_health(self.web_port)

    def create_token(self, username: str = "chaos") -> str:
        """A token of a new user `username` (in the API clients group: may start and approve)."""
        out = self.processes.manage("create_api_token", username, "--create-user", "--name", "chaos", timeout=180)
        return out.stdout.strip().splitlines()[-1]

    # --- supervision and faults ---------------------------------------------------------------
    def supervise_worker(self, *, calm: bool = False) -> None:
        """Restart the worker whenever it has died; note when a new one is ready."""
        worker = self.worker
        if worker is None:
            self.start_worker(calm=calm)
            return
        code = worker.returncode
        if code is None:
            if self.worker_ready_at is None and WORKER_READY_MARK in worker.output():
                self.worker_ready_at = time.monotonic()
            return
        if code == 137:  # os._exit(137) in providers.crash_point: died right after a charge
            self.faults.worker_crashes_after_charge += 1
        elif code != -signal.SIGKILL:
            self.faults.worker_other_exits += 1
            say(f"worker exited with {code}: {worker.output().strip()[-300:]}")
        self.start_worker(calm=calm)

    def replace_worker_with_calm_one(self) -> None:
        """Start a worker without the crash hook, then let the old one drain: a rolling restart,
        so no moment passes without a worker polling."""
        old = self.worker
        self.start_worker(calm=True)
        if old is not None and old.alive():
            old.send(signal.SIGTERM)
            self.retiring.append(old)

    def kill_worker(self) -> None:
        if self.worker is not None and self.worker.alive():
            # Looked at just before the kill, so the count says what the kill really cut off.
            pending, unrecorded = query(self.database.name, CHARGES_IN_FLIGHT_SQL)[0]
            self.processes.kill(self.worker)
            self.faults.worker_kills += 1
            self.faults.worker_kills_charge_pending += int(pending > 0)
            self.faults.worker_kills_money_unrecorded += int(unrecorded > 0)
        # The restart is the supervisor's: the same path as any other death.

    def restart_temporal(self) -> None:
        """Crash the Temporal dev server (SIGKILL) and bring it back on the same file and port."""
        say("fault: restarting the Temporal dev server (SIGKILL, same database file and port)")
        began = time.monotonic()
        if self.temporal is not None:
            self.processes.kill(self.temporal)
        self.start_temporal()
        # Accepting TCP is not serving yet: wait until the web app reaches it again.
        try:
            wait_for(lambda: self.health() == 200, seconds=START_TIMEOUT_SECONDS, what="the web app", interval=0.5)
        except StackError:
            pass  # the checks will tell what it cost
        self.faults.temporal_restarts += 1
        self.faults.temporal_downtime_seconds += time.monotonic() - began

    def drop_db_connections(self) -> None:
        rows = query(
            self.database.name,
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.database.name,),
        )
        self.faults.db_drops += 1
        self.faults.db_backends_terminated += int(rows[0][0] or 0)

    def stop_workers(self) -> None:
        for worker in (*self.retiring, self.worker):
            if worker is not None:
                self.processes.stop(worker)

    def tear_down(self) -> None:
        """Stop everything (the web app, the workers, Temporal) and drop the database."""
        self.processes.stop_all()
        try:
            self.database.drop()
        except Exception as err:
            say(f"could not drop database {self.database.name}: {err}")
