"""The log says each thing once: an access line per request (none for static files), and
django.request only for server errors (orders_site/logs.py, settings.LOGGING)."""

from __future__ import annotations

import logging

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.utils.log import log_response

from orders_site.logs import ACCESS_LOGGER, SkipStaticAccess, static_prefix


def access_record(path: str, status: int = 200) -> logging.LogRecord:
    """A record as uvicorn's HTTP protocols log a finished request."""
    return logging.LogRecord(
        ACCESS_LOGGER,
        logging.INFO,
        __file__,
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", status),
        None,
    )


def test_the_filter_drops_a_static_file_access_line_and_keeps_the_others() -> None:
    keep = SkipStaticAccess("/static/")
    assert not keep.filter(access_record("/static/review/console.css"))
    assert keep.filter(access_record("/orders/order-1/signals/cancel", 409))
    assert keep.filter(access_record("/review/?q=/static/"))
    other = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 0, "Started server process [%d]", (42,), None)
    assert keep.filter(other)


def test_the_static_prefix_comes_from_static_url() -> None:
    assert static_prefix("static/") == "/static/"
    assert static_prefix("/assets/") == "/assets/"
    assert static_prefix("https://cdn.example.com/static/") == "/static/"
    assert static_prefix("/") is None


def test_the_access_logger_carries_the_filter_after_django_set_up_logging() -> None:
    assert any(isinstance(f, SkipStaticAccess) for f in logging.getLogger(ACCESS_LOGGER).filters)


@pytest.mark.django_db
def test_a_refused_api_request_is_not_logged_by_django_request(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        assert Client().get("/orders/order-1/status").status_code == 401
        assert Client().get("/no-such-page/").status_code == 404
    assert not [r for r in caplog.records if r.name == "django.request"]


def test_a_server_error_is_still_logged_by_django_request(caplog: pytest.LogCaptureFixture) -> None:
    request = RequestFactory().get("/orders/order-1/status")
    with caplog.at_level(logging.DEBUG):
        log_response("Conflict: %s", request.path, response=HttpResponse(status=409), request=request)
        log_response("Internal Server Error: %s", request.path, response=HttpResponse(status=500), request=request)
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "django.request"]
    assert logged == [(logging.ERROR, "Internal Server Error: /orders/order-1/status")]


def test_django_lines_reach_the_log_through_one_handler_only() -> None:
    # DEBUG=1 would otherwise add Django's own console handler (plain text, also under LOG_FORMAT=json).
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django").propagate
