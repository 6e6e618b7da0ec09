"""The JSON API, on the seed's paths. Thin: it checks who asks, then calls services and Temporal.

Every error answers JSON with a human-readable `detail`; a refused request writes nothing.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from ninja import Header, NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer
from pydantic import ConfigDict, Field, StrictInt, field_validator

from lifecycle.client import TemporalUnavailable
from lifecycle.states import Action
from lifecycle.validation import REASON_MAX, address_problems, order_id_problem, reason_problem, text_problem
from orders import selectors, services
from orders.actions import Verdict, idempotency_key_problem, order_act
from orders.db import run_then_release
from orders.health import health_report
from orders.permissions import ACTION_PERMISSIONS, ADD_ORDER, API_PERMISSIONS, REASSIGN_ORDER, VIEW_ORDER
from orders.tokens import token_authenticate
from orders.workflow_start import order_workflow_start

logger = logging.getLogger(__name__)

MAX_TOTAL = Decimal("99999999.99")


class TokenAuth(HttpBearer):
    """`authenticate` is a coroutine: the token and the caller's API permissions come in one query,
    in one thread hop; `_require` then checks a permission without either.

    An endpoint that goes on to wait for Temporal says so (`waits_for_temporal`): the connection the
    lookup used then goes back to the pool at once instead of when the request ends (orders.db).
    """

    is_async = True

    def __init__(self, *, waits_for_temporal: bool = False) -> None:
        super().__init__()
        self.waits_for_temporal = waits_for_temporal

    async def authenticate(self, request: HttpRequest, token: str) -> Any:  # type: ignore[override]
        if self.waits_for_temporal:
            user = await run_then_release(token_authenticate, token, permissions=API_PERMISSIONS)
        else:
            user = await sync_to_async(token_authenticate)(token, permissions=API_PERMISSIONS)
        if user is not None:
            request.user = user
        return user


# For the actions: after the token, they only wait for the order's workflow.
AUTH_THEN_TEMPORAL = TokenAuth(waits_for_temporal=True)


api = NinjaAPI(
    title="Order Lifecycle API",
    version="1.0",
    description="Orders run as Temporal workflows with a human approval step. Send `Authorization: Bearer <token>`.",
    openapi_url="/openapi.json",
    docs_url="/docs",
    auth=TokenAuth(),
    urls_namespace="api",
)


# --- schemas ---------------------------------------------------------------------------------
class ItemIn(Schema):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    price: Decimal = Field(gt=0, max_digits=10, decimal_places=2, allow_inf_nan=False)
    quantity: StrictInt = Field(ge=1, le=10_000)

    @field_validator("name")
    @classmethod
    def _name_is_text(cls, value: str) -> str:
        problem = text_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class StartIn(Schema):
    model_config = ConfigDict(extra="forbid")
    payment_id: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    items: list[ItemIn] = Field(min_length=1, max_length=100)
    address: dict[str, Any]


class AddressIn(Schema):
    model_config = ConfigDict(extra="forbid")
    address: dict[str, Any]


class CancelIn(Schema):
    """The optional body of a cancellation (documentation: the body is read by `_cancel_reason`)."""

    reason: str = Field("", max_length=REASON_MAX, description="Why; shown on the order's timeline")


class ApprovalOut(Schema):
    actor: str
    at: str


class StartOut(Schema):
    order_id: str
    workflow_id: str
    run_id: str
    state: str


class ActionOut(Schema):
    order_id: str
    action: str
    accepted: bool
    state: str
    detail: str


class ErrorOut(Schema):
    detail: str
    errors: dict[str, str] | None = None
    state: str | None = None


class PaymentOut(Schema):
    payment_id: str
    status: str | None
    amount: str | None


class EventOut(Schema):
    id: str
    type: str
    timestamp: str
    payload: dict[str, Any]


class StatusOut(Schema):
    order_id: str
    workflow_id: str
    run_id: str | None
    state: str
    items: list[dict[str, Any]]
    address: dict[str, Any]
    total: str
    payment: PaymentOut
    approval_deadline: str | None
    allowed_actions: list[str]
    claimed_by: str | None = Field(description="Who holds the order's review claim (username), if anyone")
    approvals: list[ApprovalOut] = Field(description="The approvals given so far: who and when")
    approvals_required: int = Field(description="1, or 2 for a four-eyes order (FOUR_EYES_MIN_TOTAL)")
    escalated: bool = Field(description="Whether the order waited ESCALATE_AFTER_SECONDS unapproved")
    created_at: str
    updated_at: str
    events: list[EventOut]


class HealthOut(Schema):
    status: str = Field(description="`ok`, or `unavailable` when the database or Temporal is")
    database: str = Field(description="`ok` or `unavailable`")
    temporal: str = Field(description="`ok` or `unavailable`")
    detail: str | None = Field(None, description="What is down; for staff, also why")
    workers: dict[str, str] | None = Field(
        None, description="Staff only: per task queue, `ok (N workers)`, `no worker` or `unknown: why`"
    )


# --- errors ----------------------------------------------------------------------------------
class ApiError(Exception):
    def __init__(
        self, status: int, detail: str, *, errors: dict[str, str] | None = None, state: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.body: dict[str, Any] = {"detail": detail}
        if errors:
            self.body["errors"] = errors
        if state:
            self.body["state"] = state


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "payload", "path", "query")]
    return ".".join(parts) or "body"


def bad_request(errors: dict[str, str]) -> ApiError:
    return ApiError(400, "; ".join(f"{name}: {msg}" for name, msg in errors.items()), errors=errors)


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return api.create_response(request, exc.body, status=exc.status)


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors: dict[str, str] = {}
    for error in exc.errors:
        name = _field_name(error.get("loc", ()))
        message = str(error.get("msg", "is invalid"))
        if error.get("type") == "json_invalid" or (name == "body" and "JSON" in message):
            name, message = "body", "is not valid JSON"
        errors.setdefault(name, message)
    return _api_error(request, bad_request(errors))


@api.exception_handler(AuthenticationError)
def _unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(
        request, {"detail": "a valid API token is required: send Authorization: Bearer <token>"}, status=401
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)


@api.exception_handler(TemporalUnavailable)
def _temporal_unavailable(request: HttpRequest, exc: TemporalUnavailable) -> HttpResponse:
    logger.warning("Temporal unavailable for %s: %s", request.path, exc)
    return api.create_response(request, {"detail": f"temporal: {exc}"}, status=503)


@api.exception_handler(OperationalError)
@api.exception_handler(InterfaceError)
def _database_unavailable(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    # A lost or refused connection: nothing was committed, so the client may simply retry.
    logger.warning("Database unavailable for %s %s: %s", request.method, request.path, type(exc).__name__)
    return api.create_response(request, {"detail": "database unavailable; retry the request"}, status=503)


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("Unexpected error on %s %s", request.method, request.path)
    return api.create_response(request, {"detail": "internal error; it has been logged"}, status=500)


# --- helpers ---------------------------------------------------------------------------------
def _require(request: HttpRequest, permission: str) -> None:
    """Whether the token's user holds `permission` (loaded with the token: TokenAuth)."""
    if permission not in getattr(request.user, "api_permissions", frozenset()):
        raise ApiError(403, f"your account lacks the permission {permission}")


def _check_order_id(order_id: str) -> None:
    problem = order_id_problem(order_id)
    if problem:
        raise bad_request({"order_id": problem})


# --- endpoints -------------------------------------------------------------------------------
@api.post(
    "/orders/{order_id}/start",
    response={
        200: StartOut,
        201: StartOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        409: ErrorOut,
        413: ErrorOut,
        503: ErrorOut,
    },
    summary="Start an order's workflow (idempotent)",
)
async def start_order(request: HttpRequest, order_id: str, payload: StartIn) -> Status[Any]:
    _check_order_id(order_id)
    _require(request, ADD_ORDER)
    problems = address_problems(payload.address)
    if problems:
        raise bad_request(problems)
    items = [item.model_dump() for item in payload.items]
    total = sum((item.price * item.quantity for item in payload.items), Decimal("0"))
    if total > MAX_TOTAL:
        raise bad_request({"items": f"the order total {total} exceeds {MAX_TOTAL}"})
    try:
        # Then Temporal starts the workflow: the connection goes back before that wait.
        outcome = await run_then_release(
            services.order_start,
            order_id=order_id,
            payment_id=payload.payment_id,
            items=items,
            address=payload.address,
            started_by_id=request.user.pk,
        )
    except services.OrderConflict as err:
        raise ApiError(409, str(err)) from err
    order = outcome.order
    run_id = order.workflow_run_id
    if not run_id:
        run_id = await order_workflow_start(order, started_by=request.user.get_username())
    state = await selectors.order_state_async(order_id=order.id)
    return Status(
        201 if outcome.created else 200,
        {"order_id": order.id, "workflow_id": order.id, "run_id": run_id, "state": state},
    )


IdempotencyKey = Header(
    None,
    alias="Idempotency-Key",
    description=(
        "Your name for this one action (e.g. a UUID). Retrying the same request with the same key"
        " after a 503 or a lost answer gets the first attempt's outcome instead of acting twice."
    ),
)


async def _act(
    request: HttpRequest, order_id: str, action: Action, idempotency_key: str | None, **kwargs: Any
) -> Status[Any]:
    if idempotency_key is not None and idempotency_key_problem(idempotency_key):
        raise bad_request({"Idempotency-Key": idempotency_key_problem(idempotency_key)})
    _require(request, ACTION_PERMISSIONS[action])
    outcome = await order_act(
        order_id=order_id,
        action=action,
        actor=request.user.get_username(),
        via="api",
        idempotency_key=idempotency_key or "",
        **kwargs,
    )
    if outcome.verdict is Verdict.NOT_FOUND:
        raise ApiError(404, f"order_id: {outcome.detail}")
    if outcome.verdict is Verdict.REFUSED:
        raise ApiError(409, outcome.detail, state=outcome.state)
    if outcome.verdict is Verdict.UNAVAILABLE:
        raise ApiError(503, outcome.detail)
    body = {
        "order_id": order_id,
        "action": action.value,
        "accepted": True,
        "state": outcome.state,
        "detail": outcome.detail,
    }
    return Status(202, body)


ACTION_RESPONSES: dict[int, Any] = {
    202: ActionOut,
    400: ErrorOut,  # a malformed Idempotency-Key
    401: ErrorOut,
    403: ErrorOut,
    404: ErrorOut,
    409: ErrorOut,
    503: ErrorOut,
}


@api.post(
    "/orders/{order_id}/signals/approve",
    auth=AUTH_THEN_TEMPORAL,
    response=ACTION_RESPONSES,
    summary="Approve an order awaiting review",
)
async def approve_order(
    request: HttpRequest, order_id: str, idempotency_key: str | None = IdempotencyKey
) -> Status[Any]:
    return await _act(request, order_id, Action.APPROVE, idempotency_key)


def _cancel_reason(request: HttpRequest) -> str:
    """The optional `{"reason": "..."}` of a cancellation; an empty body (or an empty form, as
    some clients send with a bare POST) means no reason. Read as JSON whatever the content type
    says, so `curl -d '{"reason": "..."}'` works too."""
    if not request.body.strip() or request.content_type == "multipart/form-data":
        return ""
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as err:
        raise bad_request({"body": "is not valid JSON"}) from err
    if not isinstance(body, dict):
        raise bad_request({"body": 'must be a JSON object such as {"reason": "..."}'})
    # Other fields are ignored, as every body was before cancellations had a reason.
    reason = body.get("reason", "")
    if reason is None:
        return ""
    problem = reason_problem(reason)
    if problem:
        raise bad_request({"reason": problem})
    return reason.strip()


@api.post(
    "/orders/{order_id}/signals/cancel",
    auth=AUTH_THEN_TEMPORAL,
    response={**ACTION_RESPONSES, 413: ErrorOut},
    summary="Cancel an order (refunds a charged payment)",
    description='An optional JSON body `{"reason": "..."}` (at most 500 characters) lands in ORDER_CANCELLED.',
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": CancelIn.model_json_schema()}},
        }
    },
)
async def cancel_order(
    request: HttpRequest, order_id: str, idempotency_key: str | None = IdempotencyKey
) -> Status[Any]:
    reason = _cancel_reason(request)
    return await _act(request, order_id, Action.CANCEL, idempotency_key, reason=reason)


@api.post(
    "/orders/{order_id}/signals/claim",
    auth=AUTH_THEN_TEMPORAL,
    response=ACTION_RESPONSES,
    summary="Claim an order's review: approvals by anyone else are refused until it is released",
    description=(
        "409 names whoever holds the claim. A user with `orders.reassign_order` (Supervisors) takes"
        " another reviewer's claim over. A claim lapses after CLAIM_TTL_SECONDS without a decision."
    ),
)
async def claim_order(request: HttpRequest, order_id: str, idempotency_key: str | None = IdempotencyKey) -> Status[Any]:
    return await _act(request, order_id, Action.CLAIM, idempotency_key, may_reassign=_may_reassign(request))


@api.post(
    "/orders/{order_id}/signals/release",
    auth=AUTH_THEN_TEMPORAL,
    response=ACTION_RESPONSES,
    summary="Release a claim on an order's review (yours, or anyone's for a supervisor)",
)
async def release_order(
    request: HttpRequest, order_id: str, idempotency_key: str | None = IdempotencyKey
) -> Status[Any]:
    return await _act(request, order_id, Action.RELEASE, idempotency_key, may_reassign=_may_reassign(request))


def _may_reassign(request: HttpRequest) -> bool:
    return REASSIGN_ORDER in getattr(request.user, "api_permissions", frozenset())


@api.post(
    "/orders/{order_id}/signals/update-address",
    auth=AUTH_THEN_TEMPORAL,
    response={**ACTION_RESPONSES, 413: ErrorOut},
    summary="Change the shipping address before dispatch",
)
async def update_address(
    request: HttpRequest, order_id: str, payload: AddressIn, idempotency_key: str | None = IdempotencyKey
) -> Status[Any]:
    problems = address_problems(payload.address)
    if problems:
        raise bad_request(problems)
    return await _act(request, order_id, Action.UPDATE_ADDRESS, idempotency_key, address=payload.address)


@api.get(
    "/orders/{order_id}/status",
    response={200: StatusOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
    summary="An order's state, payment and timeline",
)
async def order_status(request: HttpRequest, order_id: str) -> Status[Any]:
    _require(request, VIEW_ORDER)
    status = await sync_to_async(selectors.order_status)(order_id=order_id)
    if status is None:
        raise ApiError(404, f"order_id: no order {order_id!r}")
    return Status(200, status)


@api.get(
    "/health",
    auth=None,
    response={200: HealthOut, 503: HealthOut},
    exclude_none=True,
    summary="Whether the database and Temporal answer; for staff, why not and the workers per task queue",
    description=(
        "Anyone gets `status`, `database` and `temporal`, each `ok` or `unavailable`, and a `detail` naming"
        " what is down. A bearer token whose user holds `orders.view_order`, or a signed-in staff session,"
        " also gets the reasons in `detail` and `workers`: per task queue, how many workers serve it."
    ),
)
async def health(request: HttpRequest) -> Status[Any]:
    status, body = await health_report(request)
    return Status(status, body)
