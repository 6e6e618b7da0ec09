"""Admin for a team's review: cancel with a reason (the action's page and the order's button),
approve from the order's page, links out, and states by their human names."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from orders.models import Event, Order
from orders.tests.factories import wait_for_state
from orders.tests.test_admin import (
    CHANGELIST,
    cancel_order,
    change_url,
    login,
    make_order,
    messages_of,
    reviewer,
    staff_with,
    start_order,
    superuser,
)

__all__ = ["reviewer", "superuser"]  # fixtures shared with test_admin


def decide_url(order_id: str, action: str) -> str:
    return f"{change_url(order_id)}../decide/{action}/".replace("/change/../", "/")


def cancelled_reason(order_id: str) -> str:
    return str(Event.objects.get(order_id=order_id, type="ORDER_CANCELLED").payload_json.get("reason", ""))


# --- the cancel action asks why --------------------------------------------------------------------
def test_the_cancel_action_asks_for_a_reason_then_cancels_with_it(api: Client, workers: Any, reviewer: User) -> None:
    first, second = start_order(api), start_order(api)
    client = login(reviewer)
    selection = {"action": "cancel_selected", "_selected_action": [first, second]}

    page = client.post(CHANGELIST, selection)
    assert page.status_code == 200
    assert b"csrfmiddlewaretoken" in page.content
    assert b'name="reason"' in page.content
    assert first.encode() in page.content and second.encode() in page.content
    assert Order.objects.filter(state="CANCELLED").count() == 0

    response = client.post(CHANGELIST, selection | {"reason": "duplicate order"}, follow=True)
    assert messages_of(response)[0].startswith("Cancelled 2 of 2 orders")
    for order_id in (first, second):
        wait_for_state(order_id, "CANCELLED")
        assert cancelled_reason(order_id) == "duplicate order"
        assert Event.objects.get(order_id=order_id, type="ORDER_CANCELLED").payload_json["via"] == "admin"


def test_a_reason_over_500_characters_is_a_form_error_and_cancels_nothing(reviewer: User) -> None:
    order = make_order(state="AWAITING_APPROVAL")
    response = login(reviewer).post(
        CHANGELIST, {"action": "cancel_selected", "_selected_action": [order.id], "reason": "x" * 501}
    )
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    assert Order.objects.get(id=order.id).state == "AWAITING_APPROVAL"


# --- the order's page -------------------------------------------------------------------------------
def test_the_order_page_links_to_the_console_and_the_temporal_ui_and_offers_the_decisions(reviewer: User) -> None:
    order = make_order(state="AWAITING_APPROVAL")
    page = login(reviewer).get(change_url(order.id))
    html = page.content.decode()
    assert f'href="/review/orders/{order.id}/"' in html
    assert f"/workflows/{order.id}" in html
    assert [d["action"] for d in page.context["decisions"]] == ["approve", "cancel"]
    assert decide_url(order.id, "approve") in html
    assert "Approve this order" in html and "Cancel this order" in html


def test_a_viewer_is_offered_no_decision_and_may_not_post_one(transactional_db: None) -> None:
    order = make_order(state="AWAITING_APPROVAL")
    client = login(staff_with("view_order", username="viewer"))
    assert client.get(change_url(order.id)).context["decisions"] == []
    assert client.post(decide_url(order.id, "approve")).status_code == 403
    assert client.post(decide_url(order.id, "cancel"), {"reason": "no"}).status_code == 403
    assert Order.objects.get(id=order.id).state == "AWAITING_APPROVAL"


def test_a_decision_must_be_posted(reviewer: User) -> None:
    order = make_order(state="AWAITING_APPROVAL")
    assert login(reviewer).get(decide_url(order.id, "approve")).status_code == 405


def test_approve_from_the_order_page_goes_through_the_workflow(api: Client, workers: Any, reviewer: User) -> None:
    order_id = start_order(api)
    response = login(reviewer).post(decide_url(order_id, "approve"), follow=True)
    assert f"{order_id}: approved." in messages_of(response)
    wait_for_state(order_id, "COMPLETED")
    approved = Event.objects.get(order_id=order_id, type="ORDER_APPROVED").payload_json
    assert (approved["actor"], approved["via"]) == ("rita", "admin")


def test_cancel_from_the_order_page_needs_a_reason_and_records_it(api: Client, workers: Any, reviewer: User) -> None:
    order_id = start_order(api)
    client = login(reviewer)
    refused = client.post(decide_url(order_id, "cancel"), {"reason": " "}, follow=True)
    assert messages_of(refused)[0].startswith("Nothing was sent")
    assert Order.objects.get(id=order_id).state == "AWAITING_APPROVAL"
    response = client.post(decide_url(order_id, "cancel"), {"reason": "customer called"}, follow=True)
    assert f"{order_id}: cancelled." in messages_of(response)
    wait_for_state(order_id, "CANCELLED")
    assert cancelled_reason(order_id) == "customer called"


def test_a_decision_the_workflow_refuses_says_why(api: Client, workers: Any, reviewer: User) -> None:
    order_id = start_order(api)
    cancel_order(api, order_id)
    response = login(reviewer).post(decide_url(order_id, "approve"), follow=True)
    [message] = messages_of(response)
    assert message.startswith(f"{order_id}: not approved:")
    assert "ended" in message


# --- states by their names ---------------------------------------------------------------------------
def test_states_show_their_human_names(superuser: User) -> None:
    order = make_order(state="AWAITING_APPROVAL")
    client = login(superuser)
    listing = client.get(CHANGELIST).content.decode()
    assert "Awaiting approval" in listing
    assert ">AWAITING_APPROVAL<" not in listing
    assert "Awaiting approval" in client.get(change_url(order.id)).content.decode()
