"""The console's live feed (orders/feed.py) through a real websocket and a real database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from orders.models import Order
from orders.tests.factories import make_orders
from orders.tests.security.helpers import signed_in, user_with
from orders.tests.websocket import changes_until, review_socket, session_cookie

# More changes than the feed reads in one query (500 rows).
BURST = 600


def _touch_one_ms_apart(order_ids: list[str], first: Any) -> None:
    orders = list(Order.objects.filter(id__in=order_ids).order_by("id"))
    for index, order in enumerate(orders):
        order.updated_at = first + timedelta(milliseconds=index)
    Order.objects.bulk_update(orders, ["updated_at"], batch_size=200)


def _backdate_all() -> None:
    """Out of the feed's look-back: only what a test changes afterwards is news."""
    Order.objects.update(updated_at=timezone.now() - timedelta(hours=1))


def test_a_burst_larger_than_a_page_is_delivered_and_later_changes_still_arrive(
    transactional_db: None, settings: Any
) -> None:
    settings.REVIEW_FEED_INTERVAL_SECONDS = 0.05
    burst = [order.id for order in make_orders(BURST, prefix="burst", numbered=True)]
    _backdate_all()
    cookie = session_cookie(signed_in(user_with("watcher", "view_order")))
    later = {"later-00000", "later-00001", "later-00002"}

    async def scenario() -> list[dict[str, Any]]:
        async with review_socket(cookie) as socket:
            # All inside the feed's look-back, all before the new orders.
            await sync_to_async(_touch_one_ms_apart)(burst, timezone.now() - timedelta(seconds=1))
            await sync_to_async(make_orders)(3, prefix="later", numbered=True)
            return await changes_until(socket, lambda ids: set(burst) | later <= ids, timeout=15)

    delivered = {change["order_id"] for change in async_to_sync(scenario)()}
    assert later <= delivered, "the feed stalled: orders started after the burst never arrived"
    assert len(set(burst) - delivered) == 0, f"{len(set(burst) - delivered)} of the burst never arrived"


def test_a_change_that_commits_late_with_an_older_timestamp_is_still_delivered(
    transactional_db: None, settings: Any
) -> None:
    # A transaction can commit a moment after the timestamp it wrote, behind changes already sent.
    settings.REVIEW_FEED_INTERVAL_SECONDS = 0.05
    make_orders(1, prefix="late", numbered=True)
    _backdate_all()
    cookie = session_cookie(signed_in(user_with("watcher", "view_order")))

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with review_socket(cookie) as socket:
            await sync_to_async(make_orders)(1, prefix="early", numbered=True)
            first = await changes_until(socket, lambda ids: "early-00000" in ids, timeout=5)
            stamped = timezone.now() - timedelta(seconds=1)
            await sync_to_async(Order.objects.filter(id="late-00000").update)(updated_at=stamped)
            second = await changes_until(socket, lambda ids: "late-00000" in ids, timeout=5)
            return first, second

    first, second = async_to_sync(scenario)()
    assert [change["order_id"] for change in first] == ["early-00000"]
    assert [change["order_id"] for change in second] == ["late-00000"]


def test_each_change_is_delivered_once(transactional_db: None, settings: Any) -> None:
    settings.REVIEW_FEED_INTERVAL_SECONDS = 0.05
    cookie = session_cookie(signed_in(user_with("watcher", "view_order")))

    async def scenario() -> list[dict[str, Any]]:
        async with review_socket(cookie) as socket:
            await sync_to_async(make_orders)(5, prefix="once", numbered=True)
            # Several ticks pass over the same rows while they stay inside the look-back.
            return await changes_until(socket, lambda ids: False, timeout=1)

    delivered = sorted(change["order_id"] for change in async_to_sync(scenario)())
    assert delivered == [f"once-{index:05d}" for index in range(5)]
