"""What the security tests share: the requests they make, what a request could write, how a
refusal looks, and users with just the permissions a test names."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from orders.models import ApiToken, ConsoleSubmission, Event, Order, Payment
from orders.tokens import token_create

CLOSED_PORT = "127.0.0.1:9"
PASSWORD = "pw-for-security-tests-123"
ADDRESS = {"street": "456 New Ave", "city": "LA", "zip": "90001"}


def start(client: Client, order_id: str, body: Any, **extra: Any) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(f"/orders/{quote(order_id, safe='')}/start", data, content_type="application/json", **extra)


def written() -> dict[str, Any]:
    """Everything a request could write, to compare before and after."""
    return {
        "orders": list(Order.objects.order_by("id").values_list("id", "state", "address_json", "updated_at")),
        "payments": list(Payment.objects.order_by("pk").values_list("pk", "status")),
        "events": list(Event.objects.order_by("pk").values_list("pk", flat=True)),
        "tokens": list(ApiToken.objects.order_by("pk").values_list("pk", "revoked_at")),
        "console_submissions": ConsoleSubmission.objects.count(),
    }


def assert_refused(response: Any, *statuses: int) -> dict[str, Any]:
    """A refusal is a 4xx (one of `statuses` when given) with a JSON `detail`."""
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    if statuses:
        assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The formatted lines plus every record's attributes: a JSON formatter (LOG_FORMAT=json)
    would print extras that the plain format leaves out."""
    return caplog.text + "\n".join(repr(vars(record)) for record in caplog.records)


def all_loggers_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in list(logging.root.manager.loggerDict):
        caplog.set_level(logging.DEBUG, logger=name)


def user_with(username: str, *codenames: str, staff: bool = False) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="orders", codename__in=codenames))
    return user


def signed_in(user: User, **client_kwargs: Any) -> Client:
    client = Client(**client_kwargs)
    client.force_login(user)
    return client


def with_token(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user)}")


# Every state-changing door (a request on one surface: API, console, admin), and who knocks: nobody
# signed in, a signed-in user (or token) without any permission, and one who may only look
# (orders.view_order). Each must be refused and write nothing.
Door = Callable[[Client, str], Any]
PERSONAS = ["anonymous", "no permission", "view only"]


def persona_client(persona: str, surface: str) -> Client:
    if persona == "anonymous":
        return Client()
    codenames = ("view_order",) if persona == "view only" else ()
    # Admin admits staff only; staff status is what lets these users reach the permission checks.
    user = user_with(f"{persona.replace(' ', '-')}-{surface}", *codenames, staff=surface == "admin")
    return with_token(user) if surface == "api" else signed_in(user)


def sign_in(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)
