"""An action that Temporal did not answer in time is "not confirmed", never "not done": its Update
may still be applied once a worker is back. The console and admin say so, with a link to the
order, and the same console submission sent again carries the first attempt's Update id, so it is
answered with that Update's outcome instead of being applied twice.

Each test stops this test's real workers, acts through the console or admin (Temporal then keeps the
Update waiting), starts the workers again and watches what the workflow did with it.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from orders.models import Event, Order, ProviderCharge
from orders.permissions import REVIEWERS, ensure_groups
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until

NEW_ADDRESS = {"street": "456 New Ave", "city": "LA", "zip": "90001"}
UNANSWERED_AFTER_SECONDS = 2  # how long an action waits for a stopped worker's verdict here


@pytest.fixture
def reviewer(transactional_db: None) -> User:
    ensure_groups()
    user = User.objects.create_user("rita", is_staff=True)
    user.groups.add(Group.objects.get(name=REVIEWERS))
    return user


@pytest.fixture
def console(reviewer: User) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def awaiting(api: Client) -> str:
    order_id = new_order_id()
    assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    wait_for_state(order_id, "AWAITING_APPROVAL")
    return order_id


def awaiting_with_workers_stopped(api: Client, workers: Any, settings: Any, count: int = 1) -> list[str]:
    order_ids = [awaiting(api) for _ in range(count)]
    workers.stop()
    settings.TEMPORAL_UPDATE_TIMEOUT_SECONDS = UNANSWERED_AFTER_SECONDS
    return order_ids


def back(workers: Any, settings: Any) -> None:
    workers.start()
    settings.TEMPORAL_UPDATE_TIMEOUT_SECONDS = 20


def form_nonce(html: str, form: str) -> str:
    match = re.search(rf'name="nonce" value="([0-9a-f]+-{form})"', html)
    assert match, f"no {form} form on the page"
    return match.group(1)


def events(order_id: str, event_type: str) -> int:
    return Event.objects.filter(order_id=order_id, type=event_type).count()


def assert_not_confirmed(html: str, order_url: str) -> None:
    assert "Not confirmed" in html and "may still be" in html, html
    assert f'href="{order_url}"' in html
    assert "Not done" not in html and "Refused" not in html and "not changed" not in html


def test_an_approval_not_confirmed_is_applied_later_and_the_same_form_sent_again_gets_its_outcome(
    api: Client, workers: Any, settings: Any, console: Client
) -> None:
    [order_id] = awaiting_with_workers_stopped(api, workers, settings)
    order_url = f"/review/orders/{order_id}/"
    nonce = form_nonce(console.get(order_url).content.decode(), "approve")

    first = console.post(f"{order_url}approve/", {"nonce": nonce}, follow=True).content.decode()

    assert_not_confirmed(first, order_url)
    assert form_nonce(first, "approve") == nonce  # pressing Approve again is the same submission
    back(workers, settings)
    wait_for_state(order_id, "COMPLETED")  # Temporal kept the Update: the approval was applied after all
    again = console.post(f"{order_url}approve/", {"nonce": nonce}, follow=True).content.decode()
    assert f"Approved: {order_id}." in again  # the first attempt's outcome, not "already approved"
    assert events(order_id, "ORDER_APPROVED") == events(order_id, "PAYMENT_CHARGED") == 1
    payment_id = Order.objects.get(id=order_id).payment_id
    assert ProviderCharge.objects.filter(idempotency_key=payment_id, kind="charge").count() == 1


def test_an_address_change_not_confirmed_and_sent_again_is_applied_once(
    api: Client, workers: Any, settings: Any, console: Client
) -> None:
    [order_id] = awaiting_with_workers_stopped(api, workers, settings)
    order_url = f"/review/orders/{order_id}/"
    form = {"nonce": form_nonce(console.get(order_url).content.decode(), "address"), **NEW_ADDRESS}

    first = console.post(f"{order_url}address/", form, follow=True).content.decode()

    assert_not_confirmed(first, order_url)
    back(workers, settings)
    again = console.post(f"{order_url}address/", form, follow=True).content.decode()
    assert f"Address updated: {order_id}." in again
    assert form_nonce(again, "address") != form["nonce"]  # a confirmed submission is done with
    wait_until(lambda: Order.objects.get(id=order_id).address_json == NEW_ADDRESS, what="the new address")
    assert events(order_id, "ADDRESS_UPDATED") == 1


def test_a_bulk_approval_not_confirmed_offers_to_ask_again_with_the_same_submission(
    api: Client, workers: Any, settings: Any, console: Client
) -> None:
    order_ids = awaiting_with_workers_stopped(api, workers, settings, count=2)
    submission = {"action": "approve", "order_ids": order_ids, "nonce": "bulk-form-1"}

    first = console.post("/review/bulk/", submission, follow=True).content.decode()

    assert first.count(">Not confirmed<") == 2 and "may still be approved" in first
    assert ">Refused<" not in first
    for order_id in order_ids:
        assert f'href="/review/orders/{order_id}/"' in first
        assert f'name="order_ids" value="{order_id}"' in first.split('class="ask-again"')[1]
    assert 'name="nonce" value="bulk-form-1"' in first.split('class="ask-again"')[1]
    back(workers, settings)
    again = console.post("/review/bulk/", submission, follow=True).content.decode()
    assert again.count(">Approved<") == 2 and "Not confirmed" not in again and 'class="ask-again"' not in again
    for order_id in order_ids:
        wait_for_state(order_id, "COMPLETED")
        assert events(order_id, "ORDER_APPROVED") == 1


def test_admin_says_an_unanswered_approval_or_address_change_is_not_confirmed(
    api: Client, workers: Any, settings: Any, reviewer: User
) -> None:
    from orders.tests.test_admin import change_form_data, change_url, messages_of

    approved, readdressed = awaiting_with_workers_stopped(api, workers, settings, count=2)
    client = Client()
    client.force_login(reviewer)

    bulk = client.post(
        "/admin/orders/order/", {"action": "approve_selected", "_selected_action": [approved]}, follow=True
    )
    summary, approval = messages_of(bulk)
    assert summary == "Approved 0 of 1 orders; 1 not confirmed."
    assert approval.startswith("Not confirmed: the approval of") and "may still be applied" in approval
    assert f'href="{change_url(approved)}"' in approval
    saved = client.post(change_url(readdressed), change_form_data(client, readdressed, **NEW_ADDRESS), follow=True)
    [address] = messages_of(saved)
    assert address.startswith("Not confirmed: the address change of") and "may still be applied" in address
    assert f'href="{change_url(readdressed)}"' in address

    back(workers, settings)
    wait_for_state(approved, "COMPLETED")  # both were applied once a worker took them
    wait_until(lambda: Order.objects.get(id=readdressed).address_json == NEW_ADDRESS, what="the new address")
