"""`manage.py runworker` as operators run it: a separate process, killed and restarted."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import get_commands
from django.test import Client

from orders.models import Event, Order, Payment, ProviderCharge
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until
from scripts.stack import Process, Stack, wait_for_worker


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


def worker(stack: Stack, **overrides: Any) -> Process:
    """A runworker process (a short drain on SIGTERM), once it polls its queues."""
    process = stack.start_worker(options=("--grace", "3"), **overrides)
    wait_for_worker(process, seconds=30)
    return process


@pytest.fixture
def worker_settings(queues: Any, temporal: Any) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url(),
        "TEMPORAL_ADDRESS": temporal.address,
        "ORDER_TASK_QUEUE": queues.order_task_queue,
        "SHIPPING_TASK_QUEUE": queues.shipping_task_queue,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def stack(worker_settings: dict[str, Any], tmp_path: Path) -> Iterator[Stack]:
    """Worker processes on this test's database and queues, stopped at the end whatever happens."""
    stack = Stack(worker_settings, log_dir=tmp_path, grace=30)
    yield stack
    stack.stop_all()


@pytest.mark.slow
def test_a_worker_killed_mid_order_is_replaced_and_every_order_is_charged_once(api: Client, stack: Stack) -> None:
    first = worker(stack, FLAKY_CALL_FAILURE_RATE=0.5)
    order_ids = [new_order_id() for _ in range(4)]
    for order_id in order_ids:
        assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
        assert api.post(f"/orders/{order_id}/signals/approve").status_code == 202
    wait_until(lambda: Payment.objects.filter(order_id__in=order_ids).exists(), what="a payment under way")
    stack.kill(first)
    assert first.returncode == -signal.SIGKILL

    replacement = worker(stack, FLAKY_CALL_FAILURE_RATE=0.5)
    for order_id in order_ids:
        wait_for_state(order_id, "COMPLETED", timeout=120)
    stack.stop(replacement)
    assert replacement.returncode == 0, replacement.output()
    for order_id in order_ids:
        payment_id = Order.objects.get(id=order_id).payment_id
        assert Payment.objects.filter(payment_id=payment_id).count() == 1
        assert ProviderCharge.objects.filter(idempotency_key=payment_id).count() == 1
        types = list(Event.objects.filter(order_id=order_id).values_list("type", flat=True))
        assert len(types) == len(set(types)) == 8


def test_sigterm_stops_the_worker_cleanly(stack: Stack) -> None:
    process = worker(stack)
    stack.stop(process)
    text = process.output()
    assert process.returncode == 0, text
    assert "draining in-flight activities" in text
    assert "runworker stopped" in text
    assert "Traceback" not in text


def test_one_queue_per_process_for_scaling(stack: Stack, worker_settings: dict[str, Any]) -> None:
    process = stack.start_worker(queue="shipping")
    wait_for_worker(process, seconds=30)
    ready = next(line for line in process.output().splitlines() if "runworker ready" in line)
    assert worker_settings["SHIPPING_TASK_QUEUE"] in ready
    assert worker_settings["ORDER_TASK_QUEUE"] not in ready


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("CommandError")]
    assert len(lines) == 1 and expected in lines[0], result.stderr


def manage(*args: str, **settings: Any) -> subprocess.CompletedProcess[str]:
    return Stack(settings).manage(*args, check=False, timeout=60)


def test_unreachable_temporal_is_explained_in_one_line(worker_settings: dict[str, Any]) -> None:
    result = manage("runworker", "--address", "127.0.0.1:9", "--connect-timeout", "1", **worker_settings)
    assert_one_line_error(result, "Temporal is unreachable at 127.0.0.1:9")


def test_unapplied_migrations_are_explained_in_one_line(tmp_path: Path) -> None:
    result = manage("runworker", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert_one_line_error(result, "migration(s) are not applied")


def test_unreachable_database_is_explained_in_one_line() -> None:
    result = manage("runworker", DATABASE_URL="postgres://postgres@127.0.0.1:9/orders")
    assert_one_line_error(result, "the database is unreachable")
