"""The console's websocket: pushes order changes to signed-in reviewers, for as long as they stay so.

The user is checked when the socket opens, and again before each feed tick's changes go out
(one check per tick with changes, none while idle), so a session ended anywhere (signed out in
another web process, expired, flushed), a deactivated user or a revoked `orders.view_order`
gets nothing more: the socket is closed instead. Signing out in this process closes the
session's sockets at once.
"""

from __future__ import annotations

import asyncio
import threading
from importlib import import_module
from types import SimpleNamespace
from typing import Any, cast

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from orders.feed import GROUP, feed
from orders.permissions import VIEW_ORDER

# Close codes, so the page can tell why (4000-4999 are the application's own).
SIGNED_OUT = 4401  # no valid session: signed out, session expired or removed, user deactivated
POLICY_VIOLATION = 4403  # signed in without orders.view_order


class ReviewConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    joined = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = user is not None and user.is_authenticated and await database_sync_to_async(user.has_perm)(VIEW_ORDER)
        if not allowed:
            await self.close(code=POLICY_VIOLATION)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        self.joined = True
        self.checked_tick = feed.tick  # just checked: changes read after this are checked again
        session = self.scope.get("session")
        self.session_key: str | None = session.session_key if session is not None else None
        self.loop = asyncio.get_running_loop()
        sockets.add(self)
        feed.join()

    async def disconnect(self, code: int) -> None:
        await self._leave()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen."""

    async def order_changes(self, message: dict[str, Any]) -> None:
        if not self.joined:
            return
        if message["tick"] != self.checked_tick:
            refusal = await database_sync_to_async(refusal_of)(self.scope)
            if refusal is not None:
                await self.end(refusal)
                return
            self.checked_tick = message["tick"]
        for change in message["changes"]:
            await self.send_json(change)

    async def session_ended(self, message: dict[str, Any]) -> None:
        await self.end(SIGNED_OUT)

    async def end(self, code: int) -> None:
        """Closes the socket from this side; nothing more is sent on it."""
        await self._leave()
        await self.close(code=code)

    async def _leave(self) -> None:
        if not self.joined:
            return
        self.joined = False
        sockets.discard(self)
        feed.leave()
        await self.channel_layer.group_discard(GROUP, self.channel_name)


def refusal_of(scope: dict[str, Any]) -> int | None:
    """The close code if the socket's user may no longer listen, else None, as the database says now."""
    listener = scope["user"]
    session = scope.get("session")
    if session is None:
        # A consumer mounted without the session middleware (some tests): the user as stored now.
        user = get_user_model()._default_manager.filter(pk=listener.pk).first()
    else:
        # A fresh load: the scope's copy of the session was read when the socket opened.
        store = import_module(settings.SESSION_ENGINE).SessionStore(session.session_key)
        user = get_user(cast(HttpRequest, SimpleNamespace(session=store)))
    if user is None or not user.is_authenticated or not user.is_active or user.pk != listener.pk:
        return SIGNED_OUT
    if not user.has_perm(VIEW_ORDER):
        return POLICY_VIOLATION
    return None


class Sockets:
    """This process's open console sockets by session, so that signing out closes them at once.

    The logout runs in a request thread; each socket is told through its own event loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_session: dict[str, set[ReviewConsumer]] = {}

    def add(self, consumer: ReviewConsumer) -> None:
        if consumer.session_key:
            with self._lock:
                self._by_session.setdefault(consumer.session_key, set()).add(consumer)

    def discard(self, consumer: ReviewConsumer) -> None:
        if consumer.session_key:
            with self._lock:
                group = self._by_session.get(consumer.session_key, set())
                group.discard(consumer)
                if not group:
                    self._by_session.pop(consumer.session_key, None)

    def end_session(self, session_key: str) -> None:
        with self._lock:
            consumers = list(self._by_session.get(session_key, ()))
        for consumer in consumers:
            message = consumer.channel_layer.send(consumer.channel_name, {"type": "session.ended"})
            try:
                asyncio.run_coroutine_threadsafe(message, consumer.loop)
            except RuntimeError:  # its loop has closed, and the socket with it
                message.close()


sockets = Sockets()


@receiver(user_logged_out, dispatch_uid="orders.consumers.end_sockets_of_session")
def end_sockets_of_session(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        sockets.end_session(session_key)
