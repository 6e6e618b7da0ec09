"""`runworker` with WORKER_METRICS_PORT: the Temporal SDK's metrics and the app's on one /metrics."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from lifecycle.tests.test_runworker import assert_one_line_error, manage, stack, worker_settings
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until
from scripts.stack import Stack, free_port, wait_for_worker

__all__ = ["stack", "worker_settings"]  # fixtures shared with test_runworker


def text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def scrape(port: int) -> dict[str, Any]:
    """The metric families. The SDK writes counters without `_total` (`orders_ended{...}`, the
    name to query); the parser reports their samples as `orders_ended_total` all the same."""
    return {family.name: family for family in text_string_to_metric_families(text(port))}


def samples(families: dict[str, Any], name: str, **labels: str) -> list[Any]:
    """The samples called `name` (in whichever family holds them) whose labels include `labels`."""
    return [
        sample
        for family in families.values()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def total(families: dict[str, Any], name: str, **labels: str) -> float:
    return sum(sample.value for sample in samples(families, name, **labels))


def run_three_orders(api: Client) -> None:
    """One completed, one cancelled while it waits, one the carrier refuses (refunded, FAILED)."""
    completed, cancelled, refused = new_order_id(), new_order_id(), new_order_id()
    for order_id, body in (
        (completed, order_body()),
        (cancelled, order_body()),
        (refused, order_body(zip_code="00000")),
    ):
        assert api.post(f"/orders/{order_id}/start", body, content_type="application/json").status_code == 201
    for order_id in (completed, cancelled, refused):
        wait_for_state(order_id, "AWAITING_APPROVAL")
    assert api.post(f"/orders/{completed}/signals/approve").status_code == 202
    assert api.post(f"/orders/{cancelled}/signals/cancel").status_code == 202
    assert api.post(f"/orders/{refused}/signals/approve").status_code == 202
    wait_for_state(completed, "COMPLETED")
    wait_for_state(cancelled, "CANCELLED")
    wait_for_state(refused, "FAILED")


def test_the_sdk_and_the_app_metrics_are_scraped_from_one_endpoint(
    api: Client, stack: Stack, worker_settings: dict[str, Any]
) -> None:
    port = free_port()
    wait_for_worker(stack.start_worker(options=("--grace", "3"), WORKER_METRICS_PORT=port), seconds=30)
    run_three_orders(api)
    order_tq, shipping_tq = worker_settings["ORDER_TASK_QUEUE"], worker_settings["SHIPPING_TASK_QUEUE"]
    order = {"task_queue": order_tq, "workflow_type": "OrderWorkflow"}
    # The workflows' counters are recorded as their last task completes: wait for the last one.
    wait_until(lambda: total(scrape(port), "orders_ended_total", **order) == 3, what="three ended orders counted")
    families = scrape(port)
    exposed = text(port)
    for name in ("orders_started", "orders_ended", "orders_provider_calls", "temporal_activity_execution_failed"):
        assert f"\n{name}{{" in exposed  # as queried in PromQL (docs/operations.md)

    # The SDK's own: task latencies, slots, the sticky cache, pollers; per task queue.
    for queue in (order_tq, shipping_tq):
        assert total(families, "temporal_workflow_task_schedule_to_start_latency_count", task_queue=queue) >= 1
        assert samples(families, "temporal_sticky_cache_size", task_queue=queue)
        assert samples(families, "temporal_num_pollers", task_queue=queue, poller_type="workflow_task")
        for worker_type in ("WorkflowWorker", "ActivityWorker", "LocalActivityWorker"):
            assert samples(families, "temporal_worker_task_slots_available", task_queue=queue, worker_type=worker_type)
    assert total(families, "temporal_activity_execution_failed_total", task_queue=shipping_tq) >= 1  # the refusal

    # The app's, through the SDK's meters, with its labels.
    assert total(families, "orders_started_total", **order) == 3
    for state in ("COMPLETED", "CANCELLED", "FAILED"):
        assert total(families, "orders_ended_total", state=state, **order) == 1
    review = "orders_review_decision_seconds_count"
    assert total(families, review, decision="approved", **order) == 2
    assert total(families, review, decision="cancelled", **order) == 1
    assert samples(families, "orders_review_decision_seconds_bucket", le="300", decision="approved")
    payment = {"provider": "payment", "task_queue": order_tq, "activity_type": "payment_charged"}
    assert total(families, "orders_provider_calls_total", operation="charge", **payment) == 2
    refund = {"provider": "payment", "operation": "refund", "activity_type": "payment_refunded"}
    assert total(families, "orders_provider_calls_total", **refund) == 1
    carrier = {"provider": "carrier", "operation": "dispatch", "task_queue": shipping_tq}
    assert total(families, "orders_provider_calls_total", **carrier) == 2
    assert total(families, "orders_provider_call_failures_total", error="CarrierRefused", **carrier) == 1


def test_a_metrics_port_in_use_is_explained_in_one_line(worker_settings: dict[str, Any]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = manage("runworker", **worker_settings, WORKER_METRICS_PORT=port)
    assert_one_line_error(result, f"cannot serve metrics on 127.0.0.1:{port}")
