"""The console's websocket in tests: opened through the real ASGI application with a real session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client


def session_cookie(client: Client) -> str:
    """The Cookie header a browser signed in as `client` would send."""
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


@asynccontextmanager
async def review_socket(cookie: str) -> AsyncIterator[WebsocketCommunicator]:
    """`/ws/review/` opened from the site's own page; disconnected on exit."""
    from orders_site.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"), (b"cookie", cookie.encode())]
    communicator = WebsocketCommunicator(application, "/ws/review/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    assert connected, code
    try:
        yield communicator
    finally:
        await communicator.disconnect()


async def changes_until(
    communicator: WebsocketCommunicator, done: Callable[[set[str]], bool], *, timeout: float
) -> list[dict[str, Any]]:
    """The changes the socket delivers until `done(the order ids so far)` holds or `timeout` passes.

    Waits with `receive_nothing`: a timed-out `receive_output` would cancel the application.
    """
    changes: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done({change["order_id"] for change in changes}) and loop.time() < deadline:
        if not await communicator.receive_nothing(timeout=0.05, interval=0.01):
            changes.append(await communicator.receive_json_from())
    return changes


async def next_output(communicator: WebsocketCommunicator, *, timeout: float) -> dict[str, Any] | None:
    """The application's next message to the client (a change, or the close), or None after `timeout`."""
    if await communicator.receive_nothing(timeout=timeout, interval=0.01):
        return None
    output: dict[str, Any] = await communicator.receive_output()
    return output
