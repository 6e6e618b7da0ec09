"""Presentation helpers of the review console: states, items, addresses, events in words.

Text that people typed (item names, addresses, reasons, user names) is wrapped in `<bdi>`: a
right-to-left override in a city must not turn the zip code after it around.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from lifecycle.states import State

register = template.Library()

STATE_TONES = {
    State.ORDER_RECEIVED: "neutral",
    State.ORDER_VALIDATED: "neutral",
    State.AWAITING_APPROVAL: "waiting",
    State.PAYMENT_CHARGED: "progress",
    State.SHIPPING: "progress",
    State.SHIPPED: "progress",
    State.COMPLETED: "done",
    State.FAILED: "bad",
    State.APPROVAL_TIMEOUT: "bad",
    State.CANCELLED: "muted",
}


@register.filter
def state_tone(state: str) -> str:
    try:
        return STATE_TONES[State(state)]
    except ValueError:
        return "neutral"


@register.filter
def state_label(state: str) -> str:
    return state.replace("_", " ").capitalize()


@register.filter
def isolated(value: Any) -> SafeString:
    """User text as a bidi isolate: it reads its own way without reordering what surrounds it."""
    return format_html("<bdi>{}</bdi>", value)


@register.filter
def items_summary(items: list[dict[str, Any]]) -> SafeString:
    rows = ((item.get("quantity", 1), item.get("name", "?")) for item in items or [])
    return format_html_join(", ", "{} × <bdi>{}</bdi>", rows)


@register.filter
def address_line(address: dict[str, Any]) -> SafeString:
    if not isinstance(address, dict):
        return SafeString()
    main = [address.get("street", ""), address.get("city", ""), address.get("zip", "")]
    extra = [v for k, v in address.items() if k not in ("street", "city", "zip")]
    return format_html_join(", ", "<bdi>{}</bdi>", ((part,) for part in [*main, *extra] if part))


def _moment(value: Any) -> str:
    """An ISO timestamp from an event's payload, in the console's time zone, to the second."""
    try:
        moment = parse_datetime(str(value))
    except ValueError:  # well formatted but not a valid date
        moment = None
    if moment is None or timezone.is_naive(moment):
        return str(value)
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


@register.filter
def event_summary(payload: dict[str, Any]) -> SafeString:
    """The one line a reviewer needs from an event's payload."""
    if not isinstance(payload, dict):
        return SafeString()
    if "old" in payload and "new" in payload:
        return format_html("{} → {}", address_line(payload["old"]), address_line(payload["new"]))
    parts = []
    if "amount" in payload:
        parts.append(format_html("{} (payment <bdi>{}</bdi>)", payload["amount"], payload.get("payment_id", "")))
    if "reason" in payload:
        parts.append(isolated(payload["reason"]))
    if "tracking_number" in payload:
        parts.append(format_html("tracking <bdi>{}</bdi>", payload["tracking_number"]))
    if "address" in payload and isinstance(payload["address"], dict):
        parts.append(format_html("to {}", address_line(payload["address"])))
    if "total" in payload:
        parts.append(format_html("total {}", payload["total"]))
    if "approval_deadline" in payload:
        parts.append(format_html("review due by {}", _moment(payload["approval_deadline"])))
    return format_html_join("; ", "{}", ((part,) for part in parts))


@register.filter
def moment(value: Any, style: str = "datetime") -> SafeString:
    """A time for people: `<time>` with the ISO instant, shown in the reader's zone (the `tz` cookie,
    orders.middleware) or else UTC, labelled.

    The console's script rewrites it in the reader's own zone, labelled with that zone's name;
    without the script the UTC text stays, which says it is UTC. `style` "time" shows only the
    time of day in the text that the script writes (the date stays in the title).
    """
    if value is None or timezone.is_naive(value):
        return SafeString("")
    local = timezone.localtime(value)
    text = local.strftime("%Y-%m-%d %H:%M:%S %Z")
    return format_html('<time datetime="{}" data-local="{}" title="{}">{}</time>', value.isoformat(), style, text, text)


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds in words a person reads at a glance: "42 s", "7 min", "3 h 05 min", "2 d 4 h"."""
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.filter
def event_words(kind: str) -> str:
    """An event type as a reviewer says it ("Order approved")."""
    return kind.replace("_", " ").capitalize()
