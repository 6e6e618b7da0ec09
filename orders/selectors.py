"""Read-side queries of orders, payments and events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q, QuerySet

from lifecycle.states import END_STATES, Action, EventType, State, allowed_actions
from lifecycle.validation import order_id_problem
from orders.models import Event, Order, Payment


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


def order_status(*, order_id: str) -> dict[str, Any] | None:
    """The status document of the API: the order (with its claimant and first approver), its
    payment and its event timeline (3 queries)."""
    if order_id_problem(order_id):
        return None
    order = Order.objects.select_related("claimed_by", "first_approver").filter(id=order_id).first()
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
QUEUE_FIELDS = ("id", "state", "items_json", "address_json", "total", "created_at", "updated_at", "approval_deadline")
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


def review_queue(*, state: str | None, query: str = "") -> QuerySet[Order]:
    """Orders for the console's list: waiting ones oldest first, others most recent first."""
    orders = Order.objects.only(*QUEUE_FIELDS)
    if state:
        orders = orders.filter(state=state)
    if query:
        orders = orders.filter(id__startswith=query)
    if state == State.AWAITING_APPROVAL:
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
    order = order_get(order_id=order_id)
    if order is None:
        return None
    payment = order.payments.order_by("created_at").first()
    by_type = dict(order.events.order_by().values_list("type").annotate(n=Count("id")).values_list("type", "n"))
    if all_events:
        events = list(order.events.order_by("timestamp", "id"))
    else:
        events = list(order.events.order_by("-timestamp", "-id")[:TIMELINE_LATEST])[::-1]
    return order, payment, Timeline(events=events, total=sum(by_type.values()), types=frozenset(by_type))
