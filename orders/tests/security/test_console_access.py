"""Who may act in the review console: every state-changing form needs its permission and its CSRF
token, and refuses a bad address with a field error."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from orders.tests.factories import make_order
from orders.tests.security.helpers import ADDRESS, PERSONAS, Door, persona_client, signed_in, written


def test_the_console_address_form_refuses_a_nul_byte_with_a_field_error(reviewer: User, no_temporal: None) -> None:
    order = make_order()
    before = written()
    response = signed_in(reviewer).post(
        f"/review/orders/{order.id}/address/", {"street": "1\x00 Main", "city": "LA", "zip": "90001"}
    )
    assert response.status_code == 400
    assert b"field-error" in response.content and b"Null characters are not allowed." in response.content
    assert written() == before


CONSOLE_DOORS: dict[str, Door] = {
    "console bulk approve": lambda c, oid: c.post(
        "/review/bulk/", {"action": "approve", "order_ids": [oid], "nonce": "n1"}
    ),
    "console bulk cancel": lambda c, oid: c.post(
        "/review/bulk/", {"action": "cancel", "order_ids": [oid], "nonce": "n2"}
    ),
    "console approve": lambda c, oid: c.post(f"/review/orders/{oid}/approve/", {"nonce": "n3"}),
    "console cancel": lambda c, oid: c.post(f"/review/orders/{oid}/cancel/", {"nonce": "n4"}),
    "console address": lambda c, oid: c.post(f"/review/orders/{oid}/address/", {**ADDRESS, "nonce": "n5"}),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("door", list(CONSOLE_DOORS))
def test_every_console_door_refuses_who_lacks_the_permission_and_writes_nothing(
    db: None, no_temporal: None, door: str, persona: str
) -> None:
    order = make_order()
    client = persona_client(persona, "console")
    before = written()
    response = CONSOLE_DOORS[door](client, order.id)
    if persona == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    else:
        assert response.status_code == 403
    assert written() == before


@pytest.mark.parametrize("door", list(CONSOLE_DOORS))
def test_every_console_form_needs_its_csrf_token(reviewer: User, no_temporal: None, door: str) -> None:
    order = make_order()
    before = written()
    assert CONSOLE_DOORS[door](signed_in(reviewer, enforce_csrf_checks=True), order.id).status_code == 403
    assert written() == before
