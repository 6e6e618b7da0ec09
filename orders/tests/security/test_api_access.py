"""Who may use the JSON API: bearer tokens only (never the session cookie), compared in constant
time, and every endpoint refuses a caller without its permission."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.permissions import API_CLIENTS, ensure_groups
from orders.tests.factories import make_order, new_order_id, order_body
from orders.tests.security.helpers import (
    ADDRESS,
    PASSWORD,
    PERSONAS,
    Door,
    assert_refused,
    persona_client,
    signed_in,
    start,
    user_with,
    written,
)
from orders.tokens import token_authenticate, token_create


def test_a_token_is_checked_with_a_constant_time_comparison(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The row is found by its digest (the clear token never reaches SQL); the digest comparison
    # itself must not leak through timing, so it goes through hmac.compare_digest.
    token = token_create(user=User.objects.create_user("ct"))
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("orders.tokens.hmac.compare_digest", spy)
    assert token_authenticate(token) is not None
    assert calls and all(len(a) == 64 and a == b for a, b in calls)


API_DOORS: dict[str, Door] = {
    "api start": lambda c, oid: start(c, new_order_id(), order_body()),
    "api approve": lambda c, oid: c.post(f"/orders/{oid}/signals/approve"),
    "api cancel": lambda c, oid: c.post(f"/orders/{oid}/signals/cancel"),
    "api update-address": lambda c, oid: c.post(
        f"/orders/{oid}/signals/update-address", {"address": ADDRESS}, content_type="application/json"
    ),
    "api status (read)": lambda c, oid: c.get(f"/orders/{oid}/status"),
}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("door", list(API_DOORS))
def test_every_api_door_refuses_who_lacks_the_permission_and_writes_nothing(
    db: None, no_temporal: None, door: str, persona: str
) -> None:
    order = make_order()
    token_create(user=User.objects.create_user("bystander"), name="someone else's")
    client = persona_client(persona, "api")
    before = written()
    response = API_DOORS[door](client, order.id)
    if persona == "view only" and door == "api status (read)":
        assert response.status_code == 200  # looking is what view_order is for
    else:
        body = assert_refused(response, 401 if persona == "anonymous" else 403)
        assert ("token" if persona == "anonymous" else "permission") in body["detail"]
    assert written() == before


def test_the_apis_permission_checks_agree_with_has_perm(db: None) -> None:
    ensure_groups()
    direct = user_with("direct", "approve_order")
    grouped = user_with("grouped")
    grouped.groups.add(Group.objects.get(name=API_CLIENTS))
    inactive = user_with("inactive", "approve_order")
    inactive.is_active = False
    inactive.save()
    superuser = User.objects.create_superuser("root", password=PASSWORD)
    nobody = user_with("nobody")
    permissions = ["orders.approve_order", "orders.add_order", "orders.delete_event", "auth.add_user", "nonsense"]
    # The API loads them with the token, in the same query (orders.tokens.token_authenticate).
    held = {}
    for user in (direct, grouped, superuser, nobody):
        token = token_create(user=user)
        with CaptureQueriesContext(connection) as queries:
            authenticated = token_authenticate(token, permissions=permissions)
        assert len(queries) == 2  # the token with its permissions; last_used_at, once a minute
        fresh = User.objects.get(pk=user.pk)
        assert authenticated is not None
        assert authenticated.api_permissions == {p for p in permissions if fresh.has_perm(p)}, user.username
        held[user.username] = authenticated.api_permissions
        with CaptureQueriesContext(connection) as queries:
            token_authenticate(token, permissions=permissions)
        assert len(queries) == 1
    assert "orders.add_order" in held["grouped"] and "orders.add_order" not in held["direct"]
    assert held["root"] == set(permissions)  # a superuser holds every permission, as has_perm says
    assert not any(User.objects.get(pk=inactive.pk).has_perm(p) for p in permissions)
    assert token_authenticate(token_create(user=inactive), permissions=permissions) is None


def test_the_api_ignores_the_session_cookie_so_csrf_cannot_ride_on_it(reviewer: User, no_temporal: None) -> None:
    # The API authenticates by bearer token only: a page elsewhere that makes a signed-in reviewer's
    # browser post to it gets a 401, whatever cookies the browser sends.
    order = make_order()
    superuser = User.objects.create_superuser("root", password=PASSWORD)
    client = signed_in(superuser, enforce_csrf_checks=True)
    before = written()
    assert_refused(client.post(f"/orders/{order.id}/signals/cancel"), 401)
    assert_refused(start(client, new_order_id(), order_body()), 401)
    assert written() == before
