"""The live feed's reading window (orders/feed.py `Window`) on its own: paging and forgetting."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from orders.feed import LOOK_BACK, PAGE_SIZE, Window


def test_a_pass_goes_on_after_a_full_page_and_then_remembers_only_its_look_back() -> None:
    window = Window(timezone.now())
    floor, _ = window.start()
    stale = floor - timedelta(minutes=1)  # older than any later floor
    fresh = timezone.now() + timedelta(minutes=1)
    full = [(f"o-{index:04d}", "SHIPPED", stale if index < 100 else fresh) for index in range(PAGE_SIZE)]
    assert len(window.news(full)) == PAGE_SIZE
    window.read([full])
    assert window.start() == (fresh, f"o-{PAGE_SIZE - 1:04d}")  # the same pass, after the last row read

    window.read([[]])  # a short page: the pass is over
    assert window.floor == window.began - LOOK_BACK
    assert window.start() == (window.floor, "")
    assert set(window.sent.values()) == {fresh}
