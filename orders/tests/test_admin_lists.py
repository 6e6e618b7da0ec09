"""Admin's lists of orders, events and payments read about a page of rows, whatever the tables hold
and however a staff member sorts them, with a fixed number of queries.

On PostgreSQL each page's SQL runs again under EXPLAIN ANALYZE over tables of thousands of rows in
which every state, type and status has many: a page must read a page, not the table. (The time
each page takes at 100,000 orders is the benchmark's business: `scripts/bench.py --scale-only`.)
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orders import selectors
from orders.models import Event, Order, Payment
from orders.tests.factories import make_orders
from orders.tests.test_scale_queries import ADMIN_LIST_QUERIES, add_events, same_queries

pytestmark = pytest.mark.django_db

LISTS = {"orders": Order, "events": Event, "payments": Payment}
CAP = 200  # the capped count reads at most CAP + 1 rows
ROWS_READ_MAX = 2 * (CAP + 1)  # a page of 50, the capped count and a few ties, with room to spare
ORDERS = 3_000
EVENTS_PER_ORDER = 10
SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}

FILL_SQL = [
    # Every state, type and status is common, as ended states become over the years.
    f"""
    INSERT INTO orders (id, state, items_json, address_json, created_at, updated_at, payment_id, total,
                        workflow_run_id, approval_deadline, request_digest)
    SELECT 'big-' || lpad(g::text, 5, '0'),
           (ARRAY['APPROVAL_TIMEOUT', 'CANCELLED', 'COMPLETED', 'FAILED', 'AWAITING_APPROVAL'])[g % 5 + 1],
           '[]'::jsonb, '{{}}'::jsonb, now() - make_interval(secs => g * 60),
           now() - make_interval(secs => g * 60 - 90), 'big-pay-' || g, (g % 97) + 0.99, '', NULL, ''
    FROM generate_series(1, {ORDERS}) AS g
    """,  # noqa: S608 (constants)
    """
    INSERT INTO payments (payment_id, order_id, status, amount, created_at, updated_at)
    SELECT payment_id, id, CASE WHEN state = 'CANCELLED' THEN 'REFUNDED' ELSE 'COMPLETED' END, total,
           created_at + interval '20 seconds', updated_at
    FROM orders WHERE id LIKE 'big-%'
    """,
    f"""
    INSERT INTO events (id, order_id, type, payload_json, timestamp)
    SELECT o.id || ':' || k, o.id,
           (ARRAY['ORDER_RECEIVED', 'ORDER_VALIDATED', 'ADDRESS_UPDATED', 'ORDER_APPROVED'])[k % 4 + 1],
           '{{"actor": "rita", "via": "admin"}}'::jsonb, o.created_at + make_interval(secs => k)
    FROM orders o CROSS JOIN generate_series(1, {EVENTS_PER_ORDER}) AS k
    WHERE o.id LIKE 'big-%'
    """,  # noqa: S608 (constants)
    "ANALYZE orders",
    "ANALYZE payments",
    "ANALYZE events",
]


def rows_read(sql: str) -> int:
    """The rows PostgreSQL's scans read to answer `sql`: those they returned and those they filtered out."""

    def walk(node: dict[str, Any]) -> int:
        own = 0
        if node["Node Type"] in SCANS:
            read = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            own = read * node["Actual Loops"]
        return own + sum(walk(child) for child in node.get("Plans", []))

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    return walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])


def every_sorting(model: type[Any]) -> list[str]:
    """The list's default order and every `?o=` a column header could carry, each way."""
    columns = len(admin.site.get_model_admin(model).list_display) + 1  # + admin's checkbox column
    return ["", *(f"?o={sign}{i}" for i in range(columns) for sign in ("", "-"))]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plans")
@pytest.mark.parametrize("table", list(LISTS))
def test_every_sorting_of_an_admin_list_reads_about_a_page_of_rows(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, table: str
) -> None:
    monkeypatch.setattr(selectors, "COUNT_CAP", CAP)
    with connection.cursor() as cursor:
        for sql in FILL_SQL:
            cursor.execute(sql)
    url = f"/admin/orders/{LISTS[table]._meta.model_name}/"
    admin_client.get(url)
    too_many = []
    for sorting in every_sorting(LISTS[table]):
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url + sorting).status_code == 200
        for query in [q["sql"] for q in captured.captured_queries if f'FROM "{table}"' in q["sql"]]:
            if (read := rows_read(query)) > ROWS_READ_MAX:
                too_many.append(f"{url}{sorting}: {read:,} rows read by {query[:200]}")
    assert not too_many, "\n".join(too_many)


def test_a_sorting_by_a_column_without_a_sort_link_is_ignored(admin_client: Client) -> None:
    order = make_orders(1)[0]
    add_events(order, 3)
    # Column 2 is the type: sorting by it would sort every event of the most common type.
    listed = admin_client.get("/admin/orders/event/?o=2").context["cl"]
    assert listed.queryset.query.order_by == ("-timestamp", "-id")


def test_the_event_list_shows_the_latest_events_first(admin_client: Client) -> None:
    order = make_orders(1)[0]
    add_events(order, 60)
    listed = admin_client.get("/admin/orders/event/").context["cl"].result_list
    assert [e.id for e in listed][:2] == [f"{order.id}:59", f"{order.id}:58"]


def test_the_admin_event_list_costs_the_same_queries_with_few_or_many_events(
    admin_client: Client, django_assert_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    order = make_orders(1)[0]
    add_events(order, 3)
    few, many = same_queries(
        django_assert_num_queries,
        ADMIN_LIST_QUERIES,
        admin_client,
        "/admin/orders/event/",
        lambda: add_events(order, 70),
    )
    assert "3 events" in few and "5+ events" in many
    for query in (f"?q={order.id}", "?type__exact=ADDRESS_UPDATED", "?o=1", "?o=-2"):
        with django_assert_num_queries(ADMIN_LIST_QUERIES):
            assert admin_client.get("/admin/orders/event/" + query).status_code == 200


def test_the_admin_payment_list_costs_the_same_queries_with_few_or_many_payments(
    admin_client: Client, django_assert_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "COUNT_CAP", 5)

    def pay(orders: list[Order]) -> None:
        Payment.objects.bulk_create(
            Payment(payment_id=o.payment_id, order=o, status="COMPLETED", amount=o.total) for o in orders
        )

    pay(make_orders(3))
    few, many = same_queries(
        django_assert_num_queries,
        ADMIN_LIST_QUERIES,
        admin_client,
        "/admin/orders/payment/",
        lambda: pay(make_orders(70)),
    )
    assert "3 payments" in few and "5+ payments" in many
    for query in ("?status__exact=COMPLETED", "?o=2", "?o=-1"):
        with django_assert_num_queries(ADMIN_LIST_QUERIES):
            assert admin_client.get("/admin/orders/payment/" + query).status_code == 200


def test_the_event_and_payment_lists_link_to_an_order_whose_id_admin_would_misread(admin_client: Client) -> None:
    order = make_orders(1, prefix="order_2F")[0]  # unquoted, admin reads "_2F" as "/"
    add_events(order, 1)
    Payment.objects.create(payment_id=order.payment_id, order=order, status="COMPLETED", amount=order.total)
    for listing in ("/admin/orders/event/", "/admin/orders/payment/"):
        [link] = re.findall(r'href="(/admin/orders/order/[^"]+)"', admin_client.get(listing).content.decode())
        page = admin_client.get(html.unescape(link))
        assert page.status_code == 200 and page.context["original"] == order, listing
