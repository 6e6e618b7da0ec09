"""Order changes pushed to the console's websockets.

The workers write the database from their own processes, so each web process watches the
`orders.updated_at` index itself (a few cheap queries a second, only while a console is open)
and fans changes out to its own sockets through the in-memory channel layer. No shared broker
is needed, however many web processes run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from orders.models import Order

logger = logging.getLogger(__name__)

GROUP = "review-orders"
# A transaction may commit a moment after the timestamp it wrote; look back this far.
LOOK_BACK = timedelta(seconds=3)


class OrderFeed:
    def __init__(self) -> None:
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None
        self._seen: dict[str, datetime] = {}

    def join(self) -> None:
        self._listeners += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def leave(self) -> None:
        self._listeners = max(0, self._listeners - 1)
        if self._listeners == 0 and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        layer = get_channel_layer()
        cursor = timezone.now()
        while True:
            try:
                rows = await sync_to_async(_changed_since, thread_sensitive=False)(cursor - LOOK_BACK)
            except Exception:  # a database hiccup must not end the feed
                logger.exception("review feed: reading order changes failed")
                await asyncio.sleep(1)
                continue
            for order_id, state, updated_at in rows:
                if self._seen.get(order_id) == updated_at:
                    continue
                self._seen[order_id] = updated_at
                cursor = max(cursor, updated_at)
                await layer.group_send(
                    GROUP,
                    {
                        "type": "order.changed",
                        "order_id": order_id,
                        "state": state,
                        "updated_at": updated_at.isoformat(),
                    },
                )
            horizon = cursor - LOOK_BACK
            self._seen = {key: value for key, value in self._seen.items() if value >= horizon}
            await asyncio.sleep(settings.REVIEW_FEED_INTERVAL_SECONDS)


def _changed_since(since: datetime) -> list[tuple[str, str, datetime]]:
    close_old_connections()
    try:
        return list(
            Order.objects.filter(updated_at__gte=since)
            .order_by("updated_at")
            .values_list("id", "state", "updated_at")[:500]
        )
    finally:
        close_old_connections()


feed = OrderFeed()
