"""Text that people typed is isolated wherever it is shown, so that its direction cannot reorder
what surrounds it: an item named "\\u202eRTL-override gnp.exe" must not turn its price "2.00" into
"00.2", nor a city that starts with U+202E the zip code after it.

The markup test finds every bidi control character on each page outside a `<bdi>`; the browser
tests ask Chromium where it drew each character of the price and the zip code.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from itertools import pairwise
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.utils import timezone

from orders.models import Event, Order
from orders.permissions import REVIEWERS, ensure_groups
from orders.tests.factories import make_order
from orders.tests.test_console_browser import browser_page, chromium  # noqa: F401 (fixtures)

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: everything after it, to the end of its paragraph or isolate, is reversed
# The controls that change the direction of the text around them.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def bidi_order(**fields: Any) -> Order:
    """An order whose every user-typed text starts with a right-to-left override."""
    order = make_order(
        items_json=[
            {"name": f"{RLO}RTL-override gnp.exe", "price": "2.00", "quantity": 1},
            {"name": "Gadget", "price": "3.50", "quantity": 1},
        ],
        address_json={
            "street": f"{RLO}1 Main St",
            "city": f"{RLO}Springfield",
            "zip": "12345",
            "note": f"{RLO}back",
            "floor": "3",
        },
        **fields,
    )
    now = timezone.now()
    for n, (kind, payload) in enumerate(
        [
            ("ORDER_RECEIVED", {"total": "5.50"}),
            (
                "ADDRESS_UPDATED",
                {
                    "old": {"street": "9 Elm St", "city": f"{RLO}Shelbyville", "zip": "11111"},
                    "new": order.address_json,
                    "actor": f"{RLO}eve",
                    "via": "console",
                },
            ),
            ("CARRIER_DISPATCHED", {"address": order.address_json, "tracking_number": f"{RLO}TRK 42"}),
            ("ORDER_CANCELLED", {"reason": f"{RLO}changed my mind", "actor": f"{RLO}bob", "via": "api"}),
        ]
    ):
        Event.objects.create(id=f"{order.id}:{n}", order=order, type=kind, payload_json=payload, timestamp=now)
    return order


class Unisolated(HTMLParser):
    """Collects the text on a page that holds a bidi control and is not inside a `<bdi>`."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if BIDI_CONTROLS.search(data) and "bdi" not in self.open:
            self.found.append(f"<{'><'.join(self.open[-3:])}> {data.strip()!r}")


def unisolated(html: str) -> list[str]:
    parser = Unisolated()
    parser.feed(html)
    return parser.found


def reviewer(*, staff: bool = False) -> User:
    ensure_groups()
    user = User.objects.create_user("rita", is_staff=staff)
    user.groups.add(Group.objects.get(name=REVIEWERS))
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_user_text_on_every_console_and_admin_page_is_isolated() -> None:
    order = bidi_order()
    console = logged_in(reviewer())
    viewer = User.objects.create_user("vic", is_staff=True)  # sees the address as text, not as inputs
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_order", "view_event"]))
    pages = {
        "console order page": console.get(f"/review/orders/{order.id}/"),
        "console order page, live part": console.get(f"/review/orders/{order.id}/?partial=1"),
        "console queue": console.get("/review/"),
        "console search": console.get("/review/", {"state": "all", "q": f"{RLO}none"}),
        "admin order page": logged_in(User.objects.create_superuser("root")).get(
            f"/admin/orders/order/{order.id}/change/"
        ),
        "admin order page, read only": logged_in(viewer).get(f"/admin/orders/order/{order.id}/change/"),
        "admin event list": logged_in(viewer).get("/admin/orders/event/"),
    }
    found = {}
    for name, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200 and RLO in html, name
        found[name] = unisolated(html)
    assert found == {name: [] for name in pages}


@pytest.mark.django_db
def test_the_lockout_page_isolates_the_user_name_it_repeats() -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": f"{RLO}mallory", "password": "wrong"})
    locked = client.post("/accounts/login/", {"username": f"{RLO}mallory", "password": "wrong"})
    assert locked.status_code == 429 and RLO in locked.content.decode()
    assert unisolated(locked.content.decode()) == []


# --- in Chromium -----------------------------------------------------------------------------------
# Where Chromium drew each character of the first text node under `selector` that contains `needle`.
CHARACTER_X = """([selector, needle]) => {
  const root = document.querySelector(selector);
  if (!root) return null;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(needle);
    if (at < 0) continue;
    return Array.from(needle, (_, i) => {
      const range = document.createRange();
      range.setStart(node, at + i);
      range.setEnd(node, at + i + 1);
      return range.getBoundingClientRect().left;
    });
  }
  return null;
}"""


def reads_left_to_right(page: Any, selector: str, needle: str) -> bool:
    xs = page.evaluate(CHARACTER_X, [selector, needle])
    assert xs is not None, f"no {needle!r} under {selector}"
    return all(a < b for a, b in pairwise(xs))


def open_as(page: Any, live_server: Any, user: User, path: str) -> None:
    client = logged_in(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page.goto(live_server.url + path)


@pytest.mark.browser
def test_chromium_shows_the_price_after_an_rtl_item_name_in_order_in_admin(
    live_server: Any,
    browser_page: Any,  # noqa: F811 (the fixture)
) -> None:
    order = bidi_order()
    open_as(browser_page, live_server, User.objects.create_superuser("root"), f"/admin/orders/order/{order.id}/change/")
    assert reads_left_to_right(browser_page, ".field-items li", "2.00")
    assert reads_left_to_right(browser_page, ".field-other_address_fields .readonly", "floor")
    browser_page.goto(live_server.url + "/admin/orders/event/")
    assert reads_left_to_right(browser_page, "#result_list", "via console")


@pytest.mark.browser
def test_chromium_shows_the_zip_after_an_rtl_city_in_order_in_the_console(
    live_server: Any,
    browser_page: Any,  # noqa: F811 (the fixture)
) -> None:
    order = bidi_order()
    open_as(browser_page, live_server, reviewer(), f"/review/orders/{order.id}/")
    assert reads_left_to_right(browser_page, "#order-address", "12345")
    assert reads_left_to_right(browser_page, '#timeline li[data-event-type="ADDRESS_UPDATED"] .event-detail', "12345")
    assert reads_left_to_right(browser_page, '#timeline li[data-event-type="ADDRESS_UPDATED"] .actor', "via console")
    browser_page.goto(live_server.url + "/review/")
    row = f'tr[data-order-id="{order.id}"]'
    assert reads_left_to_right(browser_page, f"{row} td.wide", "12345")
    assert reads_left_to_right(browser_page, f"{row} td:nth-child(3)", "Gadget")
