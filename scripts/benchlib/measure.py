"""What a phase cost: CPU per process and for the machine (/proc), memory, PostgreSQL's counters;
and the percentiles of its latencies."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from scripts.stack import Process, postgres_connect

CLK_TCK = os.sysconf("SC_CLK_TCK")


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
    """CPU used per process (and by the whole machine) between entering and leaving it."""

    def __init__(self, procs: dict[str, Process | None], db_name: str | None = None) -> None:
        self.procs = {name: p for name, p in procs.items() if p is not None}
        self.db_name = db_name
        self.pg_used: dict[str, int] = {}

    def _pg(self) -> dict[str, int]:
        """Sessions opened and transactions ended in the bench database (pg_stat_database)."""
        if not self.db_name:
            return {}
        try:
            with postgres_connect() as conn:
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


def phase_record(
    system: str, faults: str, concurrency: int, n: int, batch: dict[str, Any], meter: CpuMeter, workers: int = 1
) -> dict[str, Any]:
    """One phase's figures for the report and the JSON. `workers`: worker processes per task
    queue (1: one process for both queues)."""
    done = len(batch["latencies"])
    per_order = {name: round(1000.0 * s / done, 1) for name, s in meter.used.items()} if done else {}
    worker_cpu = [v for k, v in per_order.items() if k.startswith(("worker", "floor worker"))]
    # Ours alone: the web app and every runworker (what --encrypt and --trace cost shows here).
    app_cpu = [v for k, v in per_order.items() if k.startswith(("worker", "web"))]
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
        "app_cpu_ms_per_order": round(sum(app_cpu), 1) if system == "ours" and app_cpu else None,
        "machine_cpu_busy_pct": meter.machine_busy_pct,
        "machine_cpu_busy_s": meter.machine_busy_s,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "postgres_per_order": {k: round(v / done, 1) for k, v in meter.pg_used.items()} if done else {},
    }
