"""`GET /health`: whether the parts the web app needs answer, in words anyone may read.

Anyone (a load balancer, an uptime monitor) gets `status`, `database` and `temporal`, each "ok" or
"unavailable", and 503 naming the part that is down: no addresses, error text, task-queue names or
counts. Staff also get why a part is down and how many workers serve each task queue: a signed-in
staff member (session), or a bearer token whose user holds `orders.view_order`.

The checks are separate functions so that readiness and liveness endpoints can be built from them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from lifecycle.client import temporal_health, workers_health
from orders.db import run_then_release
from orders.permissions import API_PERMISSIONS, VIEW_ORDER
from orders.tokens import token_authenticate

logger = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Check:
    """One part's answer: `reason` says why it is down (for staff and the log, never for anyone)."""

    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason

    @property
    def word(self) -> str:
        return OK if self.ok else UNAVAILABLE


def database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as err:
        text = str(err).strip()
        return Check(f"unreachable: {text.splitlines()[0] if text else type(err).__name__}")
    return Check()


async def temporal_check() -> Check:
    answer = await temporal_health()
    return Check() if answer == OK else Check(answer)


def may_see_details(request: HttpRequest) -> bool:
    """A bearer token whose user holds `orders.view_order`, or a signed-in staff member's session.
    Anything else, a bad token included, is anyone: /health never refuses."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        user = token_authenticate(token.strip(), permissions=API_PERMISSIONS)
        return user is not None and VIEW_ORDER in user.api_permissions  # type: ignore[attr-defined]
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def _database_and_viewer(request: HttpRequest) -> tuple[Check, bool]:
    database = database_check()
    # Without the database nobody can be recognised: everyone gets the words (the log has why).
    if not database.ok:
        return database, False
    try:
        return database, may_see_details(request)
    except DatabaseError as err:  # lost between the check and the look-up: /health still answers
        logger.warning("health: could not look up the caller: %s", type(err).__name__)
        return database, False


async def health_report(request: HttpRequest) -> tuple[int, dict[str, Any]]:
    """The status code and body of /health. The database work is done and its connection given
    back before Temporal is asked, so an unanswering Temporal holds no connection."""
    database, detailed = await run_then_release(_database_and_viewer, request)
    temporal = await temporal_check()
    parts = {"database": database, "temporal": temporal}
    down = [name for name, check in parts.items() if not check.ok]
    body: dict[str, Any] = {"status": UNAVAILABLE if down else OK, **{name: c.word for name, c in parts.items()}}
    for name in down:
        logger.warning("health: %s %s", name, parts[name].reason)
    if down:
        body["detail"] = (
            "; ".join(f"{name}: {parts[name].reason}" for name in down)
            if detailed
            else f"{' and '.join(down)} {UNAVAILABLE}"
        )
    # Workers are reported but do not fail the check: a web process is healthy while workers restart.
    if detailed and temporal.ok:
        body["workers"] = await workers_health([settings.ORDER_TASK_QUEUE, settings.SHIPPING_TASK_QUEUE])
    return (503 if down else 200), body


# --- probes: /health/live and /health/ready -------------------------------------------------
LIVE = "live"
READY = "ready"


async def live(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. No database, no Temporal, no look-up of the caller: a
    probe that restarts the process must not fail because something else is down."""
    return JsonResponse({"status": LIVE})


async def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and Temporal answer (200), or not (503); the body is /health's,
    with `ready` for `ok`: words for anyone, reasons and workers per task queue for staff."""
    status, body = await health_report(request)
    if status == 200:
        body["status"] = READY
    return JsonResponse(body, status=status)
