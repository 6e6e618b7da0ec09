"""POST /orders/{id}/start: idempotent, strict about its input, and silent on refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from orders.models import ApiToken, Event, Order, Payment
from orders.tests.factories import new_order_id, order_body


def start(client: Client, order_id: str, body: Any, **extra: Any) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"/orders/{order_id}/start", data, content_type="application/json", **extra)


def nothing_written() -> bool:
    return not Order.objects.exists() and not Payment.objects.exists() and not Event.objects.exists()


def test_same_id_with_same_body_is_200_with_the_same_order_and_one_workflow(
    api: Client, queues: Any, temporal: Any
) -> None:
    order_id = new_order_id()
    body = order_body()
    first = start(api, order_id, body)
    again = start(api, order_id, body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.json()["order_id"] == order_id
    assert Order.objects.filter(id=order_id).count() == 1
    runs = temporal.run(_count_runs(temporal, order_id))
    assert runs == 1


async def _count_runs(temporal: Any, workflow_id: str) -> int:
    return len([w async for w in temporal.client.list_workflows(f"WorkflowId = '{workflow_id}'")])


def test_same_id_with_other_body_is_409(api: Client, queues: Any) -> None:
    order_id = new_order_id()
    start(api, order_id, order_body(payment_id="pay-a"))
    response = start(api, order_id, order_body(payment_id="pay-a", zip_code="99999"))
    assert response.status_code == 409
    assert "different body" in response.json()["detail"]
    assert Order.objects.get(id=order_id).address_json["zip"] == "10001"


def test_payment_id_of_another_order_is_409(api: Client, queues: Any) -> None:
    start(api, new_order_id(), order_body(payment_id="pay-shared"))
    other = new_order_id()
    response = start(api, other, order_body(payment_id="pay-shared"))
    assert response.status_code == 409
    assert "payment_id" in response.json()["detail"]
    assert not Order.objects.filter(id=other).exists()


def test_the_seeds_test_order_file_is_accepted(api: Client, queues: Any) -> None:
    from pathlib import Path

    body = (Path(__file__).resolve().parents[2] / "test_order.json").read_text()
    response = start(api, new_order_id(), body)
    assert response.status_code == 201, response.json()


BAD_BODIES: list[tuple[str, Any, str]] = [
    ("not json", "{nope", "body"),
    ("array", [], "body"),
    (
        "missing payment_id",
        {"items": [{"name": "W", "price": 1, "quantity": 1}], "address": {"street": "s", "city": "c", "zip": "z"}},
        "payment_id",
    ),
    ("no items", order_body(items=[]), "items"),
    ("negative price", order_body(items=[{"name": "W", "price": -1, "quantity": 1}]), "items.0.price"),
    ("three decimals", order_body(items=[{"name": "W", "price": "1.999", "quantity": 1}]), "items.0.price"),
    ("price not a number", order_body(items=[{"name": "W", "price": "lots", "quantity": 1}]), "items.0.price"),
    ("quantity as string", order_body(items=[{"name": "W", "price": 1, "quantity": "2"}]), "items.0.quantity"),
    ("quantity zero", order_body(items=[{"name": "W", "price": 1, "quantity": 0}]), "items.0.quantity"),
    ("empty name", order_body(items=[{"name": "", "price": 1, "quantity": 1}]), "items.0.name"),
    (
        "unknown item field",
        order_body(items=[{"name": "W", "price": 1, "quantity": 1, "discount": 5}]),
        "items.0.discount",
    ),
    ("address without zip", order_body(address={"street": "s", "city": "c"}), "address.zip"),
    ("address not an object", order_body(address="123 Main St"), "address"),
    ("address number field", order_body(address={"street": "s", "city": "c", "zip": 10001}), "address.zip"),
    ("payment_id with spaces", order_body(payment_id="pay 1"), "payment_id"),
    ("total too large", order_body(items=[{"name": "W", "price": "99999999.99", "quantity": 2}]), "items"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES])
def test_bad_body_is_400_naming_the_field_and_writes_nothing(
    api: Client, queues: Any, case: str, body: Any, field: str
) -> None:
    response = start(api, new_order_id(), body)
    assert response.status_code == 400, response.content
    payload = response.json()
    assert field in payload["detail"]
    assert nothing_written()


@pytest.mark.parametrize("order_id", ["has space", "-leading-dash", "x" * 101, "semi;colon", "ünïcode"])
def test_bad_order_id_is_400(api: Client, queues: Any, order_id: str) -> None:
    from urllib.parse import quote

    response = api.post(f"/orders/{quote(order_id)}/start", order_body(), content_type="application/json")
    assert response.status_code == 400
    assert "order_id" in response.json()["detail"]
    assert nothing_written()


def test_body_over_64_kib_is_413(api: Client, queues: Any) -> None:
    body = order_body(address={"street": "s", "city": "c", "zip": "1", "note": "x" * (65 * 1024)})
    response = start(api, new_order_id(), body)
    assert response.status_code == 413
    assert "64 KiB" in response.json()["detail"]
    assert nothing_written()


def test_missing_or_wrong_token_is_401(queues: Any) -> None:
    anonymous = Client()
    assert start(anonymous, new_order_id(), order_body()).status_code == 401
    forged = Client(HTTP_AUTHORIZATION="Bearer olc_not-a-real-token")
    response = start(forged, new_order_id(), order_body())
    assert response.status_code == 401
    assert "token" in response.json()["detail"]
    assert nothing_written()


def test_revoked_token_is_401(api: Client, queues: Any) -> None:
    from django.utils import timezone

    ApiToken.objects.update(revoked_at=timezone.now())
    assert start(api, new_order_id(), order_body()).status_code == 401


def test_user_without_add_permission_is_403(queues: Any) -> None:
    from django.contrib.auth.models import User

    from orders.tokens import token_create

    user = User.objects.create_user("viewer")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user)}")
    response = start(client, new_order_id(), order_body())
    assert response.status_code == 403
    assert "orders.add_order" in response.json()["detail"]
    assert nothing_written()


def test_tokens_are_stored_hashed(api_user: Any) -> None:
    from orders.tokens import token_create

    token = token_create(user=api_user)
    row = ApiToken.objects.get(user=api_user)
    assert token not in (row.key_hash, row.prefix)
    assert len(row.key_hash) == 64
