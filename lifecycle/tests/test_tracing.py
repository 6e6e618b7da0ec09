"""Tracing: an approval is one trace from its HTTP request to the charge it causes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.test import Client
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from lifecycle import tracing
from lifecycle.connect import connect
from lifecycle.worker import QUEUES, WorkerConfig
from orders.tests.factories import new_order_id, order_body, wait_for_state


class AppClientHarness:
    def __init__(self, temporal: Any, client: Any) -> None:
        self.client = client
        self.run = temporal.run


@pytest.fixture
def memory_tracing() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(provider)
    tracing.instrument_django()
    try:
        yield exporter
    finally:
        tracing.uninstrument_django()
        tracing.disable()


@pytest.fixture
def spans(memory_tracing: InMemorySpanExporter, queues: WorkerConfig, temporal: Any) -> Iterator[InMemorySpanExporter]:
    """Tracing on (to memory), Django instrumented, both workers on a client from the app's factory."""
    from conftest import RunningWorkers

    harness = AppClientHarness(temporal, temporal.run(connect()))
    with RunningWorkers(harness, queues, QUEUES):  # type: ignore[arg-type]
        yield memory_tracing


def http_span(spans: list[ReadableSpan], path: str) -> ReadableSpan:
    """The Django request span for `path` (older or newer HTTP semantic conventions)."""
    [span] = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER
        and str((s.attributes or {}).get("http.url", (s.attributes or {}).get("url.path", ""))).endswith(path)
    ]
    return span


def test_an_approval_is_one_trace_from_the_http_request_to_the_charge(api: Client, spans: InMemorySpanExporter) -> None:
    order_id = new_order_id()
    assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    wait_for_state(order_id, "AWAITING_APPROVAL")
    assert api.post(f"/orders/{order_id}/signals/approve").status_code == 202
    wait_for_state(order_id, "COMPLETED")

    finished = list(spans.get_finished_spans())
    approval = http_span(finished, f"/orders/{order_id}/signals/approve")
    trace = [s for s in finished if s.context.trace_id == approval.context.trace_id]
    names = {s.name for s in trace}
    assert "StartWorkflowUpdate:approve" in names  # the client's call
    assert {"StartActivity:payment_charged", "RunActivity:payment_charged"} <= names
    assert "StartChildWorkflow:ShippingWorkflow" in names  # shipping follows the approval too
    # The start request is a trace of its own: the intake steps, not the charge.
    start = http_span(finished, f"/orders/{order_id}/start")
    assert start.context.trace_id != approval.context.trace_id
    started = {s.name for s in finished if s.context.trace_id == start.context.trace_id}
    assert "StartWorkflow:OrderWorkflow" in started and "RunActivity:payment_charged" not in started


def test_tracing_is_off_without_an_endpoint(settings: Any) -> None:
    settings.OTEL_EXPORTER_OTLP_ENDPOINT = ""
    assert tracing.configure("test") is False
    assert tracing.client_interceptors() == []


def test_the_api_stack_under_asgi_makes_request_spans_too(
    memory_tracing: InMemorySpanExporter, api_user: Any, settings: Any
) -> None:
    """The JSON API's own middleware list (orders_site/asgi.py) is instrumented as well. Django's
    instrumentation needs opentelemetry-instrumentation-asgi for ASGI requests."""
    pytest.importorskip("opentelemetry.instrumentation.asgi", reason="opentelemetry-instrumentation-asgi missing")
    from orders.tokens import token_create
    from orders_site.asgi import ApiHandler

    assert settings.API_MIDDLEWARE[0] == settings.MIDDLEWARE[0] == "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"  # fmt: skip
    token = token_create(user=api_user, name="tracing")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/orders/order-none/status", "raw_path": b"/orders/order-none/status", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
    }  # fmt: skip

    async def request() -> int:
        communicator = ApplicationCommunicator(ApiHandler(), scope)
        await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await communicator.receive_output(10)
        while (await communicator.receive_output(10)).get("more_body"):
            pass
        return int(start["status"])

    assert asyncio.run(request()) == 404
    span = http_span(list(memory_tracing.get_finished_spans()), "/orders/order-none/status")
    assert span.attributes and span.attributes["http.status_code"] == 404
