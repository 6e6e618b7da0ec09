"""`GET /metrics` on the web app: who may read it, and what it says after orders went through."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from orders.models import Order
from orders.permissions import VIEW_METRICS, codename
from orders.tests.factories import make_order, new_order_id, order_body, wait_for_state
from orders.tokens import token_create


def monitoring_user(name: str = "prometheus") -> User:
    user = User.objects.create_user(name)
    user.user_permissions.add(Permission.objects.get(codename=codename(VIEW_METRICS)))
    return user


def bearer(user: User) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user)}")


def scrape(client: Client) -> dict[str, Any]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """The value of the sample `sample` of `family` whose labels include `labels` (0 if none)."""
    return sum(
        s.value
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_no_credentials_or_a_bad_token_get_401_and_no_permission_403(transactional_db: None) -> None:
    assert Client().get("/metrics").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer olc_not-a-token").get("/metrics").status_code == 401
    nobody = User.objects.create_user("nobody")
    forbidden = bearer(nobody).get("/metrics")
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": f"your account lacks the permission {VIEW_METRICS}"}
    signed_in = Client()
    signed_in.force_login(nobody)
    assert signed_in.get("/metrics").status_code == 403


def test_a_token_or_a_session_with_view_metrics_reads_them(transactional_db: None) -> None:
    user = monitoring_user()
    assert "orders_awaiting_approval" in scrape(bearer(user))
    signed_in = Client()
    signed_in.force_login(user)
    assert "process_cpu_seconds" in scrape(signed_in)


def test_the_waiting_orders_are_counted_in_one_query_at_scrape_time(transactional_db: None, settings: Any) -> None:
    settings.APPROVAL_TIMEOUT_SECONDS = 300
    client = bearer(monitoring_user())
    client.get("/metrics")  # the token's first use records it; not part of the scrape's cost
    now = timezone.now()
    make_order(approval_deadline=now + timedelta(seconds=280))
    make_order(approval_deadline=now + timedelta(seconds=100))  # past half its window
    make_order(state="COMPLETED")
    with CaptureQueriesContext(connection) as queries:
        families = scrape(client)
    table = Order._meta.db_table
    assert len([q for q in queries if f'"{table}"' in q["sql"]]) == 1
    assert len(queries) == 2  # the token with its permission, then the orders
    assert value(families, "orders_awaiting_approval", "orders_awaiting_approval") == 2
    assert (
        value(families, "orders_awaiting_approval_past_half_window", "orders_awaiting_approval_past_half_window") == 1
    )


def test_actions_by_kind_and_outcome_and_orders_started_after_orders_went_through(api: Client, workers: Any) -> None:
    client = bearer(monitoring_user())
    before = scrape(client)
    approved, cancelled = new_order_id(), new_order_id()
    body = order_body()
    assert api.post(f"/orders/{approved}/start", body, content_type="application/json").status_code == 201
    # The same start again is the same order, not a second one.
    assert api.post(f"/orders/{approved}/start", body, content_type="application/json").status_code == 200
    assert api.post(f"/orders/{cancelled}/start", order_body(), content_type="application/json").status_code == 201
    wait_for_state(approved, "AWAITING_APPROVAL")
    assert api.post(f"/orders/{approved}/signals/approve").status_code == 202
    assert api.post(f"/orders/{cancelled}/signals/cancel").status_code == 202
    wait_for_state(approved, "COMPLETED")
    wait_for_state(cancelled, "CANCELLED")
    assert api.post(f"/orders/{approved}/signals/cancel").status_code == 409
    assert api.post(f"/orders/{new_order_id()}/signals/approve").status_code == 404
    after = scrape(client)

    def delta(**labels: str) -> float:
        sample = "orders_actions_total"
        return value(after, "orders_actions", sample, **labels) - value(before, "orders_actions", sample, **labels)

    assert delta(action="approve", outcome="applied", via="api") == 1
    assert delta(action="cancel", outcome="applied", via="api") == 1
    assert delta(action="cancel", outcome="refused", via="api") == 1
    assert delta(action="approve", outcome="not_found", via="api") == 1
    started = "orders_web_started_total"
    assert value(after, "orders_web_started", started) - value(before, "orders_web_started", started) == 2
    assert value(after, "orders_awaiting_approval", "orders_awaiting_approval") == 0


def test_an_action_temporal_does_not_answer_is_counted_unavailable(api: Client, settings: Any) -> None:
    settings.TEMPORAL_ADDRESS = "127.0.0.1:9"  # nothing listens there
    client = bearer(monitoring_user())
    order = make_order()
    sample = "orders_actions_total"
    labels = {"action": "approve", "outcome": "unavailable", "via": "api"}
    before = value(scrape(client), "orders_actions", sample, **labels)
    assert api.post(f"/orders/{order.id}/signals/approve").status_code == 503
    assert value(scrape(client), "orders_actions", sample, **labels) - before == 1
