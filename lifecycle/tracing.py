"""Tracing: one trace per order action, from the web request to the activities it causes.

With OTEL_EXPORTER_OTLP_ENDPOINT set, each process (web app, runworker) exports spans over
OTLP/HTTP; Django's requests are spans (opentelemetry-instrumentation-django), and the Temporal
client and workers carry the trace on through Temporal's `TracingInterceptor`. Unset, nothing here
runs: no interceptor, no middleware, no exporter.

Temporal's interceptor puts everything a workflow does in the trace of the request that *started*
it; an Update or signal handler only links to its caller's trace. Here the steps a workflow takes
after an accepted action (the charge after an approval, the refund after a cancellation, the
shipping child) join that action's trace instead, so an approval's trace runs from the reviewer's
click to `payment_charged` (`ActionTracingInterceptor`). Trace context travels in Temporal headers,
which commands and replay ignore: the workflow's behaviour is the same with and without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import opentelemetry.context
import temporalio.worker
from opentelemetry.trace import TracerProvider
from temporalio.api.common.v1 import Payload
from temporalio.contrib.opentelemetry import TracingInterceptor, TracingWorkflowInboundInterceptor
from temporalio.contrib.opentelemetry._interceptor import _TracingWorkflowOutboundInterceptor

TRACER_NAME = "order-lifecycle"

logger = logging.getLogger(__name__)

_provider: TracerProvider | None = None


def configure(service: str) -> bool:
    """Export this process's spans when OTEL_EXPORTER_OTLP_ENDPOINT is set (once; later calls do
    nothing). `service` names the process in the traces ("web", "worker"). True if tracing is on."""
    from django.conf import settings

    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    if _provider is not None or not endpoint:
        return _provider is not None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SdkTracerProvider(resource=Resource.create({"service.name": f"order-lifecycle-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    enable(provider)
    return True


def enable(provider: TracerProvider) -> None:
    """Trace with `provider` from now on (the tests pass one with an in-memory exporter)."""
    global _provider
    _provider = provider


def disable() -> None:
    global _provider
    _provider = None


def flush() -> None:
    """Send the spans still queued (before the process ends)."""
    flush_spans = getattr(_provider, "force_flush", None)
    if flush_spans is not None:
        flush_spans(5000)


def enabled() -> bool:
    return _provider is not None


def instrument_django() -> None:
    """Make each request a span, in both of the web app's middleware stacks (orders_site/asgi.py);
    before the first request, as Django reads the lists once."""
    if _provider is None:
        return
    from django.conf import settings
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return
    if importlib.util.find_spec("opentelemetry.instrumentation.asgi") is None:
        # Django's instrumentation skips ASGI requests (all of them under uvicorn) without it.
        logger.warning("tracing: no request spans under ASGI; install opentelemetry-instrumentation-asgi")
    instrumentor.instrument(tracer_provider=_provider)
    middleware = instrumentor._opentelemetry_middleware
    if middleware not in settings.API_MIDDLEWARE:
        settings.API_MIDDLEWARE = [middleware, *settings.API_MIDDLEWARE]


def uninstrument_django() -> None:
    from django.conf import settings
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    settings.API_MIDDLEWARE = [m for m in settings.API_MIDDLEWARE if m != instrumentor._opentelemetry_middleware]
    instrumentor.uninstrument()


def client_interceptors() -> list[Any]:
    """The interceptors of a new client (and so of the workers made from it): none when off."""
    if _provider is None:
        return []
    return [ActionTracingInterceptor(_provider.get_tracer(TRACER_NAME))]


class ActionTracingInterceptor(TracingInterceptor):
    """Temporal's TracingInterceptor, with workflow steps in the trace of the action that caused
    them (see the module docstring)."""

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[TracingWorkflowInboundInterceptor]:
        super().workflow_interceptor_class(input)
        return ActionTracingWorkflowInterceptor


class ActionTracingWorkflowInterceptor(TracingWorkflowInboundInterceptor):
    def __init__(self, next: temporalio.worker.WorkflowInboundInterceptor) -> None:
        super().__init__(next)
        # The trace context of the latest accepted Update or signal: a carrier, plain data.
        self._action_carrier: dict[str, str] | None = None

    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        temporalio.worker.WorkflowInboundInterceptor.init(self, _ActionOutbound(outbound, self))

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        self._remember(input.headers)
        await super().handle_signal(input)

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        # The handler, not the validator: a refused action causes nothing.
        self._remember(input.headers)
        return await super().handle_update_handler(input)

    def _remember(self, headers: Mapping[str, Payload]) -> None:
        header = headers.get(self.header_key)
        if header:
            carrier = self.payload_converter.from_payloads([header])[0]
            if carrier:
                self._action_carrier = carrier

    @contextlib.contextmanager
    def action_context(self) -> Iterator[None]:
        """The latest action's trace as the current context (unchanged when there was none)."""
        if not self._action_carrier:
            yield
            return
        context = self._set_on_context(self.text_map_propagator.extract(self._action_carrier))
        token = opentelemetry.context.attach(context)
        try:
            yield
        finally:
            opentelemetry.context.detach(token)


class _ActionOutbound(_TracingWorkflowOutboundInterceptor):
    root: ActionTracingWorkflowInterceptor

    def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
        with self.root.action_context():
            return super().start_activity(input)

    def start_local_activity(self, input: temporalio.worker.StartLocalActivityInput) -> Any:
        with self.root.action_context():
            return super().start_local_activity(input)

    async def start_child_workflow(self, input: temporalio.worker.StartChildWorkflowInput) -> Any:
        with self.root.action_context():
            return await super().start_child_workflow(input)
