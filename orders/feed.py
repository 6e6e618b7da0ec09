"""Order changes pushed to the console's websockets.

The workers write the database from their own processes, so each web process watches the
`orders.updated_at` index itself (one cheap query per interval, only while a console is open)
and fans changes out to its own sockets through the in-memory channel layer. No shared broker
is needed, however many web processes run.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from orders.models import Order

logger = logging.getLogger(__name__)

GROUP = "review-orders"
# A transaction may commit a moment after the timestamp it wrote, and a worker's clock may be a
# little behind this process's: each pass reads again from this long before the previous one began.
LOOK_BACK = timedelta(seconds=3)
# Rows per query and queries per tick: a burst is read in pages and, past the budget, the next tick
# goes on where this one stopped, so neither a query nor a tick grows with the burst.
PAGE_SIZE = 500
PAGES_PER_TICK = 10

Row = tuple[Any, ...]  # id, state, updated_at, and who holds the claim (username or None)
Key = tuple[datetime, str]  # (updated_at, id): the order the feed reads rows in


class OrderFeed:
    def __init__(self) -> None:
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None
        # Numbers the reads: a socket checks that its user may still listen once per tick.
        self.tick = 0

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
        window = Window(timezone.now())
        while True:
            start = window.start()
            try:
                pages = await sync_to_async(_read, thread_sensitive=False)(start, PAGES_PER_TICK)
            except Exception:  # a database hiccup must not end the feed
                logger.exception("review feed: reading order changes failed")
                await asyncio.sleep(1)
                continue
            self.tick += 1
            for page in pages:
                changes = window.news(page)
                if changes:
                    await layer.group_send(GROUP, {"type": "order.changes", "tick": self.tick, "changes": changes})
            window.read(pages)
            await asyncio.sleep(settings.REVIEW_FEED_INTERVAL_SECONDS)


class Window:
    """Where the feed reads next, and which changes inside the look-back it has already sent.

    A pass reads every row from `floor` on, in (updated_at, id) order, a page at a time, over as
    many ticks as it needs. A row it missed committed after it began, so with a timestamp no older
    than its beginning minus the look-back: the next pass starts there.
    """

    def __init__(self, now: datetime) -> None:
        self.floor = now - LOOK_BACK
        self.began = now
        self.resume: Key | None = None  # where the pass in progress goes on
        self.sent: dict[str, datetime] = {}  # order id -> updated_at sent, for rows at or past `floor`

    def start(self) -> Key:
        if self.resume is not None:
            return self.resume
        self.began = timezone.now()
        return (self.floor, "")

    def news(self, page: list[Row]) -> list[dict[str, Any]]:
        changes = []
        for order_id, state, updated_at, *more in page:
            if self.sent.get(order_id) == updated_at:
                continue
            self.sent[order_id] = updated_at
            change = {"order_id": order_id, "state": state, "updated_at": updated_at.isoformat()}
            if more:
                change["claimed_by"] = more[0]
            changes.append(change)
        return changes

    def read(self, pages: list[list[Row]]) -> None:
        last = pages[-1]
        if len(last) == PAGE_SIZE:
            order_id, _, updated_at, *_ = last[-1]
            self.resume = (updated_at, order_id)
            return
        self.resume = None
        self.floor = self.began - LOOK_BACK
        self.sent = {key: value for key, value in self.sent.items() if value >= self.floor}


def _read(start: Key, pages: int) -> list[list[Row]]:
    """Up to `pages` pages of the rows after `start`, ending early at a short page."""
    close_old_connections()
    try:
        result: list[list[Row]] = []
        after = start
        for _ in range(pages):
            page = _page_after(after)
            result.append(page)
            if len(page) < PAGE_SIZE:
                break
            order_id, _, updated_at, *_ = page[-1]
            after = (updated_at, order_id)
        return result
    finally:
        close_old_connections()


def _page_after(key: Key) -> list[Row]:
    updated_at, order_id = key
    # The range on updated_at is what the index serves; the OR only trims rows sharing its first value.
    return list(
        Order.objects.filter(updated_at__gte=updated_at)
        .filter(Q(updated_at__gt=updated_at) | Q(id__gt=order_id))
        .order_by("updated_at", "id")
        .values_list("id", "state", "updated_at", "claimed_by__username")[:PAGE_SIZE]
    )


feed = OrderFeed()
