"""The web app's Prometheus metrics, served at `GET /metrics` (see docs/operations.md).

Names (prometheus-client adds `_total` to counters):
- `orders_actions_total{action,outcome,via}`: human actions through `orders.actions.order_act`, by
  action (approve, cancel, update_address), outcome (applied, refused, not_found, unavailable)
  and surface (api, console, admin);
- `orders_web_started_total`: orders recorded by the API's start (a repeated start is not counted);
- `orders_awaiting_approval`: orders awaiting approval now, read from the database at scrape time;
- `orders_awaiting_approval_past_half_window`: of those, the ones with less than half their
  approval window (APPROVAL_TIMEOUT_SECONDS) left;
- the process's own (`process_*`, `python_gc_*`, `python_info`).

Each web process counts for itself: scrape every process (or run one per container).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orders import selectors
from orders.permissions import VIEW_METRICS
from orders.tokens import token_authenticate

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

ACTIONS = Counter(
    "orders_actions",
    "Human actions on orders, by action, outcome and surface",
    ["action", "outcome", "via"],
    registry=REGISTRY,
)
WEB_STARTED = Counter("orders_web_started", "Orders recorded by the API's start", registry=REGISTRY)


def counted_action(act: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Count each outcome of `order_act` (called with keyword arguments `action` and `via`)."""

    @functools.wraps(act)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        outcome: Any = await act(*args, **kwargs)
        ACTIONS.labels(action=outcome.action.value, outcome=outcome.verdict.value, via=kwargs.get("via", "")).inc()
        return outcome  # type: ignore[no-any-return]

    return wrapper


class WaitingOrders(Collector):
    """The orders awaiting approval, counted in the database when Prometheus scrapes (1 query)."""

    def collect(self) -> Iterable[Metric]:
        half_window = timedelta(seconds=settings.APPROVAL_TIMEOUT_SECONDS / 2)
        waiting, late = selectors.awaiting_approval_counts(now=timezone.now(), half_window=half_window)
        yield GaugeMetricFamily("orders_awaiting_approval", "Orders awaiting approval", value=waiting)
        yield GaugeMetricFamily(
            "orders_awaiting_approval_past_half_window",
            "Orders awaiting approval with less than half their approval window left",
            value=late,
        )


REGISTRY.register(WaitingOrders())


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type (runs the database query)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _caller_status(request: HttpRequest) -> int:
    """200 for a bearer token or a signed-in user holding `orders.view_metrics`, 401 without
    credentials (or with a bad token), 403 without the permission."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        user = token_authenticate(token.strip(), permissions=[VIEW_METRICS])
        if user is None:
            return 401
        return 200 if VIEW_METRICS in user.api_permissions else 403  # type: ignore[attr-defined]
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 401
    return 200 if user.has_perm(VIEW_METRICS) else 403


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: the web app's metrics for a monitoring system's token (sync: database work only)."""
    try:
        return _answer(request)
    except (OperationalError, InterfaceError) as err:  # the database is down: say so, not 500
        logger.warning("metrics: database unavailable: %s", type(err).__name__)
        return JsonResponse({"detail": "database unavailable; retry the request"}, status=503)


def _answer(request: HttpRequest) -> HttpResponse:
    status = _caller_status(request)
    if status == 401:
        response = JsonResponse(
            {"detail": "a valid API token is required: send Authorization: Bearer <token>"}, status=401
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    if status == 403:
        return JsonResponse({"detail": f"your account lacks the permission {VIEW_METRICS}"}, status=403)
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
