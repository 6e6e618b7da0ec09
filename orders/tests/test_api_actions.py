"""Approve, cancel, update-address and status: every error the contract lists (health: test_health.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from orders.models import ApiToken, Event, Order
from orders.tests.factories import new_order_id, order_body, wait_for_state
from orders.tokens import token_authenticate, token_create

ACTIONS = ["approve", "cancel", "update-address"]
ADDRESS = {"address": {"street": "456 New Ave", "city": "LA", "zip": "90001"}}


def act(client: Client, order_id: str, action: str, body: Any = None) -> Any:
    return client.post(f"/orders/{order_id}/signals/{action}", body or ADDRESS, content_type="application/json")


@pytest.mark.parametrize("action", ACTIONS)
def test_action_on_unknown_order_is_404(api: Client, queues: Any, action: str) -> None:
    response = act(api, "order-does-not-exist", action)
    assert response.status_code == 404
    assert "order-does-not-exist" in response.json()["detail"]


@pytest.mark.parametrize("action", ACTIONS)
def test_action_on_ended_order_is_409_with_its_state(api: Client, workers: Any, action: str) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    act(api, order_id, "cancel")
    wait_for_state(order_id, "CANCELLED")
    events = Event.objects.count()
    response = act(api, order_id, action)
    assert response.status_code == 409
    assert response.json()["state"] == "CANCELLED"
    assert "ended" in response.json()["detail"]
    assert Event.objects.count() == events


@pytest.mark.parametrize(
    ("action", "permission"),
    [("approve", "approve_order"), ("cancel", "cancel_order"), ("update-address", "change_order_address")],
)
def test_action_without_its_permission_is_403_and_changes_nothing(
    api: Client, workers: Any, action: str, permission: str
) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    wait_for_state(order_id, "AWAITING_APPROVAL")
    viewer = User.objects.create_user(f"no-{permission}")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=viewer)}")
    response = act(client, order_id, action)
    assert response.status_code == 403
    assert permission in response.json()["detail"]
    assert Order.objects.get(id=order_id).state == "AWAITING_APPROVAL"
    assert not Event.objects.filter(
        order_id=order_id, type__in=["ORDER_APPROVED", "ORDER_CANCELLED", "ADDRESS_UPDATED"]
    ).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": {"street": "s", "city": "c"}}, "address.zip"),
        ({"address": "elsewhere"}, "address"),
        ({"street": "s", "city": "c", "zip": "1"}, "address"),
        ({"address": {"street": "s", "city": "c", "zip": "1", "x": "y" * 300}}, "address.x"),
    ],
)
def test_bad_address_is_400_and_changes_nothing(api: Client, workers: Any, body: Any, field: str) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    wait_for_state(order_id, "AWAITING_APPROVAL")
    response = act(api, order_id, "update-address", body)
    assert response.status_code == 400
    assert field in response.json()["detail"]
    assert Order.objects.get(id=order_id).address_json["street"] == "123 Main St"


def test_status_of_unknown_order_is_404(api: Client, queues: Any) -> None:
    response = api.get("/orders/nope/status")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_status_has_the_contracts_fields(api: Client, workers: Any) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    wait_for_state(order_id, "AWAITING_APPROVAL")
    status = api.get(f"/orders/{order_id}/status").json()
    for field in ("order_id", "state", "items", "address", "total", "payment", "approval_deadline"):
        assert field in status
    assert status["approval_deadline"] is not None
    assert status["allowed_actions"] == ["approve", "cancel", "update_address", "claim"]


def test_status_needs_a_token(queues: Any) -> None:
    assert Client().get("/orders/x/status").status_code == 401


def test_action_is_503_when_temporal_is_down(api: Client, queues: Any, settings: Any) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    settings.TEMPORAL_ADDRESS = "127.0.0.1:9"
    response = act(api, order_id, "approve")
    assert response.status_code == 503
    assert "temporal" in response.json()["detail"].lower()


def test_openapi_schema_and_docs_are_served(db: None) -> None:
    schema = Client().get("/openapi.json").json()
    assert "/orders/{order_id}/start" in schema["paths"]
    assert "/orders/{order_id}/signals/update-address" in schema["paths"]
    docs = Client().get("/docs")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_unknown_path_is_a_json_404(db: None) -> None:
    response = Client().get("/orders/x/nothing-here")
    assert response.status_code == 404
    assert response.json()["detail"]


def test_create_api_token_prints_a_working_token_as_its_last_line(db: None, capsys: Any) -> None:
    User.objects.create_user("ops")
    call_command("create_api_token", "ops", "--name", "ci")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token_authenticate(token).get_username() == "ops"  # type: ignore[union-attr]
    assert ApiToken.objects.get().name == "ci"


def test_create_api_token_for_unknown_user_is_a_one_line_error(db: None) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("create_api_token", "ghost")


def test_create_api_token_can_create_an_api_client(db: None, capsys: Any) -> None:
    call_command("create_api_token", "shop", "--create-user")
    user = User.objects.get(username="shop")
    assert user.has_perm("orders.add_order") and user.has_perm("orders.approve_order")
    assert not user.has_usable_password()


def test_a_wrong_method_is_a_json_405(db: None) -> None:
    response = Client().get("/orders/x/start")
    assert response.status_code == 405
    assert response.json()["detail"] == "Method Not Allowed"
    assert response["Allow"] == "POST"
