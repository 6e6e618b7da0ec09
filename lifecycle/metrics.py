"""The workers' metrics: the Temporal SDK's own and the app's, on one Prometheus endpoint.

`worker_runtime(bind)` is a Temporal runtime whose Prometheus exporter serves `/metrics` on
`bind` (host:port); a client connected with it gives its workers that runtime, so everything they
record lands there. The app records through the SDK's meters (`workflow.metric_meter()`,
`activity.metric_meter()`), not a registry of its own: one endpoint per worker process, and the
SDK adds the namespace, task queue and workflow or activity type to each series.

A workflow's meter records nothing while the workflow replays, so a counter in workflow code
counts each order once even when a worker evicts the workflow and replays its history later.
Nothing here imports Django: `lifecycle/workflows.py` imports this module.

Names (Prometheus, as the SDK exports them: counters without a `_total` suffix):
- `orders_started`: order workflows started;
- `orders_ended{state}`: order workflows ended, by end state (COMPLETED, FAILED, CANCELLED,
  APPROVAL_TIMEOUT);
- `orders_review_decision_seconds{decision}`: histogram of the time from review start (the order
  entered AWAITING_APPROVAL) to its decision: `approved`, `cancelled` or `timed_out`;
- `orders_provider_calls{provider,operation}` and `orders_provider_call_failures{provider,operation,error}`:
  calls to the outside services (the payment provider's charge and refund, the carrier's dispatch),
  each try counted, and those that failed, by exception type.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

ORDERS_STARTED = "orders_started"
ORDERS_ENDED = "orders_ended"
REVIEW_DECISION = "orders_review_decision_seconds"
PROVIDER_CALLS = "orders_provider_calls"
PROVIDER_CALL_FAILURES = "orders_provider_call_failures"

# Reviews take seconds to the approval window (APPROVAL_TIMEOUT_SECONDS, a day by default).
REVIEW_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0)


def worker_runtime(port: int | None, host: str = "127.0.0.1") -> Runtime | None:
    """A runtime exporting the SDK's metrics and the app's on http://host:port/metrics, for the
    workers' client (WORKER_METRICS_PORT, WORKER_METRICS_BIND); None without a port.

    The SDK's defaults are kept (durations in milliseconds, counters without `_total`), so that
    Temporal's own dashboards and documentation match the names as emitted. A port that cannot be
    bound raises MetricsUnavailable."""
    if not port:
        return None
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    prometheus = PrometheusConfig(bind_address=bind, histogram_bucket_overrides={REVIEW_DECISION: REVIEW_BUCKETS})
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    except Exception as err:  # the core reports a bind failure as a plain exception
        raise MetricsUnavailable(f"cannot serve metrics on {bind}: {err}") from err


class MetricsUnavailable(Exception):
    """The metrics endpoint could not be opened (the port is taken, the address is not local)."""


# --- in workflow code (replay-safe: the meter records nothing during replay) ------------------
def order_started() -> None:
    workflow.metric_meter().create_counter(ORDERS_STARTED, "Order workflows started").add(1)


def order_ended(state: str) -> None:
    workflow.metric_meter().create_counter(ORDERS_ENDED, "Order workflows ended, by end state").add(1, {"state": state})


def review_decided(decision: str, waited: timedelta) -> None:
    workflow.metric_meter().create_histogram_float(
        REVIEW_DECISION, "Time from review start to the decision", "s"
    ).record(max(waited.total_seconds(), 0.0), {"decision": decision})


# --- in activity code ---------------------------------------------------------------------------
def _activity_meter() -> MetricMeter | None:
    # Outside an activity (a management command, a unit test calling a provider) nothing is recorded.
    return activity.metric_meter() if activity.in_activity() else None


@contextmanager
def provider_call(provider: str, operation: str) -> Iterator[None]:
    """Count one call to an outside service and, if it raises, its failure by exception type."""
    meter = _activity_meter()
    labels = {"provider": provider, "operation": operation}
    if meter is not None:
        meter.create_counter(PROVIDER_CALLS, "Calls to outside services").add(1, labels)
    try:
        yield
    except Exception as err:
        if meter is not None:
            meter.create_counter(PROVIDER_CALL_FAILURES, "Failed calls to outside services").add(
                1, {**labels, "error": type(err).__name__}
            )
        raise
