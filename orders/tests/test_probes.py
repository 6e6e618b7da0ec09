"""`/health/live` and `/health/ready`: status words for anyone, reasons for staff; /health unchanged."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orders.tokens import token_create

WORDS = {"status", "database", "temporal"}


def staff_session() -> Client:
    client = Client()
    client.force_login(User.objects.create_user("operator", is_staff=True))
    return client


def test_live_answers_without_the_database_or_temporal(db: None, settings: Any) -> None:
    settings.TEMPORAL_ADDRESS = "127.0.0.1:9"  # Temporal down: still live
    with CaptureQueriesContext(connection) as queries:
        response = Client().get("/health/live")
    assert (response.status_code, response.json()) == (200, {"status": "live"})
    assert len(queries) == 0
    assert staff_session().get("/health/live").json() == {"status": "live"}


def test_ready_says_ready_in_words_to_anyone_while_the_database_and_temporal_answer(workers: Any) -> None:
    response = Client().get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "temporal": "ok"}
    assert Client().get("/health").json() == {"status": "ok", "database": "ok", "temporal": "ok"}


def test_ready_is_503_with_words_only_for_anyone_when_temporal_is_down(queues: Any, settings: Any) -> None:
    settings.TEMPORAL_ADDRESS = "127.0.0.1:9"
    response = Client().get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body == {
        "status": "unavailable",
        "database": "ok",
        "temporal": "unavailable",
        "detail": "temporal unavailable",
    }
    assert "127.0.0.1" not in response.content.decode()


def test_staff_see_why_it_is_not_ready_and_the_workers_when_it_is(workers: Any, settings: Any, api_user: Any) -> None:
    by_token = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=api_user)}")
    ready = staff_session().get("/health/ready").json()
    expected = {workers.config.order_task_queue: "ok (1 worker)", workers.config.shipping_task_queue: "ok (1 worker)"}
    assert ready["status"] == "ready" and ready["workers"] == expected
    assert by_token.get("/health/ready").json()["workers"] == expected

    settings.TEMPORAL_ADDRESS = "127.0.0.1:9"
    response = by_token.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("temporal: unreachable at 127.0.0.1:9")


def test_a_token_without_view_order_or_a_bad_token_get_words_only(workers: Any) -> None:
    nobody = User.objects.create_user("no-permissions")
    for caller in (
        Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=nobody)}"),
        Client(HTTP_AUTHORIZATION="Bearer olc_not-a-token"),
    ):
        response = caller.get("/health/ready")
        assert response.status_code == 200
        assert set(response.json()) == WORDS
