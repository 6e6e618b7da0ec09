"""A team's review end to end: the API, real workers on the Temporal dev server, the database.

Claims (409 naming the claimant, cancel never blocked, release, a supervisor's takeover),
four-eyes approval (the same user twice, two users and one charge, the starter), a cancellation's
reason, and the review fields of the status. DB-free workflow tests: lifecycle/tests/test_team_review.py;
claim expiry and escalation on the time-skipping server: test_escalation.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from lifecycle.tests.test_order_workflow import record_history
from orders.models import Event, Order, ProviderCharge
from orders.permissions import REVIEWERS, SUPERVISORS
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until
from orders.tokens import token_create

BIG = [{"name": "Piano", "price": "1200.00", "quantity": 1}]


def member(name: str, group: str) -> Client:
    """A client with a token of a new user `name` in `group`."""
    user = User.objects.create_user(name, email=f"{name}@example.com")
    user.groups.add(Group.objects.get(name=group))
    return Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user)}")


@pytest.fixture
def rita(api_user: Any) -> Client:
    return member("rita", REVIEWERS)


@pytest.fixture
def sam(api_user: Any) -> Client:
    return member("sam", REVIEWERS)


def post(client: Client, order_id: str, action: str, body: Any = None) -> Any:
    if body is None:
        return client.post(f"/orders/{order_id}/signals/{action}")
    return client.post(f"/orders/{order_id}/signals/{action}", body, content_type="application/json")


def started(api: Client, **body: Any) -> str:
    order_id = new_order_id()
    response = api.post(f"/orders/{order_id}/start", order_body(**body), content_type="application/json")
    assert response.status_code == 201, response.content
    wait_for_state(order_id, "AWAITING_APPROVAL")
    return order_id


def events(order_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.payload_json) for e in Event.objects.filter(order_id=order_id).order_by("timestamp", "id")]


# --- claims ----------------------------------------------------------------------------------------
def test_a_claim_blocks_other_approvers_with_409_naming_the_claimant(
    api: Client, rita: Client, sam: Client, workers: Any
) -> None:
    order_id = started(api)
    assert post(rita, order_id, "claim").status_code == 202
    refused = post(sam, order_id, "approve")
    assert refused.status_code == 409
    assert refused.json()["detail"] == "Cannot approve: the order is claimed by rita"
    claim = post(sam, order_id, "claim")
    assert (claim.status_code, claim.json()["detail"]) == (409, "Cannot claim: the order is claimed by rita")
    order = Order.objects.select_related("claimed_by").get(id=order_id)
    assert (order.state, order.claimed_by.username, order.claimed_at is not None) == ("AWAITING_APPROVAL", "rita", True)
    assert ("ORDER_CLAIMED", {"actor": "rita", "via": "api"}) in events(order_id)


def test_a_cancellation_gets_through_a_claim(api: Client, rita: Client, workers: Any) -> None:
    order_id = started(api)
    post(rita, order_id, "claim")
    assert post(api, order_id, "cancel").status_code == 202
    assert wait_for_state(order_id, "CANCELLED") == "CANCELLED"


def test_the_claimant_releases_and_another_reviewer_approves(
    api: Client, rita: Client, sam: Client, workers: Any
) -> None:
    order_id = started(api)
    post(rita, order_id, "claim")
    assert post(sam, order_id, "release").status_code == 409
    assert post(rita, order_id, "release").status_code == 202
    assert Order.objects.get(id=order_id).claimed_by_id is None
    assert post(sam, order_id, "approve").status_code == 202
    wait_for_state(order_id, "COMPLETED")
    types = [t for t, _ in events(order_id)]
    assert types[2:5] == ["ORDER_CLAIMED", "ORDER_RELEASED", "ORDER_APPROVED"]


def test_a_supervisor_takes_over_a_claim(api: Client, rita: Client, workers: Any) -> None:
    sue = member("sue", SUPERVISORS)
    order_id = started(api)
    post(rita, order_id, "claim")
    assert post(sue, order_id, "claim").status_code == 202
    review = [(t, p.get("actor")) for t, p in events(order_id) if t in ("ORDER_CLAIMED", "ORDER_RELEASED")]
    assert review == [("ORDER_CLAIMED", "rita"), ("ORDER_RELEASED", "rita"), ("ORDER_CLAIMED", "sue")]
    assert Order.objects.select_related("claimed_by").get(id=order_id).claimed_by.username == "sue"
    assert post(rita, order_id, "approve").json()["detail"] == "Cannot approve: the order is claimed by sue"


def test_claim_needs_the_approve_permission(api: Client, workers: Any) -> None:
    order_id = started(api)
    viewer = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=User.objects.create_user('viewer'))}")
    response = post(viewer, order_id, "claim")
    assert response.status_code == 403
    assert "approve_order" in response.json()["detail"]
    assert post(api, "order-unknown-x", "claim").status_code == 404


# --- four-eyes ---------------------------------------------------------------------------------------
def test_four_eyes_same_user_twice_is_refused_and_two_users_charge_once(
    api: Client, rita: Client, sam: Client, workers: Any, settings: Any, temporal: Any
) -> None:
    settings.FOUR_EYES_MIN_TOTAL = "1000.00"
    order_id = started(api, items=BIG)
    assert post(rita, order_id, "claim").status_code == 202
    first = post(rita, order_id, "approve")
    assert (first.status_code, first.json()["state"]) == (202, "AWAITING_APPROVAL")
    wait_until(lambda: Order.objects.get(id=order_id).first_approver_id, what="the first approval")
    again = post(rita, order_id, "approve")
    assert again.status_code == 409
    assert "needs a second reviewer" in again.json()["detail"]
    assert post(sam, order_id, "claim").status_code == 202  # rita's claim ended with her approval
    assert post(sam, order_id, "approve").status_code == 202
    wait_for_state(order_id, "COMPLETED")
    record_history(temporal, order_id, "four_eyes_with_claim")
    order = Order.objects.get(id=order_id)
    assert ProviderCharge.objects.filter(idempotency_key=order.payment_id, kind="charge").count() == 1
    recorded = dict(events(order_id))
    assert recorded["FIRST_APPROVAL"]["actor"] == "rita"
    assert (recorded["ORDER_APPROVED"]["actor"], recorded["ORDER_APPROVED"]["first_approver"]) == ("sam", "rita")
    assert order.approvals_required == 2


def test_the_starter_of_a_four_eyes_order_cannot_approve_it(
    api: Client, rita: Client, workers: Any, settings: Any
) -> None:
    settings.FOUR_EYES_MIN_TOTAL = "1000.00"
    order_id = started(api, items=BIG)
    refused = post(api, order_id, "approve")  # api-client's token started it
    assert refused.status_code == 409
    assert "api-client started this order" in refused.json()["detail"]
    post(rita, order_id, "approve")
    assert post(api, order_id, "approve").status_code == 409
    assert Order.objects.get(id=order_id).state == "AWAITING_APPROVAL"
    assert not ProviderCharge.objects.exists()


# --- a cancellation's reason -------------------------------------------------------------------------
def test_a_cancellations_reason_lands_in_order_cancelled(api: Client, workers: Any) -> None:
    order_id = started(api)
    assert post(api, order_id, "cancel", {"reason": "customer changed their mind"}).status_code == 202
    wait_for_state(order_id, "CANCELLED")
    assert dict(events(order_id))["ORDER_CANCELLED"]["reason"] == "customer changed their mind"


@pytest.mark.parametrize(
    "body",
    [{"reason": "x" * 501}, {"reason": 7}, {"reason": "a\x00b"}],
    ids=["too-long", "not-a-string", "nul"],
)
def test_a_bad_reason_is_400_naming_reason_and_changes_nothing(api: Client, workers: Any, body: Any) -> None:
    order_id = started(api)
    before = events(order_id)
    response = post(api, order_id, "cancel", body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("reason: ")
    assert "reason" in response.json()["errors"]
    assert (Order.objects.get(id=order_id).state, events(order_id)) == ("AWAITING_APPROVAL", before)


def test_a_cancel_body_that_is_not_json_is_400(api: Client, workers: Any) -> None:
    order_id = started(api)
    response = api.post(f"/orders/{order_id}/signals/cancel", "{nope", content_type="application/json")
    assert (response.status_code, response.json()["errors"]) == (400, {"body": "is not valid JSON"})


# --- status ------------------------------------------------------------------------------------------
def test_status_shows_the_claim_the_approvals_and_escalation_in_three_queries_after_the_token(
    api: Client, rita: Client, sam: Client, workers: Any, settings: Any
) -> None:
    settings.FOUR_EYES_MIN_TOTAL = "1000.00"
    order_id = started(api, items=BIG)
    status = api.get(f"/orders/{order_id}/status").json()
    assert (status["claimed_by"], status["approvals"], status["approvals_required"], status["escalated"]) == (
        None,
        [],
        2,
        False,
    )
    post(sam, order_id, "claim")
    post(rita, order_id, "approve")  # refused: sam holds the claim
    post(sam, order_id, "approve")
    with CaptureQueriesContext(connection) as queries:
        status = api.get(f"/orders/{order_id}/status").json()
    assert len(queries) == 4  # the token with its permissions, the order with its people, payment, events
    assert status["claimed_by"] is None  # the first approval ended sam's claim
    assert [a["actor"] for a in status["approvals"]] == ["sam"]
    assert "release" not in status["allowed_actions"]
    post(rita, order_id, "claim")
    assert api.get(f"/orders/{order_id}/status").json()["claimed_by"] == "rita"


def test_the_migrations_make_supervisors_reviewers_who_may_take_over_claims(db: None) -> None:
    def codenames(name: str) -> set[str]:
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    assert codenames(SUPERVISORS) == codenames(REVIEWERS) | {"reassign_order"}
    assert "reassign_order" not in codenames(REVIEWERS)
