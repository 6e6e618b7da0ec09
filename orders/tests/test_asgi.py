"""The ASGI application itself: the JSON API's order paths run a lean middleware chain
(settings.API_MIDDLEWARE), everything else the full one, and both keep their guards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

from orders_site.asgi import API_PREFIX, api_asgi_app, application, django_asgi_app

pytestmark = pytest.mark.django_db(transaction=True)


def call(method: str, path: str, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }

    async def run() -> dict[str, Any]:
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await communicator.receive_output(10)
        content = b""
        while True:
            message = await communicator.receive_output(10)
            content += message.get("body", b"")
            if not message.get("more_body"):
                break
        return {
            "status": start["status"],
            "headers": {k.decode().lower(): v.decode() for k, v in start["headers"]},
            "body": content,
        }

    return asyncio.run(run())


def middleware_names(handler: Any) -> list[str]:
    """The middleware classes of a loaded handler, outermost first (each layer is wrapped by
    convert_exception_to_response, which keeps the middleware as `__wrapped__`)."""
    names = []
    layer = handler._middleware_chain
    while layer is not None:
        layer = getattr(layer, "__wrapped__", layer)
        if not hasattr(layer, "get_response"):
            break
        names.append(type(layer).__name__)
        layer = layer.get_response
    return names


def test_the_api_runs_without_session_csrf_or_lockout_layers() -> None:
    api = middleware_names(api_asgi_app)
    full = middleware_names(django_asgi_app)
    assert "SessionMiddleware" in full and "CsrfViewMiddleware" in full and "AxesMiddleware" in full
    assert not {"SessionMiddleware", "CsrfViewMiddleware", "AuthenticationMiddleware", "AxesMiddleware"} & set(api)
    assert {"ApiSecurityMiddleware", "ContentSecurityPolicyMiddleware", "BodySizeLimitMiddleware"} <= set(api)


def test_an_api_answer_carries_the_security_headers_and_asks_for_a_token() -> None:
    response = call("GET", f"{API_PREFIX}order-1/status")
    assert response["status"] == 401
    assert response["headers"]["content-type"] == "application/json; charset=utf-8"
    assert "default-src" in response["headers"]["content-security-policy"]
    assert response["headers"]["x-content-type-options"] == "nosniff"
    assert response["headers"]["x-frame-options"] == "DENY"
    assert response["headers"]["referrer-policy"] == "same-origin"
    assert response["headers"]["cross-origin-opener-policy"] == "same-origin"
    assert "set-cookie" not in response["headers"]


def test_the_api_guards_refuse_before_any_view(settings: Any) -> None:
    big = b"x" * (settings.API_MAX_BODY_BYTES + 1)
    too_big = call("POST", f"{API_PREFIX}order-1/start", big, [(b"content-length", str(len(big)).encode())])
    assert too_big["status"] == 413
    assert b"body" in too_big["body"]
    nul = call("GET", f"{API_PREFIX}order%00/status".replace("%00", "\x00"))
    assert nul["status"] == 400
    assert b"NUL" in nul["body"]
    wrong_method = call("DELETE", f"{API_PREFIX}order-1/start")
    assert wrong_method["status"] == 405
    assert wrong_method["headers"]["content-type"].startswith("application/json")


def test_the_console_keeps_the_full_chain() -> None:
    response = call("GET", "/review/")
    assert response["status"] == 302
    assert response["headers"]["location"].startswith("/accounts/login/")
    login = call("GET", "/accounts/login/")
    assert login["status"] == 200
    assert "csrftoken" in login["headers"].get("set-cookie", "")
    assert "default-src" in login["headers"]["content-security-policy"]
