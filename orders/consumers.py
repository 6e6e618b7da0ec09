"""The console's websocket: pushes order changes to signed-in reviewers."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from orders.feed import GROUP, feed
from orders.permissions import VIEW_ORDER

POLICY_VIOLATION = 4403


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
        feed.join()

    async def disconnect(self, code: int) -> None:
        if self.joined:
            feed.leave()
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients only listen."""

    async def order_changes(self, message: dict[str, Any]) -> None:
        """A batch from the feed (one page of rows at most); the browser gets one message per change."""
        for change in message["changes"]:
            await self.send_json(change)
