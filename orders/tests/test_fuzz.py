"""Fuzzing the JSON API from its own OpenAPI document: no 500s, no answer outside the schema.

Schemathesis reads `/openapi.json` from the Django app in-process (WSGI, no server) and, for every
operation, generates requests. Every response is checked against the document: never a server
error, only documented status codes and content types, and bodies that match the documented
response schemas.

Two runs per operation:
- **invalid** requests come from the published document as it is: each breaks it somewhere (a
  wrong type, a missing field, a bad token...) and must be refused with a 4xx, writing nothing.
- **valid** requests come from the same document narrowed to what the server really accepts (the
  README's contract: an order id of letters, digits and `._:-`; an address of string fields
  street, city and zip; a price with two decimals), and their action calls aim at orders that exist.
  Without the narrowing almost every generated start is refused (the published schema allows any
  address object), so the accepted path, where orders are written and workflows start, would go
  unfuzzed.

Real parts: the Temporal dev server and both workers, so valid starts really start workflows and
approve, cancel and address changes really reach them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from orders.models import Event, Order, Payment
from orders.tests.factories import new_order_id, order_body, wait_for_state

# Per operation and run, so 80 requests per operation: enough to walk every field through its edge
# cases while the whole file stays under a minute (a start or an action is a Temporal round trip).
MAX_EXAMPLES = 40

OPERATIONS: list[tuple[str, str]] = [
    ("POST", "/orders/{order_id}/start"),
    ("POST", "/orders/{order_id}/signals/approve"),
    ("POST", "/orders/{order_id}/signals/cancel"),
    ("POST", "/orders/{order_id}/signals/update-address"),
    ("POST", "/orders/{order_id}/signals/claim"),
    ("POST", "/orders/{order_id}/signals/release"),
    ("GET", "/orders/{order_id}/status"),
    ("GET", "/health"),
]
# /health takes no input at all: there is nothing to break for the invalid run.
RUNS = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (path == "/health" and mode is GenerationMode.NEGATIVE)
]

SCHEMA_CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # a start is a Temporal round trip: its duration is not the property under test
    database=None,  # no .hypothesis/ directory in the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)

# What the server accepts, in JSON Schema (lifecycle/validation.py and orders/api.py say the same).
ORDER_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"}
ADDRESS_PART = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"}
ADDRESS = {
    "type": "object",
    "properties": {"street": ADDRESS_PART, "city": ADDRESS_PART, "zip": ADDRESS_PART},
    "required": ["street", "city", "zip"],
    "additionalProperties": {"type": "string", "maxLength": 200},
    "propertyNames": {"maxLength": 50},
    "maxProperties": 12,
}
PRICE = {"type": "string", "pattern": r"^[1-9][0-9]{0,5}\.[0-9]{2}$"}
# Smaller than the limits so that most totals stay under the 99,999,999.99 cap (above it: a 400).
QUANTITY = {"type": "integer", "minimum": 1, "maximum": 100}


def narrowed(document: dict[str, Any], existing_order_ids: list[str]) -> dict[str, Any]:
    """The published document, narrowed to inputs the server accepts (see the module docstring)."""
    doc = copy.deepcopy(document)
    schemas = doc["components"]["schemas"]
    schemas["ItemIn"]["properties"]["price"] = PRICE
    schemas["ItemIn"]["properties"]["quantity"] = QUANTITY
    schemas["StartIn"]["properties"]["items"]["maxItems"] = 10
    schemas["StartIn"]["properties"]["address"] = ADDRESS
    schemas["AddressIn"]["properties"]["address"] = ADDRESS
    for path, item in doc["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "order_id":
                    # A start may name any id; an action or a status read aims at an order that exists.
                    parameter["schema"] = (
                        ORDER_ID if path.endswith("/start") else {"type": "string", "enum": existing_order_ids}
                    )
    return doc


@pytest.fixture
def wsgi_app() -> WSGIHandler:
    return WSGIHandler()


@pytest.fixture
def published_schema(wsgi_app: WSGIHandler, transactional_db: None) -> Any:
    # Loading the document is a request like any other: it passes through the middleware, which
    # may touch the database, hence the database fixture.
    return schemathesis.openapi.from_wsgi("/openapi.json", wsgi_app)


@pytest.fixture
def bearer(api: Client) -> dict[str, str]:
    """The `api` fixture's token (a user in the API clients group), as a header."""
    return {"Authorization": api.defaults["HTTP_AUTHORIZATION"]}


@pytest.fixture
def existing_orders(api: Client, workers: Any) -> list[str]:
    """Orders for the actions to aim at: two awaiting approval, one already cancelled."""
    ids = [new_order_id() for _ in range(3)]
    for order_id in ids:
        assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    for order_id in ids:
        wait_for_state(order_id, "AWAITING_APPROVAL")
    api.post(f"/orders/{ids[2]}/signals/cancel")
    wait_for_state(ids[2], "CANCELLED")
    return ids


def test_the_fuzzer_walks_every_operation_of_the_api(published_schema: Any) -> None:
    # A new endpoint fails this until OPERATIONS (and so the fuzz runs) cover it.
    listed = {(op.method.upper(), op.path) for op in (result.ok() for result in published_schema.get_all_operations())}
    assert listed == set(OPERATIONS)


def new_rows(existing_order_ids: list[str]) -> list[str]:
    """Orders, payments and events written since the fixtures ran (their own orders excepted)."""
    return [
        *(f"order {pk}" for pk in Order.objects.exclude(id__in=existing_order_ids).values_list("id", flat=True)),
        *(
            f"payment {pk}"
            for pk in Payment.objects.exclude(order_id__in=existing_order_ids).values_list("pk", flat=True)
        ),
        *(f"event {pk}" for pk in Event.objects.exclude(order_id__in=existing_order_ids).values_list("pk", flat=True)),
    ]


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    RUNS,
    ids=[f"{method} {path} {'valid' if mode is GenerationMode.POSITIVE else 'invalid'}" for method, path, mode in RUNS],
)
def test_fuzzed_requests_get_no_500_and_only_documented_answers(
    published_schema: Any,
    wsgi_app: WSGIHandler,
    bearer: dict[str, str],
    existing_orders: list[str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    invalid = mode is GenerationMode.NEGATIVE
    if invalid:
        schema = published_schema
        # A request that breaks the document must be refused: a 2xx would mean validation let it through.
        checks = [*SCHEMA_CHECKS, negative_data_rejection]
    else:
        schema = schemathesis.openapi.from_dict(narrowed(published_schema.raw_schema, existing_orders))
        checks = SCHEMA_CHECKS
    operation = schema[path][method]
    transport = {"app": wsgi_app, "headers": bearer}

    @FUZZ_SETTINGS
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call(**transport)
        case.validate_response(response, checks=checks, headers=bearer, transport_kwargs=transport)
        if invalid:
            # Refused means refused: not a row anywhere (ErrorOut, checked above, carries the `detail`).
            assert new_rows(existing_orders) == [], response.text[:300]

    fuzz()
