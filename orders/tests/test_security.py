"""Security: hostile input, who may do what, CSRF, login throttling, secrets kept out of logs,
production settings and response headers. docs/security.md maps each threat to its test here.

Most tests need no Temporal: they are about requests that must be refused before anything
happens, and they point TEMPORAL_ADDRESS at a closed port so that a check that wrongly let a
request through fails fast (503) and is caught by the "nothing written" assertions.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.http import HttpRequest
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders.models import ApiToken, ConsoleSubmission, Event, Order, Payment
from orders.permissions import API_CLIENTS, REVIEWERS, ensure_groups
from orders.tests.factories import new_order_id, order_body, wait_for_state
from orders.tokens import token_authenticate, token_create

ROOT = Path(__file__).resolve().parents[2]
CLOSED_PORT = "127.0.0.1:9"
PASSWORD = "pw-for-security-tests-123"
ADDRESS = {"street": "456 New Ave", "city": "LA", "zip": "90001"}


# --- helpers ---------------------------------------------------------------------------------------
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


def make_order(**fields: Any) -> Order:
    """An order row without a workflow, for tests that must not get as far as Temporal."""
    defaults: dict[str, Any] = {
        "id": new_order_id(),
        "state": "AWAITING_APPROVAL",
        "payment_id": f"pay-{uuid.uuid4().hex[:12]}",
        "items_json": [{"name": "Widget", "price": "29.99", "quantity": 2}],
        "address_json": {"street": "123 Main St", "city": "NYC", "zip": "10001"},
        "total": Decimal("59.98"),
        "approval_deadline": timezone.now() + timezone.timedelta(minutes=5),
    }
    return Order.objects.create(**(defaults | fields))


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


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    # Sign-ins are most of what these tests do; the production hasher makes each cost ~0.3 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def no_temporal(settings: Any) -> None:
    """Temporal unreachable: a request that got past the checks would end in a fast 503."""
    settings.TEMPORAL_ADDRESS = CLOSED_PORT


@pytest.fixture
def token_client(db: None, no_temporal: None) -> Client:
    """An API client in the API clients group (every API permission), on the test transaction."""
    ensure_groups()
    user = User.objects.create_user("api-sec")
    user.groups.add(Group.objects.get(name=API_CLIENTS))
    return with_token(user)


@pytest.fixture
def reviewer(db: None) -> User:
    ensure_groups()
    user = User.objects.create_user("rita", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=REVIEWERS))
    return user


# === A. Bad input ==================================================================================
API_WRITES = ["start", "signals/approve", "signals/cancel", "signals/update-address"]


@pytest.mark.parametrize("path", API_WRITES)
def test_a_body_over_64_kib_is_refused_with_413_before_any_view_reads_it(token_client: Client, path: str) -> None:
    order = make_order()
    before = written()
    body = json.dumps({"address": {**ADDRESS, "note": "x" * (65 * 1024)}})
    response = token_client.post(f"/orders/{order.id}/{path}", body, content_type="application/json")
    assert assert_refused(response, 413)["detail"] == "body: the request body exceeds 64 KiB"
    assert written() == before


def test_a_big_body_that_claims_to_be_small_is_read_only_as_far_as_it_claims(token_client: Client) -> None:
    # Django reads at most Content-Length bytes: the view sees 10 bytes of broken JSON, not 65 KiB.
    before = written()
    body = json.dumps(order_body(address={**ADDRESS, "note": "x" * (65 * 1024)}))
    assert_refused(start(token_client, new_order_id(), body, CONTENT_LENGTH="10"), 400)
    assert written() == before


MALFORMED: list[tuple[str, str | bytes]] = [
    ("empty body", ""),
    ("not json", "{nope"),
    ("trailing comma", '{"payment_id": "p-1",}'),
    ("truncated", '{"payment_id": "p-1", "items": ['),
    ("json null", "null"),
    ("json array", "[]"),
    ("json string", '"an order"'),
    ("not utf-8", b'{"payment_id": "\xff\xfe"}'),
    ("nesting 20000 deep", "[" * 20000 + "]" * 20000),
    (
        "a 5000-digit quantity",
        '{"payment_id": "p", "items": [{"name": "a", "price": 1, "quantity": ' + "9" * 5000 + "}]}",
    ),
    ("NaN price", '{"payment_id": "p", "items": [{"name": "a", "price": NaN, "quantity": 1}], "address": {}}'),
    (
        "Infinity price",
        '{"payment_id": "p", "items": [{"name": "a", "price": Infinity, "quantity": 1}], "address": {}}',
    ),
    ("1e400 price", '{"payment_id": "p", "items": [{"name": "a", "price": 1e400, "quantity": 1}], "address": {}}'),
]


@pytest.mark.parametrize(("case", "body"), MALFORMED, ids=[case for case, _ in MALFORMED])
def test_malformed_json_is_refused_with_400_and_writes_nothing(
    token_client: Client, case: str, body: str | bytes
) -> None:
    order = make_order()
    before = written()
    assert_refused(start(token_client, new_order_id(), body), 400)
    assert_refused(
        token_client.post(f"/orders/{order.id}/signals/update-address", body, content_type="application/json"), 400
    )
    assert written() == before


def _item(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "Widget", "price": "29.99", "quantity": 2, **fields}]


WRONG_TYPES: list[tuple[str, dict[str, Any], str]] = [
    ("price as list", order_body(items=_item(price=[1, 2])), "items.0.price"),
    ("price as object", order_body(items=_item(price={"amount": 1})), "items.0.price"),
    ("price as bool", order_body(items=_item(price=True)), "items.0.price"),
    ("price as null", order_body(items=_item(price=None)), "items.0.price"),
    ("quantity as float 1.5", order_body(items=_item(quantity=1.5)), "items.0.quantity"),
    ("quantity as 2.0", order_body(items=_item(quantity=2.0)), "items.0.quantity"),
    ("quantity as bool", order_body(items=_item(quantity=True)), "items.0.quantity"),
    ("quantity as string", order_body(items=_item(quantity="2")), "items.0.quantity"),
    ("name as number", order_body(items=_item(name=7)), "items.0.name"),
    ("items as object", order_body(items={"name": "Widget", "price": "1.00", "quantity": 1}), "items"),
    ("items as string", order_body(items="Widget x2"), "items"),
    ("item as list", order_body(items=[["Widget", "1.00", 1]]), "items.0"),
    ("payment_id as number", order_body(payment_id=12345), "payment_id"),
    ("address as list", order_body(address=["123 Main St", "NYC", "10001"]), "address"),
    ("address street as number", order_body(address={**ADDRESS, "street": 123}), "address.street"),
    ("address zip as number", order_body(address={**ADDRESS, "zip": 90001}), "address.zip"),
    ("address city as bool", order_body(address={**ADDRESS, "city": True}), "address.city"),
    ("address zip as null", order_body(address={**ADDRESS, "zip": None}), "address.zip"),
    ("address extra as object", order_body(address={**ADDRESS, "floor": {"n": 3}}), "address.floor"),
    ("address extra as list", order_body(address={**ADDRESS, "lines": ["a", "b"]}), "address.lines"),
]


@pytest.mark.parametrize(("case", "body", "field"), WRONG_TYPES, ids=[case for case, _, _ in WRONG_TYPES])
def test_a_value_of_the_wrong_type_is_refused_naming_the_field_and_writes_nothing(
    token_client: Client, case: str, body: dict[str, Any], field: str
) -> None:
    before = written()
    detail = assert_refused(start(token_client, new_order_id(), body), 400)["detail"]
    assert field in detail
    assert written() == before


@pytest.mark.parametrize(
    ("case", "address", "field"),
    [
        ("street as number", {**ADDRESS, "street": 1}, "address.street"),
        ("zip as bool", {**ADDRESS, "zip": False}, "address.zip"),
        ("city as null", {**ADDRESS, "city": None}, "address.city"),
        ("address as string", "456 New Ave, LA", "address"),
        ("NUL in street", {**ADDRESS, "street": "456\x00 New Ave"}, "address.street"),
    ],
)
def test_a_bad_address_change_is_refused_naming_the_field_and_writes_nothing(
    token_client: Client, case: str, address: Any, field: str
) -> None:
    order = make_order()
    before = written()
    response = token_client.post(
        f"/orders/{order.id}/signals/update-address", {"address": address}, content_type="application/json"
    )
    assert field in assert_refused(response, 400)["detail"]
    assert written() == before


UNICODE_ORDER = order_body(
    items=[
        {"name": "Café ☕ 🎉 Ünïcödé", "price": "3.50", "quantity": 1},
        {"name": "كتاب عربي", "price": "12.00", "quantity": 2},  # right-to-left
        {"name": "ספר \u200f עברי", "price": "8.00", "quantity": 1},  # with a right-to-left mark
    ],
    address={"street": "١٢ شارع النيل", "city": "القاهرة 🏙️", "zip": "11511", "recipient": "👩‍💻 Zoë"},
)


def test_emoji_and_right_to_left_text_are_accepted_stored_verbatim_and_shown(
    api: Client, queues: Any, reviewer: User
) -> None:
    order_id = new_order_id()
    response = start(api, order_id, UNICODE_ORDER)
    assert response.status_code == 201, response.content
    order = Order.objects.get(id=order_id)
    assert [item["name"] for item in order.items_json] == [item["name"] for item in UNICODE_ORDER["items"]]
    assert order.address_json == UNICODE_ORDER["address"]
    assert api.get(f"/orders/{order_id}/status").json()["address"] == UNICODE_ORDER["address"]
    page = signed_in(reviewer).get(f"/review/orders/{order_id}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Café ☕ 🎉 Ünïcödé" in html and "القاهرة 🏙️" in html


@pytest.mark.parametrize(
    ("case", "body", "field"),
    [
        ("in the address", order_body(address={**ADDRESS, "street": "1\x00 Main"}), "address.street"),
        ("in an extra address field", order_body(address={**ADDRESS, "note": "\x00"}), "address.note"),
        ("in the payment id", order_body(payment_id="pay\x001"), "payment_id"),
    ],
)
def test_a_nul_byte_is_refused(token_client: Client, case: str, body: dict[str, Any], field: str) -> None:
    before = written()
    assert field in assert_refused(start(token_client, new_order_id(), body), 400)["detail"]
    assert written() == before


def test_a_nul_byte_in_an_item_name_is_refused(token_client: Client) -> None:
    before = written()
    body = order_body(items=[{"name": "Wid\x00get", "price": "1.00", "quantity": 1}])
    assert "items.0.name" in assert_refused(start(token_client, new_order_id(), body), 400)["detail"]
    assert written() == before


# A lone surrogate ("\ud800") is valid JSON but not encodable text: stored, it breaks every page
# that renders it (UTF-8 encoding of the response fails: a 500 for the whole review queue).
SURROGATE = '"\\ud800"'


def test_a_lone_surrogate_in_an_item_name_is_refused(token_client: Client) -> None:
    before = written()
    body = json.dumps(order_body()).replace('"Widget"', SURROGATE)
    assert "items.0.name" in assert_refused(start(token_client, new_order_id(), body), 400)["detail"]
    assert written() == before


@pytest.mark.parametrize("where", ["value", "key"])
def test_a_lone_surrogate_in_the_address_is_refused(token_client: Client, where: str) -> None:
    before = written()
    body = json.dumps(
        order_body(address={**ADDRESS, "note": "SURROGATE"} if where == "value" else {**ADDRESS, "SURROGATE": "x"})
    )
    body = body.replace('"SURROGATE"', SURROGATE)
    assert_refused(start(token_client, new_order_id(), body), 400)
    assert written() == before


# Ids that reach the view are refused by its id check (400). An id holding "/" never reaches it:
# the path no longer matches any route and the answer is the JSON 404 "no such path".
INJECTION_IDS: list[tuple[str, int]] = [
    ("'; DROP TABLE orders;--", 400),
    ("1 OR 1=1", 400),
    ("<img src=x onerror=alert(1)>", 400),
    ("<script>alert(1)</script>", 404),
    ("../../etc/passwd", 404),
    ("..", 400),
    ("%00", 400),
    ("order-1\x00", 400),
    ("order-1\r\nSet-Cookie: x=1", 400),
    ("{{7*7}}", 400),
    ("${jndi:ldap://x/a}", 404),
]


@pytest.mark.parametrize(("order_id", "status"), INJECTION_IDS, ids=[repr(i) for i, _ in INJECTION_IDS])
def test_an_injection_shaped_order_id_is_refused_everywhere_and_writes_nothing(
    token_client: Client, order_id: str, status: int
) -> None:
    make_order()
    before = written()
    assert_refused(start(token_client, order_id, order_body()), status)
    path = quote(order_id, safe="")
    for action in ("approve", "cancel", "update-address"):
        # The actions look the id up and find no such order (404), or do not route it at all.
        response = token_client.post(
            f"/orders/{path}/signals/{action}", {"address": ADDRESS}, content_type="application/json"
        )
        assert_refused(response, 400, 404)
    assert_refused(token_client.get(f"/orders/{path}/status"), 400, 404)
    assert written() == before
    assert Order.objects.count() == 1  # and the table is still there


INJECTION_VALUES = {
    "script": "<script>alert(1)</script>",
    "sql": "'; DROP TABLE orders;--",
    "path": "../../etc/passwd",
    "percent_nul": "%00",
    "template": "{{ request.user }}{% debug %}",
}


def test_injection_shaped_values_are_stored_verbatim_and_shown_escaped(
    api: Client, queues: Any, reviewer: User
) -> None:
    order_id = new_order_id()
    body = order_body(
        items=[{"name": INJECTION_VALUES["script"], "price": "1.00", "quantity": 1}],
        address={
            "street": INJECTION_VALUES["script"],
            "city": INJECTION_VALUES["sql"],
            "zip": INJECTION_VALUES["path"],
            "note": INJECTION_VALUES["percent_nul"],
            "floor": INJECTION_VALUES["template"],
        },
    )
    assert start(api, order_id, body).status_code == 201
    order = Order.objects.get(id=order_id)
    assert order.items_json[0]["name"] == INJECTION_VALUES["script"]
    assert order.address_json == body["address"]

    console = signed_in(reviewer)
    for url in (
        f"/review/orders/{order_id}/",
        "/review/?state=all",
        reverse("admin:orders_order_change", args=[order_id]),
    ):
        html = console.get(url).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url
        assert "<script>alert(1)" not in html, url
    order_page = console.get(f"/review/orders/{order_id}/").content.decode()
    assert "&#x27;; DROP TABLE orders;--" in order_page
    assert INJECTION_VALUES["template"] in order_page  # shown as text: a value is never a template


def test_an_injection_shaped_payment_id_is_refused(token_client: Client) -> None:
    before = written()
    detail = assert_refused(
        start(token_client, new_order_id(), order_body(payment_id="'; DROP TABLE payments;--")), 400
    )["detail"]
    assert "payment_id" in detail
    assert written() == before


# --- forms show their errors ----------------------------------------------------------------------
def test_the_login_page_says_why_a_sign_in_failed(reviewer: User) -> None:
    response = Client().post("/accounts/login/", {"username": "rita", "password": "wrong"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="form-error" role="alert"' in html
    assert "Please enter a correct username and password" in html
    assert 'value="rita"' in html  # the username is kept, the password is not
    assert "wrong" not in html


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/review/", "javascript:alert(1)"])
def test_neither_the_login_page_nor_the_console_redirects_to_another_site(reviewer: User, target: str) -> None:
    response = Client().post("/accounts/login/", {"username": "rita", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response["Location"] == "/review/"
    bulk = signed_in(reviewer).post("/review/bulk/", {"action": "approve", "next": target})  # no orders chosen
    assert bulk.status_code == 302 and bulk["Location"] == "/review/"


def test_the_login_page_shows_a_missing_field_next_to_it(reviewer: User) -> None:
    html = Client().post("/accounts/login/", {"username": "rita", "password": ""}).content.decode()
    assert 'id="id_password-error"' in html and "This field is required." in html
    assert 'aria-invalid="true"' in html


NUL_URLS = [
    "/admin/orders/order/abc%00def/change/",
    "/admin/orders/event/abc%00def/change/",
    "/admin/orders/payment/abc%00def/change/",
    "/admin/orders/order/?q=abc%00def",
    "/admin/orders/order/?state__exact=%00",
    "/review/orders/abc%00def/",
    "/review/?q=abc%00def",
    "/review/?state%00=x",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_byte_in_a_staff_url_is_a_400_not_a_500(db: None, url: str) -> None:
    boss = User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    client = Client(raise_request_exception=False)
    client.force_login(boss)
    response = client.get(url)
    assert response.status_code == 400
    assert b"NUL" in response.content


def test_a_nul_byte_in_an_api_query_is_a_json_400(token_client: Client) -> None:
    response = token_client.get("/orders/order-1/status?x=%00")
    assert assert_refused(response, 400)["detail"] == "url: contains a NUL byte"


def test_the_console_address_form_refuses_a_nul_byte_with_a_field_error(reviewer: User, no_temporal: None) -> None:
    order = make_order()
    before = written()
    response = signed_in(reviewer).post(
        f"/review/orders/{order.id}/address/", {"street": "1\x00 Main", "city": "LA", "zip": "90001"}
    )
    assert response.status_code == 400
    assert b"field-error" in response.content and b"Null characters are not allowed." in response.content
    assert written() == before


def test_the_admin_address_form_refuses_a_nul_byte_with_a_field_error(reviewer: User, no_temporal: None) -> None:
    order = make_order()
    client = signed_in(reviewer)
    url = reverse("admin:orders_order_change", args=[order.id])
    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
    before = written()
    response = client.post(url, {**data, "street": "1\x00 Main"})
    assert response.status_code == 200
    assert "street" in response.context["adminform"].form.errors
    assert b"Null characters are not allowed." in response.content
    assert written() == before


# === B. Tokens =====================================================================================
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


def test_a_token_never_appears_in_the_logs_even_at_debug(
    token_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    all_loggers_at_debug(caplog)
    token = token_client.defaults["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    forged = "olc_" + secrets.token_urlsafe(32)
    order = make_order()
    # CaptureQueriesContext turns on SQL logging (django.db.backends at DEBUG, with parameters):
    # even then the token is not there, only its digest is ever sent to the database.
    with CaptureQueriesContext(connection):
        responses = [
            token_client.get(f"/orders/{order.id}/status"),
            start(token_client, new_order_id(), "{nope"),
            token_client.post(f"/orders/{order.id}/signals/approve"),  # reaches Temporal: closed port, 503
            Client(HTTP_AUTHORIZATION=f"Bearer {forged}").get(f"/orders/{order.id}/status"),
            Client(HTTP_AUTHORIZATION=f"Bearer {token}x").post(f"/orders/{order.id}/signals/cancel"),
        ]
    assert [r.status_code for r in responses] == [200, 400, 503, 401, 401]
    logged = everything_logged(caplog)
    assert caplog.records, "nothing was captured: the test would prove nothing"
    assert token not in logged and forged not in logged
    assert token[:12] not in logged  # not even a recognisable part of it


# === B. Who may do what ============================================================================
# Every state-changing door, and who knocks: nobody signed in, a signed-in user (or token) without
# any permission, and one who may only look (orders.view_order). Each must be refused and write nothing.
Door = Callable[[Client, str], Any]

API_DOORS: dict[str, Door] = {
    "api start": lambda c, oid: start(c, new_order_id(), order_body()),
    "api approve": lambda c, oid: c.post(f"/orders/{oid}/signals/approve"),
    "api cancel": lambda c, oid: c.post(f"/orders/{oid}/signals/cancel"),
    "api update-address": lambda c, oid: c.post(
        f"/orders/{oid}/signals/update-address", {"address": ADDRESS}, content_type="application/json"
    ),
    "api status (read)": lambda c, oid: c.get(f"/orders/{oid}/status"),
}
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
ADMIN_DOORS: dict[str, Door] = {
    "admin order change": lambda c, oid: c.post(reverse("admin:orders_order_change", args=[oid]), {**ADDRESS}),
    "admin approve action": lambda c, oid: c.post(
        reverse("admin:orders_order_changelist"), {"action": "approve_selected", "_selected_action": [oid]}
    ),
    "admin cancel action": lambda c, oid: c.post(
        reverse("admin:orders_order_changelist"), {"action": "cancel_selected", "_selected_action": [oid]}
    ),
    "admin revoke tokens action": lambda c, oid: c.post(
        reverse("admin:orders_apitoken_changelist"),
        {"action": "revoke_selected", "_selected_action": list(ApiToken.objects.values_list("pk", flat=True))},
    ),
}
PERSONAS = ["anonymous", "no permission", "view only"]


def persona_client(persona: str, surface: str) -> Client:
    if persona == "anonymous":
        return Client()
    codenames = ("view_order",) if persona == "view only" else ()
    # Admin admits staff only; staff status is what lets these users reach the permission checks.
    user = user_with(f"{persona.replace(' ', '-')}-{surface}", *codenames, staff=surface == "admin")
    return with_token(user) if surface == "api" else signed_in(user)


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


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("door", list(ADMIN_DOORS))
def test_every_admin_door_refuses_who_lacks_the_permission_and_writes_nothing(
    db: None, no_temporal: None, door: str, persona: str
) -> None:
    from django.contrib.admin.models import LogEntry

    order = make_order()
    token_create(user=User.objects.create_user("bystander"), name="someone else's")
    client = persona_client(persona, "admin")
    before, log_entries = written(), LogEntry.objects.count()
    response = ADMIN_DOORS[door](client, order.id)
    if persona == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    elif door in ("admin approve action", "admin cancel action") and persona == "view only":
        # Admin offers no action the user may not take, so the POST names no known action and
        # the list is simply shown again.
        assert response.status_code == 200
        assert not [str(m) for m in response.context["messages"]]
    else:
        assert response.status_code == 403
    assert written() == before
    assert LogEntry.objects.count() == log_entries


def test_a_non_staff_user_with_every_order_permission_cannot_use_admin(db: None, no_temporal: None) -> None:
    ensure_groups()
    user = User.objects.create_user("outsider")
    user.groups.add(Group.objects.get(name=REVIEWERS))
    order = make_order()
    before = written()
    for door in ADMIN_DOORS.values():
        response = door(signed_in(user), order.id)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert written() == before


def _websocket(cookie: str | None = None, origin: str = "http://testserver") -> tuple[bool, int | None]:
    from orders_site.asgi import application

    async def attempt() -> tuple[bool, int | None]:
        headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        communicator = WebsocketCommunicator(application, "/ws/review/", headers=headers)
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, code

    return async_to_sync(attempt)()


def _session_cookie(user: User) -> str:
    client = signed_in(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"


def test_the_websocket_refuses_anonymous_users_and_users_without_view_permission(transactional_db: None) -> None:
    assert _websocket() == (False, 4403)
    assert _websocket(_session_cookie(User.objects.create_user("no-view"))) == (False, 4403)
    assert _websocket(_session_cookie(user_with("watcher", "view_order")))[0] is True


def test_the_websocket_refuses_another_sites_page(transactional_db: None) -> None:
    # Cross-site websocket hijacking: a page elsewhere opening the socket with the reviewer's cookie.
    connected, _ = _websocket(_session_cookie(user_with("watcher", "view_order")), origin="https://evil.example")
    assert not connected


# === B. CSRF =======================================================================================
def test_the_login_form_needs_its_csrf_token(reviewer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/accounts/login/", {"username": "rita", "password": PASSWORD}).status_code == 403
    page = client.get("/accounts/login/")
    token = page.context["csrf_token"]
    response = client.post(
        "/accounts/login/", {"username": "rita", "password": PASSWORD, "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302 and response["Location"] == "/review/"


def test_the_logout_form_needs_its_csrf_token(reviewer: User) -> None:
    client = signed_in(reviewer, enforce_csrf_checks=True)
    assert client.post("/accounts/logout/").status_code == 403
    assert client.get("/review/").status_code == 200  # still signed in


def test_admin_forms_need_their_csrf_token(reviewer: User, no_temporal: None) -> None:
    order = make_order()
    assert (
        Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "rita", "password": PASSWORD}).status_code
        == 403
    )
    client = signed_in(reviewer, enforce_csrf_checks=True)
    before = written()
    assert client.post(reverse("admin:orders_order_change", args=[order.id]), ADDRESS).status_code == 403
    changelist = reverse("admin:orders_order_changelist")
    assert client.post(changelist, {"action": "approve_selected", "_selected_action": [order.id]}).status_code == 403
    assert written() == before


@pytest.mark.parametrize("door", list(CONSOLE_DOORS))
def test_every_console_form_needs_its_csrf_token(reviewer: User, no_temporal: None, door: str) -> None:
    order = make_order()
    before = written()
    assert CONSOLE_DOORS[door](signed_in(reviewer, enforce_csrf_checks=True), order.id).status_code == 403
    assert written() == before


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


# === B. Login throttling (django-axes) =============================================================
def sign_in(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_axes_is_configured_to_lock_by_username_and_address() -> None:
    assert django_settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert django_settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert django_settings.AXES_RESET_ON_SUCCESS is True
    assert django_settings.AXES_FAILURE_LIMIT == int(os.environ.get("AXES_FAILURE_LIMIT", 5))


def test_after_five_wrong_passwords_even_the_right_one_is_refused_with_429(reviewer: User) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    client = Client()
    for _ in range(limit - 1):
        assert sign_in(client, "rita", "guess").status_code == 200
    locked = sign_in(client, "rita", "guess")
    assert locked.status_code == 429
    assert sign_in(client, "rita", PASSWORD).status_code == 429
    text = " ".join(sign_in(client, "rita", PASSWORD).content.decode().split())
    minutes = round(django_settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    assert "Too many sign-in attempts" in text
    assert f"Signing in as <strong>rita</strong> from this address is paused after {limit} failed attempts." in text
    assert f"Try again in {minutes} minutes." in text
    assert client.get("/review/").status_code == 302  # not signed in


def test_a_lockout_leaves_other_users_and_other_addresses_alone(reviewer: User) -> None:
    User.objects.create_user("sam", password=PASSWORD).groups.add(Group.objects.get(name=REVIEWERS))
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "rita", "guess")
    assert sign_in(Client(), "rita", PASSWORD).status_code == 429
    assert sign_in(Client(), "sam", PASSWORD).status_code == 302  # another user, same address
    assert sign_in(Client(), "rita", PASSWORD, REMOTE_ADDR="10.1.2.3").status_code == 302  # same user, elsewhere


def test_a_successful_sign_in_resets_the_count(reviewer: User) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        sign_in(Client(), "rita", "guess")
    assert sign_in(Client(), "rita", PASSWORD).status_code == 302
    for _ in range(limit - 1):
        assert sign_in(Client(), "rita", "guess").status_code == 200
    assert sign_in(Client(), "rita", PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(reviewer: User) -> None:
    from axes.models import AccessAttempt

    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "rita", "guess")
    assert sign_in(Client(), "rita", PASSWORD).status_code == 429
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - django_settings.AXES_COOLOFF_TIME - timezone.timedelta(seconds=1)
    )
    assert sign_in(Client(), "rita", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(reviewer: User) -> None:
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        Client().post("/admin/login/", {"username": "rita", "password": "guess"})
    assert Client().post("/admin/login/", {"username": "rita", "password": PASSWORD}).status_code == 429


def test_a_failed_sign_in_never_logs_the_password(reviewer: User, caplog: pytest.LogCaptureFixture) -> None:
    all_loggers_at_debug(caplog)
    sign_in(Client(), "rita", "hunter2-secret-guess")
    assert caplog.records
    assert "hunter2-secret-guess" not in everything_logged(caplog)


def test_tests_can_still_sign_in_with_force_login_or_login_given_a_request(reviewer: User) -> None:
    # AxesStandaloneBackend needs the request; Client.login() passes none unless given one.
    assert signed_in(reviewer).get("/review/").status_code == 200
    client = Client()
    assert client.login(request=HttpRequest(), username="rita", password=PASSWORD)
    assert client.get("/review/").status_code == 200


# === B. Payment details stay out of the logs =======================================================
def test_a_whole_order_lifecycle_never_logs_the_payment_id(
    api: Client, workers: Any, settings: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Transient failures on the way make the activities log their retries too.
    settings.FLAKY_CALL_FAILURE_RATE = 0.3
    caplog.set_level(logging.DEBUG)  # root at DEBUG; loggers configured quieter (SQL) stay so
    payment_ids = [f"pay-secret-{uuid.uuid4().hex}" for _ in range(3)]
    completed, cancelled, refused = new_order_id(), new_order_id(), new_order_id()
    assert start(api, completed, order_body(payment_id=payment_ids[0])).status_code == 201
    assert start(api, cancelled, order_body(payment_id=payment_ids[1])).status_code == 201
    wait_for_state(completed, "AWAITING_APPROVAL")
    assert api.post(f"/orders/{completed}/signals/approve").status_code == 202
    assert api.post(f"/orders/{cancelled}/signals/cancel").status_code == 202
    # A payment id already taken: refused with 409 (the answer names it; the log must not).
    assert start(api, refused, order_body(payment_id=payment_ids[0])).status_code == 409
    assert start(api, new_order_id(), order_body(payment_id=payment_ids[2], items=[])).status_code == 400
    wait_for_state(completed, "COMPLETED")
    wait_for_state(cancelled, "CANCELLED")
    assert api.get(f"/orders/{completed}/status").json()["payment"]["payment_id"] == payment_ids[0]

    logged = everything_logged(caplog) + "\n".join(capfd.readouterr())
    assert any(r.name.startswith(("lifecycle", "temporalio", "django")) for r in caplog.records), "nothing was captured"
    for payment_id in payment_ids:
        assert payment_id not in logged


def test_sql_with_its_parameters_is_never_logged_whatever_the_log_level() -> None:
    # With DEBUG on, Django logs every query with its parameters (payment ids among them) to
    # django.db.backends at DEBUG; the settings keep that logger at WARNING even when LOG_LEVEL=DEBUG.
    assert django_settings.LOGGING["loggers"]["django.db.backends"]["level"] == "WARNING"
    assert logging.getLogger("django.db.backends").getEffectiveLevel() >= logging.WARNING


# === B. Production settings ========================================================================
def production_env(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    """A production configuration, from environment variables only (see docs/security.md)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "orders_site.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "orders.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://orders.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "SESSION_COOKIE_SECURE": "1",
        "CSRF_COOKIE_SECURE": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "BEHIND_TLS_PROXY": "1",
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_the_production_environment(tmp_path: Path) -> None:
    result = check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr.replace("WARNINGS:", "")


MISCONFIGURED: list[tuple[str, dict[str, str | None], list[str]]] = [
    ("no SECRET_KEY, so the development default", {"SECRET_KEY": None}, ["security.W009"]),
    ("a short SECRET_KEY", {"SECRET_KEY": "too-short"}, ["security.W009"]),
    ("DEBUG on", {"DEBUG": "1"}, ["security.W018"]),
    (
        "no TLS settings",
        {
            "SECURE_SSL_REDIRECT": None,
            "SESSION_COOKIE_SECURE": None,
            "CSRF_COOKIE_SECURE": None,
            "SECURE_HSTS_SECONDS": None,
        },
        ["security.W004", "security.W008", "security.W012", "security.W016"],
    ),
]


@pytest.mark.parametrize(("case", "changes", "codes"), MISCONFIGURED, ids=[case for case, _, _ in MISCONFIGURED])
def test_check_deploy_fails_when_a_production_setting_is_missing(
    tmp_path: Path, case: str, changes: dict[str, str | None], codes: list[str]
) -> None:
    result = check_deploy(production_env(tmp_path, **changes))
    assert result.returncode != 0
    for code in codes:
        assert code in result.stderr + result.stdout, result.stderr


# === B. Response headers ===========================================================================
EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/review/",
        "/review/orders/{order}/",
        "/admin/",
        "/admin/orders/order/{order}/change/",
        "/docs",
        "/openapi.json",
        "/orders/{order}/status",
        "/no/such/path",
    ],
)
def test_every_response_carries_the_security_headers_and_the_csp(
    reviewer: User, token_client: Client, path: str
) -> None:
    order = make_order()
    if path.startswith(("/orders/", "/openapi", "/no/")):
        client = token_client
    else:
        client = Client() if path == "/accounts/login/" else signed_in(reviewer)
    response = client.get(path.format(order=order.id))
    assert response.status_code in (200, 404)
    for header, value in EXPECTED_HEADERS.items():
        assert response[header] == value, header
    assert response["Content-Security-Policy"] == CSP == django_settings.CONTENT_SECURITY_POLICY


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=\"", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+=\"", re.I)


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/review/",
        "/review/?state=all",
        "/review/orders/{order}/",
        "/admin/",
        "/admin/orders/order/",
        "/admin/orders/order/{order}/change/",
        "/admin/orders/apitoken/",
        "/docs",
    ],
)
def test_pages_have_no_inline_script_style_or_handler_the_csp_would_block(reviewer: User, path: str) -> None:
    # A JSON data block (<script type="application/json">, Swagger UI's settings) is never run, so
    # the CSP allows it. What the browser actually does is checked by the browser test below.
    order = make_order()
    html = (
        signed_in(User.objects.create_superuser("root", password=PASSWORD))
        .get(path.format(order=order.id))
        .content.decode()
    )
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not INLINE_STYLE.search(html), INLINE_STYLE.search(html)
    assert not INLINE_HANDLER.search(html), INLINE_HANDLER.search(html)


def test_the_lockout_page_has_the_headers_too(reviewer: User) -> None:
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        response = sign_in(Client(), "rita", "guess")
    assert response.status_code == 429
    assert response["Content-Security-Policy"] == CSP
    assert not INLINE_SCRIPT.search(response.content.decode())


@pytest.mark.browser
def test_console_admin_and_api_docs_run_in_chromium_without_a_csp_violation(
    live_server: Any, transactional_db: None
) -> None:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{chromium} is missing: CI must install Debian's chromium package")
        pytest.skip(f"{chromium} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    User.objects.create_superuser("root", password=PASSWORD)
    order = make_order()
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append(f"{page.url}: {message.text}") if "Content Security Policy" in message.text else None
            ),
        )
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/review/")
        for path in (
            "/review/",
            f"/review/orders/{order.id}/",
            "/admin/",
            f"/admin/orders/order/{order.id}/change/",
            "/docs",
        ):
            page.goto(live_server.url + path)
            page.wait_for_load_state("networkidle")
        assert page.locator(".opblock").count() == 6  # Swagger UI rendered every operation
        # The policy is live: an injected inline script is blocked and reported.
        page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); }"
        )
        assert page.evaluate("() => window.ran") is None
        browser.close()
    assert len(violations) == 1 and "inline script" in violations[0], violations
