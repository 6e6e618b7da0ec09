"""`GET /health`: words for anyone, the reasons and the workers per task queue for staff, and a
worker report that follows a worker stopping and starting again."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from orders.tests.factories import wait_until
from orders.tokens import token_create

WORDS = {"status", "database", "temporal"}


def staff_token(api_user: Any) -> Client:
    """A bearer token whose user may view orders (the API clients' group holds `view_order`)."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=api_user)}")


def test_anyone_gets_words_only(workers: Any) -> None:
    response = Client().get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}


def test_anyone_gets_503_naming_temporal_without_its_address_or_the_error(queues: Any, settings: Any) -> None:
    settings.TEMPORAL_ADDRESS = "127.0.0.1:9"
    response = Client().get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "temporal": "unavailable",
        "detail": "temporal unavailable",
    }


def test_staff_get_why_temporal_is_down(queues: Any, settings: Any, api_user: Any) -> None:
    settings.TEMPORAL_ADDRESS = "127.0.0.1:9"
    response = staff_token(api_user).get("/health")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["temporal"]) == ("unavailable", "ok", "unavailable")
    assert body["detail"].startswith("temporal: unreachable at 127.0.0.1:9")
    assert "workers" not in body


def test_staff_get_the_workers_per_task_queue_by_token_or_staff_session(workers: Any, api_user: Any) -> None:
    expected = {workers.config.order_task_queue: "ok (1 worker)", workers.config.shipping_task_queue: "ok (1 worker)"}
    by_token = staff_token(api_user).get("/health").json()
    assert by_token == {"status": "ok", "database": "ok", "temporal": "ok", "workers": expected}
    staff = Client()
    staff.force_login(User.objects.create_user("operator", is_staff=True))
    assert staff.get("/health").json()["workers"] == expected


def test_a_token_without_view_order_a_bad_token_or_a_non_staff_session_get_words_only(
    workers: Any, api_user: Any
) -> None:
    nobody = User.objects.create_user("no-permissions")
    signed_in = Client()
    signed_in.force_login(nobody)
    callers = [
        Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=nobody)}"),
        Client(HTTP_AUTHORIZATION="Bearer olc_not-a-token"),
        signed_in,
    ]
    for caller in callers:
        response = caller.get("/health")
        assert response.status_code == 200
        assert set(response.json()) == WORDS


def test_a_stopped_worker_stops_counting_at_once_and_counts_again_when_it_is_back(workers: Any, api_user: Any) -> None:
    staff = staff_token(api_user)
    order_tq, shipping_tq = workers.config.order_task_queue, workers.config.shipping_task_queue

    def report() -> dict[str, str]:
        return dict(staff.get("/health").json()["workers"])

    assert report() == {order_tq: "ok (1 worker)", shipping_tq: "ok (1 worker)"}
    workers.stop()
    # The server still lists the stopped worker's last poll for minutes; its shutdown is what counts.
    assert report() == {order_tq: "no worker", shipping_tq: "no worker"}
    assert staff.get("/health").status_code == 200  # the web app itself is fine without workers

    workers.start()  # the same process: the same worker identity as the stopped one
    wait_until(lambda: report() == {order_tq: "ok (1 worker)", shipping_tq: "ok (1 worker)"}, what="workers back")
