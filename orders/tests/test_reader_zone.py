"""Times in the reader's own zone, labelled: the `tz` cookie (set by review/timezone.js) makes
admin's pages and the console's server-rendered times use it; a missing or bad cookie leaves
them in UTC, which the page then names. A real Chromium in another zone sets the cookie itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from orders.models import Order
from orders.tests.factories import make_order as make_any_order
from orders.tests.test_console_browser import PASSWORD, chromium, log_in, running_stack

__all__ = ["chromium"]

# 2026-11-29 21:06 UTC is 16:06 in New York (EST, UTC-5) and 06:06 the next day in Tokyo.
CREATED = datetime(2026, 11, 29, 21, 6, 21, tzinfo=UTC)


@pytest.fixture
def root(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password=PASSWORD))
    return client


def make_order(**fields: Any) -> Any:
    """An order received at CREATED (created_at is set on insert, so it is moved afterwards)."""
    order = make_any_order(**{k: v for k, v in fields.items() if k != "created_at"})
    Order.objects.filter(pk=order.pk).update(created_at=fields.get("created_at", CREATED))
    return order


def admin_order_page(client: Client, order_id: str) -> str:
    return client.get(reverse("admin:orders_order_change", args=[order_id])).content.decode()


def test_admin_shows_times_in_the_zone_the_cookie_names_and_says_which(root: Client) -> None:
    order = make_order(created_at=CREATED)
    root.cookies["tz"] = "America/New_York"
    page = admin_order_page(root, order.id)
    assert "Times in America/New_York" in page
    assert "4:06 p.m." in page and "9:06 p.m." not in page


def test_without_the_cookie_admin_says_its_times_are_utc(root: Client) -> None:
    order = make_order(created_at=CREATED)
    page = admin_order_page(root, order.id)
    assert "Times in UTC" in page and "9:06 p.m." in page


@pytest.mark.parametrize("value", ["Nope/Zone", "../../etc/passwd", "Europe/" + "x" * 80, "<script>", ""])
def test_a_bad_cookie_leaves_the_page_in_utc_without_an_error(root: Client, value: str) -> None:
    order = make_order(created_at=CREATED)
    root.cookies["tz"] = value
    response = root.get(reverse("admin:orders_order_change", args=[order.id]))
    assert response.status_code == 200
    assert "Times in UTC" in response.content.decode()


def test_the_console_renders_its_times_in_the_readers_zone_labelled(root: Client) -> None:
    order = make_order(created_at=CREATED, state="AWAITING_APPROVAL")
    root.cookies["tz"] = "Asia/Tokyo"
    page = root.get(reverse("review:order", args=[order.id])).content.decode()
    assert "2026-11-30 06:06:21 JST" in page


@pytest.mark.browser
def test_chromium_in_new_york_gets_admin_in_new_york_time(
    django_db_setup: None, django_db_blocker: Any, temporal: Any, tmp_path: Any, chromium: Any, transactional_db: None
) -> None:
    with running_stack(django_db_blocker, temporal, tmp_path) as stack:
        User.objects.create_superuser("root", password=PASSWORD)
        order = make_order(created_at=CREATED)
        context = chromium.new_context(timezone_id="America/New_York", locale="en-US")
        page = context.new_page()
        log_in(page, stack, "root")
        url = f"{stack.url}/admin/orders/order/{order.id}/change/"
        page.goto(url)  # the first page sets the cookie
        page.goto(url)
        assert page.locator("#reader-zone").text_content() == "Times in America/New_York"
        context.close()
