"""The scale phase (--scale): 100,000 orders and ~1,000,000 events bulk-inserted and vacuumed,
then the review queue, an order page and the admin order list timed over HTTP, plus SQL queries
per page (rendered in a separate process with Django's test client)."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.parse
from http.cookies import SimpleCookie
from typing import Any

from scripts.benchlib.driver import Http
from scripts.benchlib.measure import summary_ms
from scripts.benchlib.report import fmt_ms
from scripts.benchlib.stack import BenchError, BenchStack, say
from scripts.stack import HOST, StackError

SCALE_ORDERS = 100_000
SCALE_AWAITING = 1_000
SCALE_EVENTS_PER_ORDER = 10
SCALE_HEAVY_EVENTS = 1_000
SCALE_REQUESTS = 20
HEAVY_ORDER = f"scale-{SCALE_ORDERS:06d}"
TYPICAL_ORDER = f"scale-{SCALE_ORDERS // 2 + 1:06d}"  # a COMPLETED one

_ADDR = '{"street": "123 Main St", "city": "NYC", "zip": "10001"}'
_ADDR2 = '{"street": "9 Side Rd", "city": "Boston", "zip": "02101"}'
SCALE_SQL = [
    # Orders: the newest SCALE_AWAITING wait for approval, the rest have ended (mostly COMPLETED).
    f"""
    INSERT INTO orders (id, state, items_json, address_json, created_at, updated_at, payment_id, total,
                        workflow_run_id, approval_deadline, request_digest)
    SELECT 'scale-' || lpad(g::text, 6, '0'),
           CASE WHEN g > {SCALE_ORDERS - SCALE_AWAITING} THEN 'AWAITING_APPROVAL'
                WHEN g % 50 = 0 THEN 'CANCELLED' WHEN g % 101 = 0 THEN 'FAILED' ELSE 'COMPLETED' END,
           '[{{"name": "Widget", "price": 29.99, "quantity": 2}}, {{"name": "Gadget", "price": 5.5, "quantity": 1}}]'::jsonb,
           jsonb_build_object('street', g || ' Main St', 'city', 'NYC', 'zip', '10001'),
           ts, ts + interval '90 seconds', 'scale-pay-' || g, 65.48, '',
           CASE WHEN g > {SCALE_ORDERS - SCALE_AWAITING} THEN now() + interval '1 hour' END, ''
    FROM (SELECT g, now() - make_interval(secs => ({SCALE_ORDERS} - g + 1) * 25.0) AS ts
          FROM generate_series(1, {SCALE_ORDERS}) AS g) AS s
    """,
    # Payments for the orders past approval.
    """
    INSERT INTO payments (payment_id, order_id, status, amount, created_at, updated_at)
    SELECT payment_id, id, CASE WHEN state = 'CANCELLED' THEN 'REFUNDED' ELSE 'COMPLETED' END, total,
           created_at + interval '20 seconds', updated_at
    FROM orders WHERE id LIKE 'scale-%' AND state <> 'AWAITING_APPROVAL'
    """,
    # Ten events per order (the heavy order gets its own below).
    f"""
    INSERT INTO events (id, order_id, type, payload_json, timestamp)
    SELECT o.id || ':' || t.type || CASE WHEN t.type = 'ADDRESS_UPDATED' THEN ':' || k ELSE '' END,
           o.id, t.type,
           CASE t.type
             WHEN 'ADDRESS_UPDATED' THEN '{{"old": {_ADDR}, "new": {_ADDR2}, "actor": "bench", "via": "console"}}'::jsonb
             WHEN 'ORDER_APPROVED' THEN '{{"actor": "bench", "via": "api"}}'::jsonb
             WHEN 'PAYMENT_CHARGED' THEN jsonb_build_object('amount', '65.48', 'payment_id', o.payment_id)
             WHEN 'CARRIER_DISPATCHED' THEN jsonb_build_object('address', '{_ADDR}'::jsonb, 'tracking_number', 'TRK-' || o.id)
             ELSE '{{}}'::jsonb END,
           o.created_at + make_interval(secs => k)
    FROM orders o
    CROSS JOIN generate_series(1, {SCALE_EVENTS_PER_ORDER}) AS k
    CROSS JOIN LATERAL (SELECT CASE
        WHEN k = 1 THEN 'ORDER_RECEIVED' WHEN k = 2 THEN 'ORDER_VALIDATED'
        WHEN o.state = 'AWAITING_APPROVAL' THEN 'ADDRESS_UPDATED'
        ELSE (ARRAY['ADDRESS_UPDATED', 'ORDER_APPROVED', 'ADDRESS_UPDATED', 'PAYMENT_CHARGED', 'PACKAGE_PREPARED',
                    'CARRIER_DISPATCHED', 'ORDER_SHIPPED', 'ORDER_COMPLETED'])[k - 2] END AS type) AS t
    WHERE o.id LIKE 'scale-%' AND o.id <> '{HEAVY_ORDER}'
    """,
    # The heavy order (awaiting approval): received, validated, then many address changes.
    f"""
    INSERT INTO events (id, order_id, type, payload_json, timestamp)
    SELECT '{HEAVY_ORDER}:' || CASE WHEN k = 1 THEN 'ORDER_RECEIVED' WHEN k = 2 THEN 'ORDER_VALIDATED'
                                    ELSE 'ADDRESS_UPDATED:' || k END,
           '{HEAVY_ORDER}',
           CASE WHEN k = 1 THEN 'ORDER_RECEIVED' WHEN k = 2 THEN 'ORDER_VALIDATED' ELSE 'ADDRESS_UPDATED' END,
           CASE WHEN k <= 2 THEN '{{}}'::jsonb
                ELSE '{{"old": {_ADDR}, "new": {_ADDR2}, "actor": "bench", "via": "console"}}'::jsonb END,
           now() - interval '1 hour' + make_interval(secs => k)
    FROM generate_series(1, {SCALE_HEAVY_EVENTS}) AS k
    """,
    # As autovacuum leaves a table whose rows stopped changing: statistics, and a visibility map
    # that lets counts be read from an index alone. (The benchmark's server may run with
    # autovacuum off, and a just-filled table has no visibility map.)
    "VACUUM (ANALYZE) orders",
    "VACUUM (ANALYZE) payments",
    "VACUUM (ANALYZE) events",
]

SCALE_PAGES = [
    # (key, label, url, counts toward the target)
    ("review_queue", "review queue /review/ (awaiting approval, page 1 of 50 rows)", "/review/", True),
    ("order_page_heavy", f"order page /review/orders/<id>/ ({SCALE_HEAVY_EVENTS:,} events)", f"/review/orders/{HEAVY_ORDER}/", True),
    ("order_page_typical", f"order page /review/orders/<id>/ ({SCALE_EVENTS_PER_ORDER} events)", f"/review/orders/{TYPICAL_ORDER}/", True),
    ("admin_order_list", "admin order list /admin/orders/order/", "/admin/orders/order/", True),
    ("admin_event_list", "admin event list /admin/orders/event/ (latest first, page 1 of 50 rows)", "/admin/orders/event/", True),
    ("admin_payment_list", "admin payment list /admin/orders/payment/", "/admin/orders/payment/", True),
    ("admin_event_list_of_order", f"extra: admin event list of one order ({SCALE_HEAVY_EVENTS:,} events)",
     f"/admin/orders/event/?q={HEAVY_ORDER}", False),
    ("review_queue_all", "extra: review queue, all states (/review/?state=all)", "/review/?state=all", False),
    ("admin_order_change_heavy", f"extra: admin order change page ({SCALE_HEAVY_EVENTS:,} events inline)",
     f"/admin/orders/order/{HEAVY_ORDER}/change/", False),
]  # fmt: skip

QUERY_COUNT_CODE = r"""
import json, time
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
user = get_user_model().objects.get(username=USERNAME)
client = Client()
client.force_login(user)
out = {}
for key, url in URLS:
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    # Read now: the next request resets the connection's query log.
    queries = len(captured)
    timed = [(float(q["time"]) * 1000, q["sql"]) for q in captured.captured_queries]
    sql_ms = round(sum(t for t, _ in timed), 1)
    slowest = max(timed) if timed else (0.0, "")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - t0)
    times.sort()
    out[key] = {"status": response.status_code, "queries": queries, "sql_ms": sql_ms,
                "slowest_sql_ms": round(slowest[0], 1), "slowest_sql": " ".join(slowest[1].split())[:300],
                "in_process_ms_median": round(times[len(times) // 2] * 1000, 1)}
print("BENCH_JSON " + json.dumps(out))
"""

STAFF_CODE = r"""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
User = get_user_model()
user = User.objects.create_superuser(username=USERNAME, password=PASSWORD, email="")
user.groups.add(Group.objects.get(name="Reviewers"))
"""


def login(port: int, username: str, password: str) -> Http:
    h = Http(port)
    status, raw, resp = h.request("GET", "/accounts/login/")
    if status != 200:
        raise BenchError(f"GET /accounts/login/ answered {status}")
    cookies = SimpleCookie()
    for header in resp.msg.get_all("Set-Cookie") or []:
        cookies.load(header)
    match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', raw)
    if match is None or "csrftoken" not in cookies:
        raise BenchError("the login page carries no CSRF token")
    form = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": match.group(1).decode(), "next": "/review/"}
    ).encode()
    status, raw, resp = h.request(
        "POST", "/accounts/login/", form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookies['csrftoken'].value}",
         "Referer": f"http://{HOST}:{port}/accounts/login/"},
    )  # fmt: skip
    for header in resp.msg.get_all("Set-Cookie") or []:
        cookies.load(header)
    if status != 302 or "sessionid" not in cookies:
        raise BenchError(f"logging in answered {status} without a session: {raw[:300]!r}")
    h.headers = {"Cookie": f"sessionid={cookies['sessionid'].value}; csrftoken={cookies['csrftoken'].value}"}
    return h


def run_scale(stack: BenchStack) -> dict[str, Any]:
    fill = fill_database(stack)
    username, password = "bench-staff", secrets.token_urlsafe(16)
    stack.processes.manage("shell", "-c", f"USERNAME={username!r}; PASSWORD={password!r}\n{STAFF_CODE}")
    pages = time_pages(login(stack.web_port, username, password))
    count_queries(stack, username, pages)
    return {**fill, "heavy_order": HEAVY_ORDER, "typical_order": TYPICAL_ORDER, "pages": pages}


def fill_database(stack: BenchStack) -> dict[str, Any]:
    """Run SCALE_SQL; what the database then holds."""
    say(
        f"scale: filling {SCALE_ORDERS:,} orders and ~{(SCALE_ORDERS - 1) * SCALE_EVENTS_PER_ORDER + SCALE_HEAVY_EVENTS:,} events ..."
    )
    t0 = time.perf_counter()
    with stack.database.connect() as conn:
        for sql in SCALE_SQL:
            conn.execute(sql)
        rows = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("orders", "events", "payments")
        }
        awaiting = conn.execute("SELECT count(*) FROM orders WHERE state = 'AWAITING_APPROVAL'").fetchone()[0]
        db_size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    fill_s = time.perf_counter() - t0
    say(f"scale: filled in {fill_s:.1f} s: {rows} ({awaiting:,} awaiting approval), database {db_size}")
    return {"fill_s": round(fill_s, 1), "rows": rows, "awaiting_approval": awaiting, "database_size": db_size}


def time_pages(h: Http) -> list[dict[str, Any]]:
    """Each of SCALE_PAGES requested SCALE_REQUESTS times (after two warm-up requests)."""
    pages: list[dict[str, Any]] = []
    for key, label, url, counted in SCALE_PAGES:
        times: list[float] = []
        sizes: list[int] = []
        for i in range(2 + SCALE_REQUESTS):
            t = time.perf_counter()
            status, raw, _ = h.request("GET", url)
            elapsed = time.perf_counter() - t
            if status != 200:
                raise BenchError(f"GET {url} answered {status} (expected 200): {raw[:300]!r}")
            if i >= 2:
                times.append(elapsed)
                sizes.append(len(raw))
        lat = summary_ms(times)
        pages.append({"key": key, "label": label, "url": url, "target": counted, "requests": len(times),
                      "p50_ms": lat["p50"], "p95_ms": lat["p95"], "max_ms": lat["max"], "bytes": sizes[-1]})  # fmt: skip
        say(f"scale: {label}: p50 {fmt_ms(lat['p50'])}, p95 {fmt_ms(lat['p95'])} ({sizes[-1]:,} bytes)")
    h.close()
    return pages


def count_queries(stack: BenchStack, username: str, pages: list[dict[str, Any]]) -> None:
    """SQL queries per page: the same views rendered in a separate process with Django's test client."""
    try:
        code = f"USERNAME={username!r}; URLS={[(p['key'], p['url']) for p in pages]!r}\n{QUERY_COUNT_CODE}"
        out = stack.processes.manage("shell", "-c", code, ALLOWED_HOSTS="127.0.0.1,localhost,testserver").stdout
        counts = json.loads(
            next(line for line in out.splitlines() if line.startswith("BENCH_JSON "))[len("BENCH_JSON ") :]
        )
        for page in pages:
            found = counts[page["key"]]
            page.update({"sql_queries": found["queries"], "sql_ms": found["sql_ms"],
                         "slowest_sql_ms": found["slowest_sql_ms"], "slowest_sql": found["slowest_sql"],
                         "in_process_ms_median": found["in_process_ms_median"]})  # fmt: skip
    except (StackError, StopIteration, ValueError, KeyError) as err:
        say(f"scale: could not count SQL queries per page ({str(err).splitlines()[0]}); continuing without")
