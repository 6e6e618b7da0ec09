"""Hostile input to the JSON API: oversized, malformed or mistyped bodies, NUL bytes, lone
surrogates and injection-shaped ids and values are refused with a 400 (or 413) naming the field
and write nothing; text that is merely unusual is stored verbatim and shown escaped."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from orders.models import Order
from orders.tests.factories import make_order, new_order_id, order_body
from orders.tests.security.helpers import ADDRESS, assert_refused, signed_in, start, written

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
    ("nl2\n", 400),  # `$` under re.match accepted a trailing newline: "nl2\n" was an order beside "nl2"
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


def test_a_payment_id_with_a_trailing_newline_is_refused(token_client: Client) -> None:
    before = written()
    detail = assert_refused(start(token_client, new_order_id(), order_body(payment_id="pay-1\n")), 400)["detail"]
    assert "payment_id" in detail
    assert written() == before


def test_a_nul_byte_in_an_api_query_is_a_json_400(token_client: Client) -> None:
    response = token_client.get("/orders/order-1/status?x=%00")
    assert assert_refused(response, 400)["detail"] == "url: contains a NUL byte"
