"""LOG_FORMAT=json, as operators run it: uvicorn's access and error lines are JSON too, and a line
logged in an activity carries its order's id as a field (orders_site/logs.py)."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from temporalio.testing import ActivityEnvironment

from lifecycle.tests.test_runworker import database_url
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until
from orders_site.logs import OrderIdFilter
from scripts.stack import Process, Stack, free_port, wait_for_web, wait_for_worker


@pytest.fixture
def json_stack(queues: Any, temporal: Any, tmp_path: Path) -> Iterator[Stack]:
    settings = {
        "DATABASE_URL": database_url(),
        "TEMPORAL_ADDRESS": temporal.address,
        "ORDER_TASK_QUEUE": queues.order_task_queue,
        "SHIPPING_TASK_QUEUE": queues.shipping_task_queue,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }
    stack = Stack(settings, log_dir=tmp_path, grace=30)
    yield stack
    stack.stop_all()


def records(process: Process) -> list[dict[str, Any]]:
    """Every line the process wrote, each a JSON object (json.loads fails on any other line)."""
    return [json.loads(line) for line in process.output().splitlines() if line.strip()]


def test_uvicorn_access_and_error_lines_are_json_with_the_request_as_fields(json_stack: Stack) -> None:
    port = free_port()
    web = json_stack.start_web(port)
    wait_for_web(web, port, seconds=60)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=10) as response:
        assert response.status == 200

    def access_line() -> dict[str, Any] | None:
        lines = [r for r in records(web) if r.get("logger") == "uvicorn.access" and r.get("path") == "/health/live"]
        return lines[0] if lines else None

    line = wait_until(access_line, what="the access line of /health/live")
    assert (line["method"], line["status_code"], line["level"]) == ("GET", 200, "INFO")
    assert line["client"].startswith("127.0.0.1:")
    assert '"GET /health/live HTTP/1.1" 200' in line["message"]
    assert any(
        r.get("logger") == "uvicorn.error" and "Application startup complete" in r["message"] for r in records(web)
    )


def test_an_activity_line_carries_the_order_id_as_a_field(json_stack: Stack, api: Client) -> None:
    worker = json_stack.start_worker(options=("--grace", "3"))
    wait_for_worker(worker, seconds=30)
    order_id = new_order_id()
    body = order_body(zip_code="00000")  # the carrier refuses it: the dispatch activity fails
    assert api.post(f"/orders/{order_id}/start", body, content_type="application/json").status_code == 201
    wait_for_state(order_id, "AWAITING_APPROVAL")
    assert api.post(f"/orders/{order_id}/signals/approve").status_code == 202
    wait_for_state(order_id, "FAILED")

    def failed_dispatch() -> dict[str, Any] | None:
        lines = [r for r in records(worker) if r.get("message", "").startswith("Completing activity as failed")]
        return lines[0] if lines else None

    line = wait_until(failed_dispatch, what="the failed dispatch logged")
    assert line["logger"] == "temporalio.activity"
    assert line["order_id"] == order_id  # from the shipping child's workflow id, without its prefix
    assert line["temporal_activity"]["activity_type"] == "carrier_dispatched"


def test_any_logger_inside_an_activity_gets_the_order_id_and_an_explicit_one_is_kept() -> None:
    seen: list[logging.LogRecord] = []
    env = ActivityEnvironment()
    env.info = env.info.__class__(
        **{**vars(env.info), "workflow_id": "shipping-order-7", "workflow_type": "ShippingWorkflow"}
    )
    order_filter = OrderIdFilter()

    def activity_body() -> None:
        for extra in ({}, {"order_id": "order-named"}):
            record = logging.LogRecord("lifecycle.providers", logging.INFO, __file__, 0, "a line", (), None)
            record.__dict__.update(extra)
            order_filter.filter(record)
            seen.append(record)

    env.run(activity_body)
    assert [r.order_id for r in seen] == ["order-7", "order-named"]  # type: ignore[attr-defined]
    outside = logging.LogRecord("lifecycle.worker", logging.INFO, __file__, 0, "not in an activity", (), None)
    assert order_filter.filter(outside) and not hasattr(outside, "order_id")
