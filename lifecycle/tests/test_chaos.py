"""The torture test, short: scripts/chaos.py with 30 orders and a few worker kills.

It runs the script as a subprocess, so it builds its own stack (Temporal dev server, PostgreSQL
database, worker, web app) and uses nothing of the test session's: it behaves the same whether
`make test` runs on SQLite or on PostgreSQL, so it runs with the PostgreSQL session only. The
script always needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psycopg
import pytest

from scripts.stack import StackError, Supervisor, postgres_connect, wait_for

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "chaos.py"
# Small but with every kind of fault the short run can afford: no Temporal restart (the full
# `make chaos` run does one), one round of terminated database connections.
SHORT_RUN = [
    "--orders", "30", "--kills", "3", "--kill-every", "5", "--concurrency", "30",
    "--temporal-restarts", "0", "--db-drops", "1", "--seed", "20240611",
    # Thrice the full run's crash rate: with 30 orders the risky window must still be hit for sure.
    "--crash-rate", "0.15",
]  # fmt: skip
TIMEOUT_SECONDS = 420  # far above the ~90 s it takes; a hang fails instead of blocking CI


def require_postgres() -> None:
    """Fail at once with the reason, rather than let the script time out."""
    try:
        postgres_connect(timeout=3).close()
    except psycopg.OperationalError as err:
        pytest.fail(f"the chaos test needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth): {err}")


def run_chaos(args: list[str], log: Path) -> tuple[int | None, str]:
    """Its exit code and output (stdout and stderr)."""
    supervisor = Supervisor(grace=60)
    process = supervisor.start("chaos.py", [sys.executable, str(SCRIPT), *args], env=dict(os.environ), layer=0, log=log)
    try:
        wait_for(lambda: not process.alive(), seconds=TIMEOUT_SECONDS, what="scripts/chaos.py to finish", interval=1)
    except StackError:
        # SIGTERM first: the script then stops its stack and drops its database.
        supervisor.stop(process)
        pytest.fail(f"scripts/chaos.py did not finish in {TIMEOUT_SECONDS} s:\n{process.output()[-5000:]}")
    return process.returncode, process.output()


# Part of `make test` on PostgreSQL (about 70-90 s on 2 cores). The run is the same whatever the
# session's database, so CI, which runs `make test` on both, runs it once: with the PostgreSQL one.
@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="runs with the PostgreSQL session only (it builds the same stack whatever the session's database)",
)
@pytest.mark.timeout(TIMEOUT_SECONDS + 60)
def test_thirty_orders_survive_worker_kills_and_dropped_connections(tmp_path: Path) -> None:
    require_postgres()
    report = tmp_path / "chaos.json"
    returncode, output = run_chaos([*SHORT_RUN, "--json", str(report)], tmp_path / "chaos.log")
    assert returncode == 0, f"scripts/chaos.py failed ({returncode}):\n{output[-5000:]}"
    figures = json.loads(report.read_text())
    failed = [check for check in figures["checks"] if not check["ok"]]
    assert figures["ok"] and not failed, failed
    names = {check["name"] for check in figures["checks"]}
    # The report must hold the lines the guarantees rest on, not just "ok".
    assert {"orders stuck (not ended after the drain)", "provider charges per idempotency key (max)"} <= names
    assert figures["faults"]["worker_kills"] >= 3
