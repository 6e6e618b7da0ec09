"""The stack one benchmark run measures, on free ports and names of its own (scripts.stack).

A Temporal dev server (its SQLite file on tmpfs, /dev/shm, unless --temporal-db disk), a fresh
PostgreSQL database `bench_<run id>` that is dropped at the end, `manage.py runworker` processes,
the web app under uvicorn, and the floor's worker processes. Every process logs to the run's
work directory, kept when the run failed.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from scripts.benchlib.measure import peak_rss_kb
from scripts.stack import (
    LAYER_WORKER,
    FreshDatabase,
    Process,
    Stack,
    StackError,
    TemporalServer,
    base_environment,
    free_port,
    wait_for_web,
)

# Long enough for the approval backlog (started, then cancelled minutes later) never to time out; a
# timer's length costs nothing, so the other phases are unaffected.
APPROVAL_TIMEOUT_S = 3600
# FLAKY_CALL_FAILURE_RATE of the worker in the flaky phase: the seed's flakiness.
FLAKY_RATE = 0.67
WORKER_THREADS = 20  # activity threads of every worker process, ours and the floor's
START_TIMEOUT_S = 60.0


class BenchError(StackError):
    """Something broke (not a missed target): the message says what."""


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


class BenchStack:
    def __init__(self, temporal_db: str, *, encrypt: bool = False, trace: bool = False) -> None:
        """`temporal_db`: "tmpfs" (/dev/shm, no fsync cost; the temp dir if there is none) or "disk".
        `encrypt`: our app encrypts every payload (a fresh key); `trace`: our app traces, exporting
        to a local port where nothing listens."""
        self.run_id = secrets.token_hex(4)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.run_id}-"))
        shm = Path("/dev/shm")
        self.db_dir = self.workdir
        if temporal_db == "tmpfs" and shm.is_dir() and os.access(shm, os.W_OK):
            self.db_dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.run_id}-", dir=shm))
        self.database = FreshDatabase(f"bench_{self.run_id}")
        self.temporal = TemporalServer(free_port(), self.db_dir / "temporal.db", log_level="error")
        self.web_port = free_port()
        self.order_queue = f"bench-{self.run_id}-order"
        self.shipping_queue = f"bench-{self.run_id}-shipping"
        self.floor_order_queue = f"bench-{self.run_id}-floor-order"
        self.floor_shipping_queue = f"bench-{self.run_id}-floor-shipping"
        # Our app's options (the floor has neither): the key, and where spans go (nowhere).
        self.payload_key = base64.b64encode(secrets.token_bytes(32)).decode() if encrypt else None
        self.trace_endpoint = f"http://127.0.0.1:{free_port()}" if trace else None
        options: dict[str, str] = {}
        if self.payload_key:
            options["PAYLOAD_ENCRYPTION_KEY"] = self.payload_key
        if self.trace_endpoint:
            options["OTEL_EXPORTER_OTLP_ENDPOINT"] = self.trace_endpoint
        self.processes = Stack(
            {
                **options,
                "DATABASE_URL": self.database.url,
                "TEMPORAL_ADDRESS": self.temporal.address,
                "ORDER_TASK_QUEUE": self.order_queue,
                "SHIPPING_TASK_QUEUE": self.shipping_queue,
                "DEBUG": False,
                "SECRET_KEY": secrets.token_urlsafe(50),
                "LOG_LEVEL": "WARNING",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "WORKER_ACTIVITY_THREADS": WORKER_THREADS,
                "APPROVAL_TIMEOUT_SECONDS": APPROVAL_TIMEOUT_S,
                "FLAKY_CALL_FAILURE_RATE": 0,
                "FLAKY_CALL_TIMEOUT_SHARE": 0,
            },
            log_dir=self.workdir,
            say=say,
        )

    @property
    def on_tmpfs(self) -> bool:
        return self.db_dir != self.workdir

    def start_temporal(self) -> Process:
        return self.temporal.start(self.processes)

    def start_worker(
        self,
        *,
        flaky_rate: float = 0.0,
        queue: str | None = None,
        cache: int | None = None,
        name: str = "worker (runworker)",
    ) -> Process:
        """`manage.py runworker`: both queues, or only `queue` ("order" or "shipping")."""
        overrides: dict[str, float | int] = {"FLAKY_CALL_FAILURE_RATE": flaky_rate} if flaky_rate else {}
        if cache is not None:
            overrides["WORKER_MAX_CACHED_WORKFLOWS"] = cache
        return self.processes.start_worker(name=name, queue=queue, **overrides)

    def worker_queues(self, queue: str | None = None) -> list[str]:
        """The task queues a runworker started with `--queue queue` (or with both) polls."""
        if queue is None:
            return [self.order_queue, self.shipping_queue]
        return [self.order_queue if queue == "order" else self.shipping_queue]

    def start_web(self) -> Process:
        web = self.processes.start_web(self.web_port, name="web (uvicorn)", options=("--log-level", "warning"))
        wait_for_web(web, self.web_port, START_TIMEOUT_S)
        return web

    def start_floor_worker(self, name: str = "floor worker") -> Process:
        args = [
            sys.executable, "-m", "scripts.benchlib.floor", "worker", "--address", self.temporal.address,
            "--order-queue", self.floor_order_queue, "--shipping-queue", self.floor_shipping_queue,
            "--threads", str(WORKER_THREADS),
        ]  # fmt: skip
        env = {**base_environment(), "PYTHONUNBUFFERED": "1"}
        return self.processes.start(name, args, env=env, layer=LAYER_WORKER)

    def stop(self, process: Process) -> int:
        """Stop it; its peak memory (VmHWM, kB), read just before."""
        peak = peak_rss_kb(process.pid) if process.alive() else 0
        self.processes.stop(process)
        return peak

    def tear_down(self, *, keep_logs: bool) -> None:
        """Stop everything, drop the database, remove the files (the logs only unless `keep_logs`)."""
        self.processes.stop_all()
        try:
            if self.database.created:
                self.database.drop()
                say(f"database {self.database.name} dropped")
        finally:
            if self.on_tmpfs:
                shutil.rmtree(self.db_dir, ignore_errors=True)
            if keep_logs:
                say(f"logs kept in {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
