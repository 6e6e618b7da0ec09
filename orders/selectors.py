"""Read-side queries of orders, payments and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, F, Q, QuerySet

from lifecycle.states import END_STATES, Action, EventType, State, allowed_actions
from lifecycle.validation import order_id_problem
from orders.models import Event, Note, Order, Payment


def order_get(*, order_id: str) -> Order | None:
    if order_id_problem(order_id):  # no order has such an id; PostgreSQL would refuse a NUL
        return None
    return Order.objects.filter(id=order_id).first()


async def order_state_async(*, order_id: str) -> str | None:
    """The order's stored state, or None when there is no such order (1 query)."""
    if order_id_problem(order_id):
        return None
    return await Order.objects.filter(id=order_id).values_list("state", flat=True).afirst()


def awaiting_approval_counts(*, now: datetime, half_window: timedelta) -> tuple[int, int]:
    """How many orders await approval, and how many of them have less than `half_window` left
    before their deadline (1 query, on the state index)."""
    counts = Order.objects.filter(state=State.AWAITING_APPROVAL).aggregate(
        waiting=Count("id"), late=Count("id", filter=Q(approval_deadline__lte=now + half_window))
    )
    return counts["waiting"], counts["late"]


def open_order_ids() -> list[str]:
    """Ids of the orders not in an end state, oldest first."""
    open_orders = Order.objects.exclude(state__in=[state.value for state in END_STATES])
    return list(open_orders.order_by("created_at").values_list("id", flat=True))


def _order_with_people(order_id: str) -> Order | None:
    """The order with the people its review names (claimant, first approver, starter): one query."""
    return Order.objects.select_related("claimed_by", "first_approver", "started_by").filter(id=order_id).first()


def order_status(*, order_id: str) -> dict[str, Any] | None:
    """The status document of the API: the order (with its claimant and first approver), its
    payment and its event timeline (3 queries)."""
    if order_id_problem(order_id):
        return None
    order = _order_with_people(order_id)
    if order is None:
        return None
    payment = order.payments.order_by("created_at").first()
    events = list(order.events.order_by("timestamp", "id").values("id", "type", "payload_json", "timestamp"))
    return {
        **review_status(order, events),
        "order_id": order.id,
        "workflow_id": order.workflow_id,
        "run_id": order.workflow_run_id or None,
        "state": order.state,
        "items": order.items_json,
        "address": order.address_json,
        "total": str(order.total),
        "payment": (
            {"payment_id": payment.payment_id, "status": payment.status, "amount": str(payment.amount)}
            if payment
            else {"payment_id": order.payment_id, "status": None, "amount": None}
        ),
        "approval_deadline": order.approval_deadline.isoformat() if order.approval_deadline else None,
        "allowed_actions": [
            action.value
            for action in allowed_actions(order.state)
            if action is not Action.RELEASE or order.claimed_by_id is not None
        ],
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "events": [
            {"id": e["id"], "type": e["type"], "timestamp": e["timestamp"].isoformat(), "payload": e["payload_json"]}
            for e in events
        ],
    }


def review_status(order: Order, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The team's review of an order as the API shows it: who holds the claim (only while the
    order awaits approval), the approvals given (who, when), how many it needs, whether it was
    escalated. From the row (claimant and first approver loaded with it) and its events."""
    awaiting = order.state == State.AWAITING_APPROVAL
    approvals = [
        {"actor": e["payload_json"].get("actor", ""), "at": e["timestamp"].isoformat()}
        for e in events
        if e["type"] in (EventType.FIRST_APPROVAL, EventType.ORDER_APPROVED)
    ]
    return {
        "claimed_by": order.claimed_by.get_username() if awaiting and order.claimed_by else None,
        "approvals": approvals,
        "approvals_required": order.approvals_required,
        "escalated": order.escalated_at is not None,
    }


# --- the review console ----------------------------------------------------------------------
QUEUE_FIELDS = (
    "id",
    "state",
    "items_json",
    "address_json",
    "total",
    "created_at",
    "updated_at",
    "approval_deadline",
    "claimed_at",
    "first_approved_at",
    "approvals_required",
    "escalated_at",
    "claimed_by__username",
    "first_approver__username",
)
# The queue's narrower views (besides the state tabs): who holds the claim, escalation, four-eyes.
QUEUE_VIEWS = ("mine", "unclaimed", "escalated", "second")
OPEN_STATES = tuple(state.value for state in State if state not in END_STATES)
ENDED_STATES = tuple(state.value for state in State if state in END_STATES)
# Ended orders only accumulate, so lists of them are counted up to this many rows and no further:
# a count then costs the same at a hundred thousand orders as at ten million.
COUNT_CAP = 10_000
TIMELINE_LATEST = 50  # events an order page shows unless all are asked for


@dataclass(frozen=True)
class Tally:
    """A number of rows, exact unless `more` says counting stopped there."""

    n: int
    more: bool = False

    def __str__(self) -> str:
        return f"{self.n:,}+" if self.more else f"{self.n:,}"


def count_at_most(queryset: QuerySet[Any], cap: int) -> Tally:
    """Count rows up to `cap` (one query that reads at most cap + 1 index entries or rows)."""
    n = queryset.order_by()[: cap + 1].count()
    return Tally(min(n, cap), more=n > cap)


def state_counts() -> dict[str, Tally]:
    """How many orders are in each state, in one query that costs the same however many have ended.

    The open states (awaiting approval above all) are counted exactly: they hold the orders in
    flight, a number that stays small while the system keeps up, and they are read from the state
    index. The ended states grow forever and are counted up to COUNT_CAP each.
    """
    table = connection.ops.quote_name(Order._meta.db_table)
    marks = ", ".join(["%s"] * len(OPEN_STATES))
    exact = f"SELECT state, COUNT(*) FROM {table} WHERE state IN ({marks}) GROUP BY state"  # noqa: S608 (fixed names)
    capped = f"SELECT %s, COUNT(*) FROM (SELECT 1 FROM {table} WHERE state = %s LIMIT %s) AS c"  # noqa: S608
    sql = " UNION ALL ".join([exact, *[capped] * len(ENDED_STATES)])
    params: list[Any] = [*OPEN_STATES]
    for ended in ENDED_STATES:
        params += [ended, ended, COUNT_CAP + 1]
    counts = {value: Tally(0) for value in (*OPEN_STATES, *ENDED_STATES)}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for value, n in cursor.fetchall():
            counts[value] = Tally(min(n, COUNT_CAP), more=n > COUNT_CAP) if value in ENDED_STATES else Tally(n)
    return counts


def total_of(counts: dict[str, Tally]) -> Tally:
    """All orders, from the per-state counts: at least COUNT_CAP if any state was cut short."""
    if any(tally.more for tally in counts.values()):
        return Tally(COUNT_CAP, more=True)
    return Tally(sum(tally.n for tally in counts.values()))


class CappedPaginator(Paginator):  # type: ignore[type-arg]
    """A paginator that never counts more than `cap` rows.

    Past the cap it reports `cap` rows with `more` set, and only the pages within the cap can be
    reached (search narrows a list to what lies beyond). A count known beforehand, such as a state
    tab's, is used instead of a query.
    """

    def __init__(self, *args: Any, cap: int | None = None, known: Tally | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cap = COUNT_CAP if cap is None else cap
        self.known = known

    @cached_property
    def tally(self) -> Tally:
        return self.known if self.known is not None else count_at_most(self.object_list, self.cap)

    @cached_property
    def count(self) -> int:
        return self.tally.n

    @property
    def more(self) -> bool:
        return self.tally.more


def review_queue(
    *,
    state: str | None,
    query: str = "",
    min_total: Any = None,
    max_total: Any = None,
    sort: str = "",
    view: str = "",
    user_id: int | None = None,
) -> QuerySet[Order]:
    """Orders for the console's list, with who holds each claim and gave each first approval (one
    query with its joins). Waiting ones escalated first, then by deadline (soonest first) unless
    sorted by age (oldest first) or total (largest first); others most recent first. `view`
    narrows to the orders claimed by `user_id` ("mine"), claimed by nobody, escalated, or waiting
    for a second approval."""
    orders = Order.objects.select_related("claimed_by", "first_approver").only(*QUEUE_FIELDS)
    if view == "mine":
        orders = orders.filter(claimed_by_id=user_id)
    elif view == "unclaimed":
        orders = orders.filter(claimed_by__isnull=True)
    elif view == "escalated":
        orders = orders.filter(escalated_at__isnull=False)
    elif view == "second":
        orders = orders.filter(approvals_required__gte=2, first_approver__isnull=False)
    if state:
        orders = orders.filter(state=state)
    if query:
        orders = orders.filter(id__startswith=query)
    if min_total is not None:
        orders = orders.filter(total__gte=min_total)
    if max_total is not None:
        orders = orders.filter(total__lte=max_total)
    if state == State.AWAITING_APPROVAL:
        escalated_first = F("escalated_at").asc(nulls_last=True)
        if sort == "total":
            return orders.order_by(escalated_first, "-total", "created_at", "id")
        if sort == "age":
            return orders.order_by(escalated_first, "created_at", "id")
        return orders.order_by(escalated_first, F("approval_deadline").asc(nulls_last=True), "created_at", "id")
    if sort == "total":
        return orders.order_by("-total", "created_at", "id")
    if sort == "age":
        return orders.order_by("created_at", "id")
    return orders.order_by("-created_at", "-id")


@dataclass(frozen=True)
class Timeline:
    """Some or all of an order's events (oldest first), with what is known of all of them."""

    events: list[Event]
    total: int
    types: frozenset[str]  # the types among all the order's events, shown or not

    @property
    def earlier(self) -> int:
        """How many of the order's events are not in `events` (all of them older)."""
        return self.total - len(self.events)

    @property
    def partial(self) -> bool:
        return self.earlier > 0


def order_page(*, order_id: str, all_events: bool = False) -> tuple[Order, Payment | None, Timeline] | None:
    """An order with its payment and its timeline: the latest TIMELINE_LATEST events unless
    `all_events` (4 queries whatever the number of events)."""
    if order_id_problem(order_id):
        return None
    order = _order_with_people(order_id)
    if order is None:
        return None
    payment = order.payments.order_by("created_at").first()
    by_type = dict(order.events.order_by().values_list("type").annotate(n=Count("id")).values_list("type", "n"))
    if all_events:
        events = list(order.events.order_by("timestamp", "id"))
    else:
        events = list(order.events.order_by("-timestamp", "-id")[:TIMELINE_LATEST])[::-1]
    return order, payment, Timeline(events=events, total=sum(by_type.values()), types=frozenset(by_type))


# --- notes, and the timeline they share with events ----------------------------------------
NOTES_SHOWN = 200  # notes an order page shows at most (the latest)


@dataclass(frozen=True)
class Entry:
    """One line of an order's timeline: an event or a note, at its time."""

    at: Any  # datetime
    event: Event | None = None
    note: Note | None = None


def order_notes(*, order_id: str) -> list[Note]:
    """The order's latest notes with their authors, oldest first (1 query)."""
    notes = Note.objects.filter(order_id=order_id).select_related("author").order_by("-created_at", "-id")
    return list(notes[:NOTES_SHOWN])[::-1]


def timeline_entries(*, events: list[Event], notes: list[Note], partial: bool) -> list[Entry]:
    """Events and notes in time order. When older events are hidden, so are the notes before them."""
    since = events[0].timestamp if partial and events else None
    entries = [Entry(at=e.timestamp, event=e) for e in events]
    entries += [Entry(at=n.created_at, note=n) for n in notes if since is None or n.created_at >= since]
    return sorted(entries, key=lambda entry: entry.at)


def last_decision(*, order_id: str) -> tuple[str, str, Any] | None:
    """The latest event that decided or held the order, as (type, actor, time); for a refusal that
    names who acted first (1 query)."""
    deciding = [
        EventType.ORDER_APPROVED,
        EventType.ORDER_CANCELLED,
        EventType.FIRST_APPROVAL,
        EventType.ORDER_CLAIMED,
        EventType.APPROVAL_TIMEOUT,
    ]
    row = (
        Event.objects.filter(order_id=order_id, type__in=deciding)
        .order_by("-timestamp", "-id")
        .values_list("type", "payload_json", "timestamp")
        .first()
    )
    if row is None:
        return None
    kind, payload, at = row
    actor = payload.get("actor", "") if isinstance(payload, dict) else ""
    return kind, str(actor or ""), at


def next_waiting(*, after: str, user_id: int | None) -> str | None:
    """The next order for this reviewer after `after`: the first the queue lists of those awaiting
    approval that nobody else holds a claim on (1 query)."""
    waiting = review_queue(state=State.AWAITING_APPROVAL).exclude(id=after)
    free = waiting.filter(Q(claimed_by__isnull=True) | Q(claimed_by_id=user_id))
    return free.values_list("id", flat=True).first()


# --- who did what -----------------------------------------------------------------------------
# A decision is an event a person's action recorded that moved the order towards its end.
DECISION_TYPES = (EventType.ORDER_APPROVED, EventType.FIRST_APPROVAL, EventType.ORDER_CANCELLED)
PERSON_ACTION_TYPES = (*DECISION_TYPES, EventType.ADDRESS_UPDATED, EventType.ORDER_CLAIMED, EventType.ORDER_RELEASED)
ACTIONS_SHOWN = 100


@dataclass(frozen=True)
class Tallies:
    today: int
    week: int
    median_seconds: float | None  # from the order's arrival to the decision, over this week's decisions


def period_starts(now: Any) -> tuple[Any, Any]:
    """The start of today and of this week (Monday), in the console's time zone."""
    from datetime import timedelta

    from django.utils import timezone

    local = timezone.localtime(now)
    today = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return today, today - timedelta(days=today.weekday())


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _tallies(rows: list[tuple[Any, Any]], today: Any) -> Tallies:
    """From (decided at, order arrived at) pairs of this week's decisions."""
    return Tallies(
        today=sum(1 for at, _ in rows if at >= today),
        week=len(rows),
        median_seconds=_median([(at - arrived).total_seconds() for at, arrived in rows]),
    )


def person_activity(*, username: str, now: Any) -> tuple[Tallies, list[dict[str, Any]]]:
    """A reviewer's decisions today and this week, and their latest actions (2 queries)."""
    today, week = period_starts(now)
    theirs = Event.objects.filter(payload_json__actor=username)
    decided = list(
        theirs.filter(type__in=DECISION_TYPES, timestamp__gte=week).values_list("timestamp", "order__created_at")
    )
    actions = list(
        theirs.filter(type__in=PERSON_ACTION_TYPES)
        .order_by("-timestamp", "-id")
        .values("order_id", "type", "timestamp", "payload_json")[:ACTIONS_SHOWN]
    )
    return _tallies(decided, today), actions


def team_activity(*, now: Any, usernames: list[str]) -> list[tuple[str, Tallies]]:
    """Each of `usernames` (and anyone else who decided this week) with their tallies (1 query)."""
    today, week = period_starts(now)
    rows = Event.objects.filter(type__in=DECISION_TYPES, timestamp__gte=week).values_list(
        "payload_json", "timestamp", "order__created_at"
    )
    by_actor: dict[str, list[tuple[Any, Any]]] = {name: [] for name in usernames}
    for payload, at, arrived in rows:
        actor = payload.get("actor") if isinstance(payload, dict) else None
        if actor:
            by_actor.setdefault(str(actor), []).append((at, arrived))
    return sorted(((name, _tallies(pairs, today)) for name, pairs in by_actor.items()), key=lambda t: t[0])


def team_members() -> list[str]:
    """The usernames of the active members of the groups that review (1 query)."""
    from django.contrib.auth import get_user_model

    from orders.permissions import REVIEW_GROUPS

    users = get_user_model().objects.filter(is_active=True, groups__name__in=REVIEW_GROUPS).distinct()
    return sorted(users.values_list("username", flat=True))


def queue_ids(*, limit: int, **filters: Any) -> list[str]:
    """The ids the console's list shows for these filters (`review_queue`'s), in its order, up to
    `limit` (1 query)."""
    return list(review_queue(**filters).values_list("id", flat=True)[:limit])
