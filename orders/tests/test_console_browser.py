"""The console in a real Chromium (Debian's, driven by Playwright) against a real stack.

The web app (uvicorn, ASGI with websockets) and the workers (`manage.py runworker`) run as their
own processes on the test database, as they do in production; the browser only sees HTTP.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import scripts.stack
from orders.tests.factories import new_order_id, order_body, wait_for_state

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "browser-test-pass-123"


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


@dataclass
class Stack:
    url: str
    processes: scripts.stack.Stack  # the web app and a worker on the test database

    def api(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def start_order(self, token: str, **overrides: Any) -> str:
        order_id = new_order_id()
        status, body = self.api("POST", f"/orders/{order_id}/start", token, order_body(**overrides))
        assert status == 201, body
        return order_id


@contextmanager
def running_stack(django_db_blocker: Any, temporal: Any, log_dir: Path, **extra: Any) -> Iterator[Stack]:
    """The web app and a worker on the test database, with `extra` settings (allow-listed names)."""
    from lifecycle.tests.test_runworker import database_url

    _require_chromium()
    with django_db_blocker.unblock():
        db_url = database_url()
    suffix = uuid.uuid4().hex[:8]
    settings = {
        "DATABASE_URL": db_url,
        "TEMPORAL_ADDRESS": temporal.address,
        "ORDER_TASK_QUEUE": f"order-tq-{suffix}",
        "SHIPPING_TASK_QUEUE": f"shipping-tq-{suffix}",
        "REVIEW_FEED_INTERVAL_SECONDS": 0.1,
        "TEMPORAL_UI_URL": "http://localhost:8233",
        "LOG_LEVEL": "INFO",
        **extra,
    }
    processes = scripts.stack.Stack(settings, log_dir=log_dir, grace=20)
    port = scripts.stack.free_port()
    try:
        web = processes.start_web(port)
        worker = processes.start_worker()
        scripts.stack.wait_for_web(web, port, seconds=30)
        scripts.stack.wait_for_worker(worker, seconds=30)
        yield Stack(url=f"http://127.0.0.1:{port}", processes=processes)
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def stack(django_db_setup: None, django_db_blocker: Any, temporal: Any, tmp_path_factory: Any) -> Iterator[Stack]:
    with running_stack(django_db_blocker, temporal, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    _require_chromium()
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # plain synchronous code all the same.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 820})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def people(stack: Stack, transactional_db: None) -> dict[str, Any]:
    """A reviewer, a viewer without action permissions, a staff member, and an API token."""
    from django.contrib.auth.models import Group, Permission, User

    from orders.permissions import API_CLIENTS, REVIEWERS, ensure_groups
    from orders.tokens import token_create

    ensure_groups()
    rita = User.objects.create_user("rita", password=PASSWORD, first_name="Rita")
    rita.groups.add(Group.objects.get(name=REVIEWERS))
    vic = User.objects.create_user("vic", password=PASSWORD)
    vic.user_permissions.add(Permission.objects.get(codename="view_order"))
    sam = User.objects.create_user("sam", password=PASSWORD, is_staff=True)
    sam.groups.add(Group.objects.get(name=REVIEWERS))
    client = User.objects.create_user("shop")
    client.groups.add(Group.objects.get(name=API_CLIENTS))
    return {"token": token_create(user=client)}


def log_in(page: Any, stack: Stack, username: str, next_path: str = "/review/") -> None:
    page.goto(f"{stack.url}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def mark_no_reload(page: Any) -> None:
    page.evaluate("window.__stillTheSamePage = true")


def still_the_same_page(page: Any) -> bool:
    return bool(page.evaluate("window.__stillTheSamePage === true"))


def screenshot(page: Any, name: str) -> None:
    """Refresh the README's pictures with UPDATE_SCREENSHOTS=1; otherwise keep them out of the tree."""
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") else Path(os.environ.get("TMPDIR", "/tmp"))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=False)


def test_a_reviewer_sees_an_order_arrive_approves_it_and_watches_it_complete(
    stack: Stack, people: dict[str, Any], browser_page: Any
) -> None:
    page = browser_page
    log_in(page, stack, "rita")
    page.wait_for_selector('#live-status[data-state="open"]')
    mark_no_reload(page)

    earlier = [
        stack.start_order(people["token"], items=[{"name": name, "price": price, "quantity": qty}])
        for name, price, qty in (("Espresso beans 1 kg", "24.90", 2), ("Pour-over kettle", "59.00", 1))
    ]
    order_id = stack.start_order(people["token"])
    page.wait_for_selector(f'tr[data-order-id="{order_id}"]')
    for other in earlier:
        page.wait_for_selector(f'tr[data-order-id="{other}"]')
    assert still_the_same_page(page), "the queue reloaded instead of updating in place"
    page.wait_for_function(
        "document.querySelector('.countdown') && document.querySelector('.countdown').textContent.includes('left')"
    )
    screenshot(page, "review-queue.png")

    page.click(f'a.order-link:text("{order_id}")')
    page.wait_for_selector("#timeline")
    page.click("button:text-is('Approve')")
    page.wait_for_selector(".message.success")
    mark_no_reload(page)
    page.wait_for_selector('#order-state[data-state="COMPLETED"]', timeout=30_000)
    assert still_the_same_page(page), "the order page reloaded instead of updating in place"
    page.wait_for_selector('#timeline li[data-event-type="ORDER_COMPLETED"]')
    assert "by rita via console" in page.inner_text("#timeline")
    screenshot(page, "order-page.png")


def test_bulk_approve_from_the_queue_reports_each_order(
    stack: Stack, people: dict[str, Any], browser_page: Any
) -> None:
    page = browser_page
    chosen = [stack.start_order(people["token"]) for _ in range(2)]
    left_alone = stack.start_order(people["token"])
    for order_id in [*chosen, left_alone]:
        wait_for_state(order_id, "AWAITING_APPROVAL")
    log_in(page, stack, "rita")
    for order_id in chosen:
        page.check(f'input[name="order_ids"][value="{order_id}"]')
    assert page.inner_text("#selection-count") == "2 selected"
    page.click("button:text-is('Approve selected')")
    page.wait_for_selector(".results")
    rows = page.locator(".results tbody tr")
    assert rows.count() == 2
    assert page.locator(".results .verdict.applied").count() == 2
    for order_id in chosen:
        wait_for_state(order_id, "COMPLETED")
    from orders.models import Order

    assert Order.objects.get(id=left_alone).state == "AWAITING_APPROVAL"


def test_a_user_without_the_permission_sees_no_approve_button(
    stack: Stack, people: dict[str, Any], browser_page: Any
) -> None:
    page = browser_page
    order_id = stack.start_order(people["token"])
    wait_for_state(order_id, "AWAITING_APPROVAL")
    log_in(page, stack, "vic")
    page.wait_for_selector(f'tr[data-order-id="{order_id}"]')
    assert page.locator("button:text-is('Approve selected')").count() == 0
    page.goto(f"{stack.url}/review/orders/{order_id}/")
    page.wait_for_selector("#timeline")
    assert page.locator("button:text-is('Approve')").count() == 0
    assert page.locator("text=No action is available to you").count() == 1


def test_cancel_asks_for_confirmation_first(stack: Stack, people: dict[str, Any], browser_page: Any) -> None:
    page = browser_page
    order_id = stack.start_order(people["token"])
    wait_for_state(order_id, "AWAITING_APPROVAL")
    log_in(page, stack, "rita", f"/review/orders/{order_id}/")
    page.click("[data-confirm='cancel-dialog']:text-is('Cancel order…')")
    page.wait_for_selector("#cancel-dialog[open]")
    page.click("#cancel-dialog button:text-is('Keep the order')")
    from orders.models import Order

    assert Order.objects.get(id=order_id).state == "AWAITING_APPROVAL"
    page.click("[data-confirm='cancel-dialog']:text-is('Cancel order…')")
    page.select_option("#cancel-code", "out_of_stock")
    page.click("#cancel-dialog button:text-is('Yes, cancel the order')")
    page.wait_for_selector(".message.success")
    page.wait_for_selector('#order-state[data-state="CANCELLED"]')
    assert "Out of stock" in page.inner_text("#timeline")


def test_staff_edit_an_address_in_admin_and_the_timeline_shows_who(
    stack: Stack, people: dict[str, Any], browser_page: Any
) -> None:
    from orders.models import Event, Order

    page = browser_page
    order_id = stack.start_order(people["token"])
    wait_for_state(order_id, "AWAITING_APPROVAL")
    log_in(page, stack, "sam", "/admin/")
    page.goto(f"{stack.url}/admin/orders/order/{order_id}/change/")
    page.fill("input[name='street']", "77 Harbour Road")
    page.fill("input[name='city']", "Boston")
    page.fill("input[name='zip']", "02110")
    page.click("input[name='_continue'], input[name='_save']")
    page.wait_for_selector(".messagelist .success")
    assert Order.objects.get(id=order_id).address_json["street"] == "77 Harbour Road"
    updated = Event.objects.get(order_id=order_id, type="ADDRESS_UPDATED").payload_json
    assert (updated["actor"], updated["via"]) == ("sam", "admin")
    page.goto(f"{stack.url}/review/orders/{order_id}/")
    timeline = page.inner_text("#timeline")
    assert "77 Harbour Road" in timeline and "by sam via admin" in timeline


def test_the_console_fits_a_tablet(stack: Stack, people: dict[str, Any], chromium: Any) -> None:
    context = chromium.new_context(viewport={"width": 820, "height": 1180})
    page = context.new_page()
    try:
        order_id = stack.start_order(people["token"])
        log_in(page, stack, "rita", f"/review/orders/{order_id}/")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 820, f"the page scrolls sideways at tablet width ({width}px)"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.tagName") in ("A", "BUTTON", "INPUT", "SUMMARY")
    finally:
        context.close()
