"""Secrets stay out of the logs: API tokens, passwords, payment ids and SQL parameters."""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from orders.tests.factories import make_order, new_order_id, order_body, wait_for_state
from orders.tests.security.helpers import all_loggers_at_debug, everything_logged, sign_in, start


def test_a_token_never_appears_in_the_logs_even_at_debug(
    token_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    all_loggers_at_debug(caplog)
    token = token_client.defaults["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    forged = "olc_" + secrets.token_urlsafe(32)
    order = make_order()
    # CaptureQueriesContext turns on SQL logging (django.db.backends at DEBUG, with parameters):
    # even then the token is not there, only its digest is ever sent to the database.
    with CaptureQueriesContext(connection):
        responses = [
            token_client.get(f"/orders/{order.id}/status"),
            start(token_client, new_order_id(), "{nope"),
            token_client.post(f"/orders/{order.id}/signals/approve"),  # reaches Temporal: closed port, 503
            Client(HTTP_AUTHORIZATION=f"Bearer {forged}").get(f"/orders/{order.id}/status"),
            Client(HTTP_AUTHORIZATION=f"Bearer {token}x").post(f"/orders/{order.id}/signals/cancel"),
        ]
    assert [r.status_code for r in responses] == [200, 400, 503, 401, 401]
    logged = everything_logged(caplog)
    assert caplog.records, "nothing was captured: the test would prove nothing"
    assert token not in logged and forged not in logged
    assert token[:12] not in logged  # not even a recognisable part of it


def test_a_failed_sign_in_never_logs_the_password(reviewer: User, caplog: pytest.LogCaptureFixture) -> None:
    all_loggers_at_debug(caplog)
    sign_in(Client(), "rita", "hunter2-secret-guess")
    assert caplog.records
    assert "hunter2-secret-guess" not in everything_logged(caplog)


def test_a_whole_order_lifecycle_never_logs_the_payment_id(
    api: Client, workers: Any, settings: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Transient failures on the way make the activities log their failed attempts too (with no
    # quick retries inside an attempt, each failure fails the attempt and is logged).
    settings.FLAKY_CALL_FAILURE_RATE = 0.3
    settings.QUICK_RETRY_BUDGET_SECONDS = 0
    caplog.set_level(logging.DEBUG)  # root at DEBUG; loggers configured quieter (SQL) stay so
    payment_ids = [f"pay-secret-{uuid.uuid4().hex}" for _ in range(3)]
    completed, cancelled, refused = new_order_id(), new_order_id(), new_order_id()
    assert start(api, completed, order_body(payment_id=payment_ids[0])).status_code == 201
    assert start(api, cancelled, order_body(payment_id=payment_ids[1])).status_code == 201
    wait_for_state(completed, "AWAITING_APPROVAL")
    assert api.post(f"/orders/{completed}/signals/approve").status_code == 202
    assert api.post(f"/orders/{cancelled}/signals/cancel").status_code == 202
    # A payment id already taken: refused with 409 (the answer names it; the log must not).
    assert start(api, refused, order_body(payment_id=payment_ids[0])).status_code == 409
    assert start(api, new_order_id(), order_body(payment_id=payment_ids[2], items=[])).status_code == 400
    wait_for_state(completed, "COMPLETED")
    wait_for_state(cancelled, "CANCELLED")
    assert api.get(f"/orders/{completed}/status").json()["payment"]["payment_id"] == payment_ids[0]

    logged = everything_logged(caplog) + "\n".join(capfd.readouterr())
    assert any(r.name == "lifecycle.activities" for r in caplog.records), "no failed attempt was logged"
    for payment_id in payment_ids:
        assert payment_id not in logged


def test_sql_with_its_parameters_is_never_logged_whatever_the_log_level() -> None:
    # With DEBUG on, Django logs every query with its parameters (payment ids among them) to
    # django.db.backends at DEBUG; the settings keep that logger at WARNING even when LOG_LEVEL=DEBUG.
    assert django_settings.LOGGING["loggers"]["django.db.backends"]["level"] == "WARNING"
    assert logging.getLogger("django.db.backends").getEffectiveLevel() >= logging.WARNING
