"""What operators rely on: failing activities are loud, logs can be JSON, drift is found and fixed."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from lifecycle.activities import order_validated
from lifecycle.types import StepInput
from orders.models import Order


def run_attempt(attempt: int) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    with pytest.raises(Order.DoesNotExist):
        env.run(order_validated, StepInput(order_id="order-missing", event_id="order-missing:ORDER_VALIDATED"))


def test_an_activity_that_keeps_failing_is_logged_at_error_with_its_order(
    transactional_db: None, caplog: Any, settings: Any
) -> None:
    settings.ACTIVITY_ERROR_LOG_ATTEMPT = 10
    with caplog.at_level(logging.INFO, logger="lifecycle.activities"):
        run_attempt(3)
        run_attempt(10)
    levels = [
        (record.levelno, record.getMessage()) for record in caplog.records if record.name == "lifecycle.activities"
    ]
    assert levels[0][0] == logging.INFO
    assert levels[1][0] == logging.ERROR
    assert "order order-missing" in levels[1][1] and "attempt 10" in levels[1][1]


def test_log_format_json_writes_one_json_object_per_line() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = "import logging; logging.getLogger('lifecycle.worker').warning('hello %s', 'operators')"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=root,
        env={**os.environ, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(line for line in result.stderr.splitlines() if "operators" in line)
    record = json.loads(line)
    assert record["message"] == "hello operators"
    assert record["level"] == "WARNING"
    assert record["logger"] == "lifecycle.worker"


def test_reconcile_reports_drift_and_fix_repairs_it_from_the_workflow(api: Any, workers: Any, capsys: Any) -> None:
    from django.core.management import call_command

    from orders import services
    from orders.models import Order
    from orders.tests.factories import new_order_id, order_body, wait_for_state

    drifted = new_order_id()
    api.post(f"/orders/{drifted}/start", order_body(), content_type="application/json")
    wait_for_state(drifted, "AWAITING_APPROVAL")
    Order.objects.filter(id=drifted).update(state="ORDER_RECEIVED")  # e.g. a restored backup
    orphan = new_order_id()  # recorded, but Temporal was down when the start came in
    body = order_body()
    services.order_start(order_id=orphan, payment_id=body["payment_id"], items=body["items"], address=body["address"])

    with pytest.raises(SystemExit) as exit_:
        call_command("reconcile")
    assert exit_.value.code == 1
    report = capsys.readouterr().out
    assert f"{drifted}  database=ORDER_RECEIVED  workflow=AWAITING_APPROVAL  state differs" in report
    assert f"{orphan}  database=ORDER_RECEIVED  workflow=-  no workflow" in report
    assert Order.objects.get(id=drifted).state == "ORDER_RECEIVED"  # a report changes nothing

    call_command("reconcile", "--fix")
    assert "2 drifted, 2 fixed" in capsys.readouterr().out
    assert Order.objects.get(id=drifted).state == "AWAITING_APPROVAL"
    wait_for_state(orphan, "AWAITING_APPROVAL")
    call_command("reconcile")
    assert "0 drifted" in capsys.readouterr().out


@pytest.mark.slow
def test_reconcile_finds_no_drift_in_orders_that_are_moving_and_fixes_nothing(api: Any, workers: Any) -> None:
    """Healthy orders caught between two steps are in step: reconcile --fix runs over and over
    while orders are started and approved, and reports and repairs nothing."""
    import asyncio
    import threading

    from orders.reconciliation import reconcile
    from orders.tests.factories import new_order_id, order_body, wait_for_state

    stop = threading.Event()
    runs: list[tuple[int, list[Any]]] = []

    def keep_reconciling() -> None:
        while not stop.is_set():
            runs.append(asyncio.run(reconcile(fix=True, settle=0.5)))

    checker = threading.Thread(target=keep_reconciling)
    checker.start()
    order_ids = [new_order_id() for _ in range(12)]
    try:
        for order_id in order_ids:
            assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code
        for order_id in order_ids:
            assert api.post(f"/orders/{order_id}/signals/approve").status_code == 202
        for order_id in order_ids:
            wait_for_state(order_id, "COMPLETED")
    finally:
        stop.set()
        checker.join(60)
    assert sum(checked for checked, _ in runs) > 0, "reconcile never saw an open order"
    assert [drift for _, drifts in runs for drift in drifts] == []
    assert all(Order.objects.get(id=order_id).state == "COMPLETED" for order_id in order_ids)
