"""The review console's server side: who may see and do what, queries per page, one act per form."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.consumers import ReviewConsumer
from orders.models import Event, Order
from orders.permissions import REVIEWERS, ensure_groups
from orders.tests.factories import make_orders, new_order_id, order_body, wait_for_state


def reviewer(username: str = "rita") -> User:
    ensure_groups()
    user = User.objects.create_user(username, password="pw-for-tests-123")
    user.groups.add(Group.objects.get(name=REVIEWERS))
    return user


def viewer(username: str = "vic") -> User:
    user = User.objects.create_user(username)
    user.user_permissions.add(Permission.objects.get(codename="view_order"))
    return user


def console_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_console_needs_a_login(db: None) -> None:
    response = Client().get("/review/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_login_page_signs_a_reviewer_in(db: None) -> None:
    reviewer()
    client = Client()
    assert b"Sign in" in client.get("/accounts/login/").content
    response = client.post("/accounts/login/", {"username": "rita", "password": "pw-for-tests-123", "next": "/review/"})
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert client.get("/review/").status_code == 200


def test_a_user_without_view_permission_gets_403(db: None) -> None:
    assert console_for(User.objects.create_user("nobody")).get("/review/").status_code == 403


def test_queue_lists_awaiting_orders_oldest_first(db: None) -> None:
    make_orders(3, numbered=True)
    Order.objects.filter(id="bulk-00000").update(state="COMPLETED")
    html = console_for(reviewer()).get("/review/").content.decode()
    assert html.index("bulk-00001") < html.index("bulk-00002")
    assert "bulk-00000" not in html


def test_queue_filters_by_state_and_searches_by_id(db: None) -> None:
    make_orders(3, numbered=True)
    Order.objects.filter(id="bulk-00002").update(state="CANCELLED")
    client = console_for(reviewer())
    cancelled = client.get("/review/?state=CANCELLED").content.decode()
    assert "bulk-00002" in cancelled and "bulk-00001" not in cancelled
    found = client.get("/review/?state=all&q=bulk-00001").content.decode()
    assert "bulk-00001" in found and "bulk-00000" not in found


def test_an_unknown_state_filter_is_explained(db: None) -> None:
    response = console_for(reviewer()).get("/review/?state=BOGUS")
    assert response.status_code == 400
    assert b"Unknown state" in response.content


def test_queue_page_runs_a_fixed_number_of_queries(db: None) -> None:
    client = console_for(reviewer())
    make_orders(5, numbered=True)
    client.get("/review/")  # warm the session and permission caches alike for both runs
    with CaptureQueriesContext(connection) as few:
        assert client.get("/review/").status_code == 200
    Order.objects.all().delete()
    make_orders(120, numbered=True)
    with CaptureQueriesContext(connection) as many:
        assert client.get("/review/?page=2").status_code == 200
    assert len(few) == len(many)


def test_order_page_runs_a_fixed_number_of_queries(db: None) -> None:
    client = console_for(reviewer())
    order = make_orders(1, numbered=True)[0]
    with CaptureQueriesContext(connection) as before:
        client.get(f"/review/orders/{order.id}/")
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            id=f"{order.id}:X:{n}",
            order=order,
            type="ADDRESS_UPDATED",
            payload_json={"old": {}, "new": {}},
            timestamp=now,
        )
        for n in range(40)
    )
    with CaptureQueriesContext(connection) as after:
        client.get(f"/review/orders/{order.id}/")
    assert len(before) == len(after)


def test_the_timeline_shows_when_review_is_due_in_words(db: None) -> None:
    client = console_for(reviewer())
    order = make_orders(1, numbered=True)[0]
    Event.objects.create(
        id=f"{order.id}:ORDER_VALIDATED",
        order=order,
        type="ORDER_VALIDATED",
        payload_json={"approval_deadline": "2026-11-27T13:45:12.345678+00:00"},
        timestamp=timezone.now(),
    )
    page = client.get(f"/review/orders/{order.id}/").content.decode()
    assert 'id="timeline"' in page
    assert "review due by 2026-11-27 13:45:12 UTC" in page
    assert "2026-11-27T13:45:12" not in page.split('id="timeline"', 1)[1]


@pytest.mark.parametrize("odd", ["2026-11-27T13:45:12", "2026-13-45T99:99:99+00:00", "soon", None])
def test_a_deadline_that_is_no_aware_date_is_shown_as_stored(odd: Any) -> None:
    from orders.templatetags.console import event_summary

    assert event_summary({"approval_deadline": odd}) == f"review due by {odd}"


def test_a_viewer_sees_no_action_buttons(db: None) -> None:
    order = make_orders(1, numbered=True)[0]
    client = console_for(viewer())
    page = client.get(f"/review/orders/{order.id}/").content.decode()
    assert ">Approve<" not in page and "Cancel order" not in page and "Edit address" not in page
    queue = client.get("/review/").content.decode()
    assert "Approve selected" not in queue


@pytest.mark.parametrize("action", ["approve", "cancel", "address"])
def test_a_forged_post_without_the_permission_is_403(db: None, action: str) -> None:
    order = make_orders(1, numbered=True)[0]
    client = console_for(viewer())
    response = client.post(f"/review/orders/{order.id}/{action}/", {"street": "x", "city": "y", "zip": "1"})
    assert response.status_code == 403
    bulk = client.post("/review/bulk/", {"action": "approve", "order_ids": [order.id]})
    assert bulk.status_code == 403
    assert not Event.objects.exists()


def test_console_forms_need_a_csrf_token(db: None) -> None:
    order = make_orders(1, numbered=True)[0]
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer())
    assert client.post(f"/review/orders/{order.id}/approve/").status_code == 403


def test_approve_from_the_order_page_records_the_reviewer(workers: Any, api: Client) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    wait_for_state(order_id, "AWAITING_APPROVAL")
    client = console_for(reviewer())
    response = client.post(f"/review/orders/{order_id}/approve/", {"nonce": "n-1"}, follow=True)
    assert b"Approved" in response.content
    wait_for_state(order_id, "COMPLETED")
    approved = Event.objects.get(order_id=order_id, type="ORDER_APPROVED").payload_json
    assert approved == {"actor": "rita", "via": "console"}
    timeline = client.get(f"/review/orders/{order_id}/").content.decode()
    assert "by <bdi>rita</bdi> via console" in timeline  # the name isolated: see test_bidi_text.py


def test_a_double_submitted_form_acts_once_and_shows_the_first_result(workers: Any, api: Client) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    wait_for_state(order_id, "AWAITING_APPROVAL")
    client = console_for(reviewer())
    first = client.post(f"/review/orders/{order_id}/approve/", {"nonce": "same"}, follow=True)
    second = client.post(f"/review/orders/{order_id}/approve/", {"nonce": "same"}, follow=True)
    assert b"Approved" in first.content
    assert b"Approved" in second.content  # the first result, not "already approved"
    wait_for_state(order_id, "COMPLETED")
    assert Event.objects.filter(order_id=order_id, type="ORDER_APPROVED").count() == 1


def test_a_refused_action_is_shown_as_refused(workers: Any, api: Client) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    api.post(f"/orders/{order_id}/signals/cancel")
    wait_for_state(order_id, "CANCELLED")
    response = console_for(reviewer()).post(f"/review/orders/{order_id}/approve/", {"nonce": "n-2"}, follow=True)
    assert b"Not done" in response.content and b"ended" in response.content
    assert not Event.objects.filter(order_id=order_id, type="ORDER_APPROVED").exists()


def test_a_bad_address_shows_field_errors_and_changes_nothing(workers: Any, api: Client) -> None:
    order_id = new_order_id()
    api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
    wait_for_state(order_id, "AWAITING_APPROVAL")
    response = console_for(reviewer()).post(
        f"/review/orders/{order_id}/address/", {"street": "1 New St", "city": "LA", "zip": ""}
    )
    assert response.status_code == 400
    assert b"field-error" in response.content
    assert Order.objects.get(id=order_id).address_json["street"] == "123 Main St"
    assert not Event.objects.filter(order_id=order_id, type="ADDRESS_UPDATED").exists()


def test_bulk_approve_reports_each_order(workers: Any, api: Client) -> None:
    waiting = [new_order_id(), new_order_id()]
    for order_id in waiting:
        api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json")
        wait_for_state(order_id, "AWAITING_APPROVAL")
    ended = new_order_id()
    api.post(f"/orders/{ended}/start", order_body(), content_type="application/json")
    api.post(f"/orders/{ended}/signals/cancel")
    wait_for_state(ended, "CANCELLED")
    client = console_for(reviewer())
    page = client.post(
        "/review/bulk/", {"action": "approve", "order_ids": [*waiting, ended], "nonce": "b-1"}, follow=True
    )
    html = page.content.decode()
    assert html.count(">Approved<") == 2
    assert html.count(">Refused<") == 1
    for order_id in waiting:
        wait_for_state(order_id, "COMPLETED")


def test_the_websocket_refuses_anonymous_users(db: None) -> None:
    async def attempt() -> tuple[bool, Any]:
        communicator = WebsocketCommunicator(ReviewConsumer.as_asgi(), "/ws/review/")
        communicator.scope["user"] = AnonymousUser()
        connected, code = await communicator.connect()
        await communicator.disconnect()
        return connected, code

    connected, code = async_to_sync(attempt)()
    assert not connected
    assert code == 4403


def test_the_websocket_pushes_order_changes_to_reviewers(transactional_db: None, settings: Any) -> None:
    settings.REVIEW_FEED_INTERVAL_SECONDS = 0.05
    user = reviewer()

    async def listen() -> dict[str, Any]:
        from asgiref.sync import sync_to_async

        communicator = WebsocketCommunicator(ReviewConsumer.as_asgi(), "/ws/review/")
        communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        assert connected
        await sync_to_async(make_orders)(1, numbered=True)
        message = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return message

    message = async_to_sync(listen)()
    assert message["order_id"] == "bulk-00000"
    assert message["state"] == "AWAITING_APPROVAL"
