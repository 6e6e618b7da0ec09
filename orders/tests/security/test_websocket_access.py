"""The console's websocket: signed-in users with view_order only, from the site's own pages."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from orders.tests.security.helpers import signed_in, user_with


def _websocket(cookie: str | None = None, origin: str = "http://testserver") -> tuple[bool, int | None]:
    from orders_site.asgi import application

    async def attempt() -> tuple[bool, int | None]:
        headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        communicator = WebsocketCommunicator(application, "/ws/review/", headers=headers)
        connected, code = await communicator.connect(timeout=5)
        await communicator.disconnect()
        return connected, code

    return async_to_sync(attempt)()


def _session_cookie(user: User) -> str:
    client = signed_in(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"


def test_the_websocket_refuses_anonymous_users_and_users_without_view_permission(transactional_db: None) -> None:
    assert _websocket() == (False, 4403)
    assert _websocket(_session_cookie(User.objects.create_user("no-view"))) == (False, 4403)
    assert _websocket(_session_cookie(user_with("watcher", "view_order")))[0] is True


def test_the_websocket_refuses_another_sites_page(transactional_db: None) -> None:
    # Cross-site websocket hijacking: a page elsewhere opening the socket with the reviewer's cookie.
    connected, _ = _websocket(_session_cookie(user_with("watcher", "view_order")), origin="https://evil.example")
    assert not connected
