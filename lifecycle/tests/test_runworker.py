"""`manage.py runworker` as operators run it: a separate process, killed and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import get_commands
from django.test import Client

from orders.models import Event, Order, Payment, ProviderCharge
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_manage_py_runworker_is_ours_not_channels() -> None:
    assert get_commands()["runworker"] == "lifecycle"


def database_url() -> str:
    """The URL of the database the tests use, for a worker process of their own."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runworker", "--grace", "3"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: "runworker ready" in log.read_text() or self.process.poll() is not None, what="worker ready")
        assert self.process.poll() is None, log.read_text()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def worker_env(queues: Any, temporal: Any) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "TEMPORAL_ADDRESS": temporal.address,
        "ORDER_TASK_QUEUE": queues.order_task_queue,
        "SHIPPING_TASK_QUEUE": queues.shipping_task_queue,
        "LOG_LEVEL": "INFO",
    }


@pytest.mark.slow
def test_a_worker_killed_mid_order_is_replaced_and_every_order_is_charged_once(
    api: Client, worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**worker_env, "FLAKY_CALL_FAILURE_RATE": "0.5"}
    log = tmp_path / "worker.log"
    worker = WorkerProcess(env, log)
    order_ids = [new_order_id() for _ in range(4)]
    for order_id in order_ids:
        assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
        assert api.post(f"/orders/{order_id}/signals/approve").status_code == 202
    wait_until(lambda: Payment.objects.filter(order_id__in=order_ids).exists(), what="a payment under way")
    worker.kill()
    assert worker.process.returncode == -signal.SIGKILL

    replacement = WorkerProcess(env, log)
    try:
        for order_id in order_ids:
            wait_for_state(order_id, "COMPLETED", timeout=120)
    finally:
        replacement.process.send_signal(signal.SIGTERM)
        replacement.process.wait(30)
    assert replacement.process.returncode == 0
    for order_id in order_ids:
        payment_id = Order.objects.get(id=order_id).payment_id
        assert Payment.objects.filter(payment_id=payment_id).count() == 1
        assert ProviderCharge.objects.filter(idempotency_key=payment_id).count() == 1
        types = list(Event.objects.filter(order_id=order_id).values_list("type", flat=True))
        assert len(types) == len(set(types)) == 8


def test_sigterm_stops_the_worker_cleanly(worker_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = WorkerProcess(worker_env, log)
    worker.process.send_signal(signal.SIGTERM)
    returncode = worker.process.wait(30)
    text = log.read_text()
    assert returncode == 0, text
    assert "draining in-flight activities" in text
    assert "runworker stopped" in text
    assert "Traceback" not in text


def test_one_queue_per_process_for_scaling(worker_env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--queue", "shipping"],
        cwd=ROOT,
        env={**os.environ, **worker_env},
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: "runworker ready" in log.read_text(), what="worker ready")
        ready = next(line for line in log.read_text().splitlines() if "runworker ready" in line)
        assert worker_env["SHIPPING_TASK_QUEUE"] in ready
        assert worker_env["ORDER_TASK_QUEUE"] not in ready
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("CommandError")]
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_unreachable_temporal_is_explained_in_one_line(worker_env: dict[str, str]) -> None:
    result = manage("runworker", "--address", "127.0.0.1:9", "--connect-timeout", "1", env=worker_env)
    assert_one_line_error(result, "Temporal is unreachable at 127.0.0.1:9")


def test_unapplied_migrations_are_explained_in_one_line(tmp_path: Path) -> None:
    result = manage("runworker", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"})
    assert_one_line_error(result, "migration(s) are not applied")


def test_unreachable_database_is_explained_in_one_line() -> None:
    result = manage("runworker", env={"DATABASE_URL": "postgres://postgres@127.0.0.1:9/orders"})
    assert_one_line_error(result, "the database is unreachable")
