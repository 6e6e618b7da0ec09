"""The pages people open most cost a fixed number of SQL queries, whatever the tables hold.

Each test renders a page over a few rows and over many (more events than the timeline shows, more
ended orders than are counted) and asserts the same, exact number of queries both times. Timing is
the benchmark's business (`scripts/bench.py --scale-only`); these tests keep the shape of the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders import selectors
from orders.admin import INLINE_EVENTS
from orders.models import Event, Order
from orders.permissions import REVIEWERS, ensure_groups
from orders.tests.factories import make_orders

pytestmark = pytest.mark.django_db

# Queries per page, counted once and written down so that a change to them is a visible decision.
# Every console page starts with 4: the session, the user, the user's and the group's permissions.
QUEUE_QUERIES = 6  # + the per-state counts (one query) + the page's rows
QUEUE_SEARCH_QUERIES = 7  # + a count of the matching orders, capped
ORDER_PAGE_QUERIES = 9  # + the order (with its claimant and first approver), its payment, its events by type, the latest events, its notes
ADMIN_LIST_QUERIES = 4  # the session, the (super)user, a capped count, the page's rows
ADMIN_CHANGE_QUERIES = 6  # the session, the user, the order, its payments, its latest events, their count


@pytest.fixture
def console() -> Client:
    ensure_groups()
    user = User.objects.create_user("rita", password="pw-for-tests-123")
    user.groups.add(Group.objects.get(name=REVIEWERS))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """Count ended orders only up to 5, so a few rows stand for a table past the cap."""
    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    return 5


def add_events(order: Order, up_to: int, *, first_type: str = "ORDER_RECEIVED") -> None:
    """Events numbered on from the order's last one until it has `up_to`, a second apart:
    `first_type` first, then address changes (the street says which)."""
    have = Event.objects.filter(order=order).count()
    start = timezone.now() - timedelta(hours=2)
    Event.objects.bulk_create(
        Event(
            id=f"{order.id}:{n}",
            order=order,
            type=first_type if n == 0 else "ADDRESS_UPDATED",
            payload_json={"old": {"street": "1 A St"}, "new": {"street": f"{n} B St"}, "actor": "rita", "via": "api"},
            timestamp=start + timedelta(seconds=n),
        )
        for n in range(have, up_to)
    )


def same_queries(
    assert_num: Callable[..., Any], expected: int, client: Client, url: str, grow: Callable[[], None]
) -> tuple[str, str]:
    """Render `url` before and after `grow()`, asserting `expected` queries both times."""
    client.get(url)  # the first request of a session may touch more (last_login and the like)
    with assert_num(expected):
        before = client.get(url)
    grow()
    with assert_num(expected):
        after = client.get(url)
    assert before.status_code == after.status_code == 200
    return before.content.decode(), after.content.decode()


# --- the review queue ----------------------------------------------------------------------------
def test_the_queue_costs_the_same_queries_with_few_or_many_orders(
    console: Client, django_assert_num_queries: Any, small_cap: int
) -> None:
    make_orders(3)

    def grow() -> None:
        make_orders(120)
        make_orders(20, state="COMPLETED")
        make_orders(8, state="CANCELLED")

    same_queries(django_assert_num_queries, QUEUE_QUERIES, console, "/review/", grow)
    with django_assert_num_queries(QUEUE_QUERIES):
        assert console.get("/review/?page=3").status_code == 200


@pytest.mark.parametrize("state", ["all", "COMPLETED", "FAILED"])
def test_every_tab_costs_the_same_queries(
    console: Client, django_assert_num_queries: Any, small_cap: int, state: str
) -> None:
    make_orders(1, state="COMPLETED")
    make_orders(1, state="FAILED")  # an empty list is read with no query at all

    def grow() -> None:
        make_orders(30, state="COMPLETED")
        make_orders(12, state="FAILED")

    same_queries(django_assert_num_queries, QUEUE_QUERIES, console, f"/review/?state={state}", grow)


def test_a_search_costs_one_capped_count_more(console: Client, django_assert_num_queries: Any, small_cap: int) -> None:
    make_orders(2, prefix="find")
    html, _ = same_queries(
        django_assert_num_queries,
        QUEUE_SEARCH_QUERIES,
        console,
        "/review/?state=all&q=find-",
        lambda: make_orders(40, state="COMPLETED", prefix="find"),
    )
    assert "find-" in html


def test_orders_awaiting_approval_are_counted_exactly_past_the_cap(console: Client, small_cap: int) -> None:
    make_orders(small_cap * 3)
    make_orders(small_cap * 2, state="COMPLETED")
    counts = selectors.state_counts()
    assert counts["AWAITING_APPROVAL"] == selectors.Tally(15)
    assert counts["COMPLETED"] == selectors.Tally(small_cap, more=True)
    assert counts["FAILED"] == selectors.Tally(0)
    html = console.get("/review/").content.decode()
    assert 'data-state-count="AWAITING_APPROVAL">\n      Awaiting approval <span class="count">15</span>' in html
    assert 'Completed <span class="count">5+</span>' in html


def test_a_list_past_the_cap_says_so_and_pages_only_as_far(console: Client, small_cap: int, settings: Any) -> None:
    settings.REVIEW_PAGE_SIZE = 2
    make_orders(9, state="COMPLETED")
    html = console.get("/review/?state=COMPLETED").content.decode()
    assert "Page 1 of 3 · 5+ orders" in html
    last = console.get("/review/?state=COMPLETED&page=99").content.decode()  # clamped to the last page
    assert "Page 3 of 3" in last and "Only the first 5 of these orders are listed" in last
    assert last.count('name="order_ids"') == 1


def test_the_all_tab_counts_exactly_below_the_cap(console: Client, small_cap: int, settings: Any) -> None:
    settings.REVIEW_PAGE_SIZE = 2
    make_orders(3)
    make_orders(2, state="FAILED")
    assert "Page 1 of 3 · 5 orders" in console.get("/review/?state=all").content.decode()


# --- the order page ------------------------------------------------------------------------------
def test_the_order_page_costs_the_same_queries_with_3_or_1000_events(
    console: Client, django_assert_num_queries: Any
) -> None:
    order = make_orders(1)[0]
    add_events(order, 3)
    few, many = same_queries(
        django_assert_num_queries,
        ORDER_PAGE_QUERIES,
        console,
        f"/review/orders/{order.id}/",
        lambda: add_events(order, 1000),
    )
    assert few.count("<li data-event-type=") == 3 and "timeline-note" not in few
    assert many.count("<li data-event-type=") == selectors.TIMELINE_LATEST
    assert "Showing the latest 50 of 1000 events (950 earlier ones hidden)" in many
    # The latest are shown, oldest of them first.
    assert many.index("999 B St") > many.index("950 B St") and "949 B St" not in many


def test_all_events_are_shown_on_request_for_the_same_queries(console: Client, django_assert_num_queries: Any) -> None:
    order = make_orders(1)[0]
    add_events(order, 120)
    with django_assert_num_queries(ORDER_PAGE_QUERIES):
        html = console.get(f"/review/orders/{order.id}/?events=all").content.decode()
    assert html.count("<li data-event-type=") == 120
    assert "Show only the latest 50" in html


def test_shipping_progress_counts_events_older_than_the_timeline_shows(console: Client) -> None:
    order = make_orders(1)[0]
    add_events(order, 200, first_type="PAYMENT_CHARGED")
    html = console.get(f"/review/orders/{order.id}/").content.decode()
    assert 'data-event-type="PAYMENT_CHARGED"' not in html  # too old for the timeline ...
    assert '<li class="done">Payment charged</li>' in html  # ... but the progress knows


# --- admin ---------------------------------------------------------------------------------------
CHANGELIST = "/admin/orders/order/"


def test_the_admin_order_list_costs_the_same_queries_with_few_or_many_orders(
    admin_client: Client, django_assert_num_queries: Any, small_cap: int
) -> None:
    make_orders(3)
    few, many = same_queries(
        django_assert_num_queries,
        ADMIN_LIST_QUERIES,
        admin_client,
        CHANGELIST,
        lambda: make_orders(70, state="COMPLETED"),
    )
    assert "3 orders" in few
    # Past the cap: "5+", and no offer to select all of an uncounted list (admin's "question").
    assert "5+ orders" in many and 'class="question' not in many
    for query in (
        "?state__exact=COMPLETED",
        "?created_at__gte=2000-01-01+00:00:00%2B00:00",
        f"?q={Order.objects.first()}",
    ):
        with django_assert_num_queries(ADMIN_LIST_QUERIES):
            assert admin_client.get(CHANGELIST + query).status_code == 200


def test_the_admin_order_list_offers_select_all_below_the_cap(admin_client: Client, small_cap: int) -> None:
    make_orders(4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("orders.admin.GrowingListAdmin.list_per_page", 2)
        html = admin_client.get(CHANGELIST).content.decode()
    assert "Select all 4 orders" in html


def test_the_admin_order_list_is_newest_first_and_filters_by_date(admin_client: Client) -> None:
    old, new = make_orders(2)
    Order.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=60))
    listed = admin_client.get(CHANGELIST).context["cl"].result_list
    assert [o.id for o in listed] == [new.id, old.id]
    since = str(timezone.now() - timedelta(days=7))  # as the filter's "Past 7 days" link has it
    recent = admin_client.get(CHANGELIST, {"created_at__gte": since}).context["cl"].result_list
    assert [o.id for o in recent] == [new.id]


def test_the_admin_change_page_costs_the_same_queries_with_3_or_1000_events(
    admin_client: Client, django_assert_num_queries: Any
) -> None:
    order = make_orders(1)[0]
    add_events(order, 3)
    url = reverse("admin:orders_order_change", args=[quote(order.id)])
    few, many = same_queries(
        django_assert_num_queries, ADMIN_CHANGE_QUERIES, admin_client, url, lambda: add_events(order, 1000)
    )
    assert "999 B St" not in few and "are listed below" not in few
    assert f"the latest {INLINE_EVENTS} are listed below" in many
    assert "999 B St" in many and "979 B St" not in many  # the latest INLINE_EVENTS only
    assert f'href="/admin/orders/event/?q={order.id}"' in many


def test_the_event_list_link_finds_all_of_an_orders_events(admin_client: Client) -> None:
    order, other = make_orders(2)
    add_events(order, 30)
    add_events(other, 2)
    response = admin_client.get("/admin/orders/event/", {"q": order.id})
    assert response.context["cl"].result_count == 30


def test_a_reviewer_sees_the_event_count_without_a_link_they_may_not_follow() -> None:
    ensure_groups()
    staff = User.objects.create_user("rob", is_staff=True)
    staff.groups.add(Group.objects.get(name=REVIEWERS))
    client = Client()
    client.force_login(staff)
    order = make_orders(1)[0]
    add_events(order, 30)
    html = client.get(reverse("admin:orders_order_change", args=[quote(order.id)])).content.decode()
    assert f"30 (the latest {INLINE_EVENTS} are listed below)" in html
    assert "/admin/orders/event/" not in html
    assert client.get("/admin/orders/event/").status_code == 403


# Every secondary index of the tables each order writes to, by the columns it covers. An index costs
# every insert; one that no query uses is only cost. (orders.id also has PostgreSQL's LIKE index:
# the console searches order ids by prefix.)
INDEXES = {
    "events": [["order_id"], ["timestamp"], ["type"]],
    "payments": [["order_id"]],
    "orders": [["created_at", "id"], ["state"], ["state", "created_at"], ["updated_at"]],
}


@pytest.mark.parametrize("table", list(INDEXES))
def test_the_tables_an_order_writes_carry_no_index_that_no_query_uses(table: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    secondary = sorted(
        info["columns"]
        for name, info in constraints.items()
        if info["index"] and not info["primary_key"] and not info["unique"]
        and not (table == "orders" and name.endswith("_like") and info["columns"] == ["id"])
    )  # fmt: skip
    assert secondary == sorted(INDEXES[table])
    assert ("idx_events_order_id" in constraints) == (table == "events")
