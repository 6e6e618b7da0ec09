"""The torture test, short: scripts/chaos.py with 30 orders and a few worker kills.

It runs the script as a subprocess, so it builds its own stack (Temporal dev server, PostgreSQL
database, worker, web app) and uses nothing of the test session's: it behaves the same whether
`make test` runs on SQLite or on PostgreSQL. The script always needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

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
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3).close()
    except psycopg.OperationalError as err:
        pytest.fail(f"the chaos test needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth): {err}")


def run_chaos(args: list[str]) -> tuple[int, str, str]:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: the script then stops its stack and drops its database.
        process.terminate()
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"scripts/chaos.py did not finish in {TIMEOUT_SECONDS} s:\n{stdout}\n{stderr[-3000:]}")
    return process.returncode, stdout, stderr


# Part of every `make test` (PostgreSQL and SQLite sessions alike); about 70-90 s on 2 cores.
@pytest.mark.slow
def test_thirty_orders_survive_worker_kills_and_dropped_connections(tmp_path: Path) -> None:
    require_postgres()
    report = tmp_path / "chaos.json"
    returncode, stdout, stderr = run_chaos([*SHORT_RUN, "--json", str(report)])
    assert returncode == 0, f"scripts/chaos.py failed ({returncode}):\n{stdout}\n{stderr[-3000:]}"
    figures = json.loads(report.read_text())
    failed = [check for check in figures["checks"] if not check["ok"]]
    assert figures["ok"] and not failed, failed
    names = {check["name"] for check in figures["checks"]}
    # The report must hold the lines the guarantees rest on, not just "ok".
    assert {"orders stuck (not ended after the drain)", "provider charges per idempotency key (max)"} <= names
    assert figures["faults"]["worker_kills"] >= 3
