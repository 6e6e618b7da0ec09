"""Retrying an action: the same Idempotency-Key gets the first outcome and acts once."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from orders import selectors
from orders.models import Event, Order
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until

NEW_ADDRESS = {"street": "456 New Ave", "city": "LA", "zip": "90001"}


def act(client: Client, order_id: str, action: str, key: str | None = None, body: Any = None) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        f"/orders/{order_id}/signals/{action}", body or {}, content_type="application/json", headers=headers
    )


def started(api: Client) -> str:
    order_id = new_order_id()
    assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    wait_for_state(order_id, "AWAITING_APPROVAL")
    return order_id


def events(order_id: str, event_type: str) -> int:
    return Event.objects.filter(order_id=order_id, type=event_type).count()


def test_an_address_change_retried_with_its_key_is_applied_once(api: Client, workers: Any) -> None:
    order_id = started(api)
    body = {"address": NEW_ADDRESS}
    first = act(api, order_id, "update-address", "addr-1", body)
    again = act(api, order_id, "update-address", "addr-1", body)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["detail"] == first.json()["detail"]
    assert events(order_id, "ADDRESS_UPDATED") == 1
    assert Order.objects.get(id=order_id).address_json == NEW_ADDRESS


def test_a_key_reused_for_another_address_is_a_new_change(api: Client, workers: Any) -> None:
    order_id = started(api)
    act(api, order_id, "update-address", "k", {"address": NEW_ADDRESS})
    other = {**NEW_ADDRESS, "street": "789 Other Rd"}
    assert act(api, order_id, "update-address", "k", {"address": other}).status_code == 202
    assert events(order_id, "ADDRESS_UPDATED") == 2
    assert Order.objects.get(id=order_id).address_json == other


def test_an_approval_retried_with_its_key_answers_202_again(api: Client, workers: Any) -> None:
    order_id = started(api)
    assert act(api, order_id, "approve", "approve-1").status_code == 202
    assert act(api, order_id, "approve", "approve-1").status_code == 202
    # Without the key a second approval is a different request, refused as such.
    second = act(api, order_id, "approve")
    assert second.status_code == 409
    assert "already approved" in second.json()["detail"]
    wait_for_state(order_id, "COMPLETED")
    assert events(order_id, "ORDER_APPROVED") == 1
    assert events(order_id, "PAYMENT_CHARGED") == 1


def test_a_keyed_retry_after_the_order_ended_still_gets_its_first_answer(api: Client, workers: Any) -> None:
    order_id = started(api)
    first = act(api, order_id, "cancel", "cancel-1")
    assert first.status_code == 202
    wait_for_state(order_id, "CANCELLED")
    wait_until(lambda: api.get(f"/orders/{order_id}/status").json()["state"] == "CANCELLED", what="status")
    # Temporal keeps an Update's outcome with the closed workflow: the retry learns it was applied.
    again = act(api, order_id, "cancel", "cancel-1")
    assert (again.status_code, again.json()) == (202, first.json())
    # A new keyed request is refused like any action on an ended order.
    other = act(api, order_id, "approve", "approve-1")
    assert other.status_code == 409
    assert (other.json()["state"], "ended" in other.json()["detail"]) == ("CANCELLED", True)
    assert events(order_id, "ORDER_CANCELLED") == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 201, "caf\u00e9"])
def test_a_malformed_key_is_400_naming_the_header_and_changes_nothing(api: Client, workers: Any, key: str) -> None:
    order_id = started(api)
    response = act(api, order_id, "approve", key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert events(order_id, "ORDER_APPROVED") == 0


def test_a_lost_database_connection_is_503_not_500(api: Client, db: None, monkeypatch: Any) -> None:
    def lost(**_: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(selectors, "order_status", lost)
    response = api.get("/orders/some-order/status")
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]
