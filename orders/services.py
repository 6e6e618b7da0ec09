"""Services that write orders, payments and events.

The start service records the order as received (the idempotency record of the start request);
after that, only the workflow's activities call the writers below, each once per transition, each
safe to run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from lifecycle import providers
from lifecycle.states import EventType, PaymentStatus, State
from lifecycle.validation import order_total
from orders import metrics
from orders.db import get_or_insert, on_its_own
from orders.models import Event, Note, Order, Payment

logger = logging.getLogger(__name__)


class OrderConflict(Exception):
    """A start request that collides with an existing order or payment."""


class PaymentConflict(Exception):
    """A payment_id that belongs to another order."""


@dataclass(frozen=True)
class StartOutcome:
    order: Order
    created: bool


def normalize_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as stored: prices as exact two-place decimal strings, quantities as ints."""
    return [
        {
            "name": str(item["name"]),
            "price": str(Decimal(str(item["price"])).quantize(Decimal("0.01"))),
            "quantity": int(item["quantity"]),
        }
        for item in items
    ]


def request_digest(*, payment_id: str, items: list[dict[str, Any]], address: dict[str, Any]) -> str:
    """A fingerprint of a start request's body, to tell a repeat from a conflicting reuse of an id."""
    canonical = json.dumps({"payment_id": payment_id, "items": items, "address": address}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def order_start(
    *,
    order_id: str,
    payment_id: str,
    items: list[dict[str, Any]],
    address: dict[str, Any],
    started_by_id: int | None = None,
) -> StartOutcome:
    """Record a start request once; the same request again returns the same order. The user
    `started_by_id` (the token's) can give no approval of the order if it needs two.

    Raises OrderConflict for the same id with another body, or a payment_id used by another order.
    """
    items = normalize_items(items)
    digest = request_digest(payment_id=payment_id, items=items, address=address)
    for _ in range(2):  # a second pass settles a race with a concurrent request
        try:
            # The insert first: a new order (the usual case) costs no look-up; a collision on
            # the id or the payment_id says which case this is.
            with on_its_own():
                order = Order.objects.create(
                    id=order_id,
                    state=State.ORDER_RECEIVED,
                    items_json=items,
                    address_json=address,
                    payment_id=payment_id,
                    total=order_total(items),
                    request_digest=digest,
                    started_by_id=started_by_id,
                )
            metrics.WEB_STARTED.inc()
            return StartOutcome(order, created=True)
        except IntegrityError:
            pass
        existing = Order.objects.filter(id=order_id).first()
        if existing is not None:
            if existing.request_digest == digest:
                return StartOutcome(existing, created=False)
            raise OrderConflict(f"order {order_id} already exists with a different body")
        if Order.objects.filter(payment_id=payment_id).exists():
            raise OrderConflict(f"payment_id {payment_id} is already used by another order")
    raise OrderConflict(f"order {order_id} or payment_id {payment_id} is already in use")


def user_id_for(*, username: str) -> int | None:
    """The id of the user named `username` (an action's actor), or None for a name no account
    has (e.g. the Temporal CLI's signals)."""
    from django.contrib.auth import get_user_model

    if not username:
        return None
    return get_user_model().objects.filter(username=username).values_list("id", flat=True).first()


# --- transitions, called by activities -------------------------------------------------------
def record_transition(
    *,
    order_id: str,
    event_id: str,
    event_type: EventType,
    payload: dict[str, Any],
    state: State | None = None,
    order_fields: dict[str, Any] | None = None,
) -> bool:
    """Write one event and the order's new state in one transaction, once.

    Returns False when the event already exists (the activity ran before); nothing is written then.
    """
    now = timezone.now()
    fields: dict[str, Any] = {"updated_at": now, **(order_fields or {})}
    if state is not None:
        fields["state"] = state
    if connection.vendor == "postgresql":
        return _record_transition_in_one_statement(
            order_id=order_id, event_id=event_id, event_type=event_type, payload=payload, now=now, fields=fields
        )
    try:
        with transaction.atomic():
            # The event first: a repeat collides on its deterministic id before anything changes,
            # which spares the common, first run a look-up.
            Event.objects.create(id=event_id, order_id=order_id, type=event_type, payload_json=payload, timestamp=now)
            Order.objects.filter(id=order_id).update(**fields)
    except IntegrityError:
        if Event.objects.filter(id=event_id).exists():
            return False
        raise
    return True


def _record_transition_in_one_statement(
    *, order_id: str, event_id: str, event_type: EventType, payload: dict[str, Any], now: Any, fields: dict[str, Any]
) -> bool:
    """PostgreSQL: the event and the order's new fields in one statement, atomic by itself, so one
    round trip instead of BEGIN, INSERT, UPDATE, COMMIT. The UPDATE runs only when the INSERT
    added the event; a repeat (the id exists) changes nothing. An unknown order fails the events'
    foreign key, as the two-statement form does."""
    quote = connection.ops.quote_name
    event = {"id": event_id, "order": order_id, "type": str(event_type), "payload_json": payload, "timestamp": now}
    event_columns, event_params = _columns(Event, event)
    set_columns, set_params = _columns(Order, fields)
    # Names only from the models' metadata; every value is a parameter.
    sql = (
        f"WITH added AS (INSERT INTO {quote(Event._meta.db_table)} ({', '.join(event_columns)})"  # noqa: S608
        f" VALUES ({', '.join(['%s'] * len(event_columns))})"
        f" ON CONFLICT ({quote(Event._meta.pk.column)}) DO NOTHING RETURNING 1)"
        f" UPDATE {quote(Order._meta.db_table)} SET {', '.join(f'{column} = %s' for column in set_columns)}"
        f" WHERE {quote(Order._meta.pk.column)} = %s AND EXISTS (SELECT 1 FROM added)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*event_params, *set_params, order_id])
        return cursor.rowcount == 1


def _columns(model: type[Model], values: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Quoted column names and database-ready values for `values` keyed by field name."""
    fields = [model._meta.get_field(name) for name in values]
    return (
        [connection.ops.quote_name(field.column) for field in fields],
        [field.get_db_prep_save(values[field.name], connection) for field in fields],  # type: ignore[union-attr]
    )


def order_set_state(*, order_id: str, state: State, from_states: tuple[State, ...], **order_fields: Any) -> None:
    """A state change that the contract records without an event (AWAITING_APPROVAL).

    Only from `from_states`: an attempt that outlived its timeout and writes late must not move
    an order back from wherever the workflow has taken it since.
    """
    Order.objects.filter(id=order_id, state__in=from_states).update(
        state=state, updated_at=timezone.now(), **order_fields
    )


def order_receive(
    *,
    order_id: str,
    payment_id: str,
    items: list[dict[str, Any]],
    address: dict[str, Any],
    event_id: str,
    run_id: str = "",
) -> None:
    """Record ORDER_RECEIVED with the workflow's run id; create the row if the workflow was
    started without the API."""
    items = normalize_items(items)
    total = order_total(items)
    received = {
        "order_id": order_id,
        "event_id": event_id,
        "event_type": EventType.ORDER_RECEIVED,
        "payload": {"items": items, "address": address, "payment_id": payment_id, "total": str(total)},
        "order_fields": {"workflow_run_id": run_id} if run_id else None,
    }
    try:
        # The API stored the row before it started the workflow: the usual case costs one write.
        with on_its_own():
            record_transition(**received)
    except IntegrityError:  # the event's order does not exist
        get_or_insert(
            Order,
            id=order_id,
            defaults=lambda: {"items_json": items, "address_json": address, "payment_id": payment_id, "total": total},
        )
        record_transition(**received)


def _settle(
    payment: Payment,
    *,
    move: Callable[..., providers.Movement],
    to_status: PaymentStatus,
    event_id: str,
    event_type: EventType,
    state: State | None,
) -> Payment:
    """Move the money at the provider (no transaction open), then record the outcome once."""
    from_status = payment.status
    movement = move(idempotency_key=payment.payment_id, amount=payment.amount)
    now = timezone.now()
    with transaction.atomic():
        moved = Payment.objects.filter(payment_id=payment.payment_id, status=from_status).update(
            status=to_status, updated_at=now
        )
        record_transition(
            order_id=payment.order_id,
            event_id=event_id,
            event_type=event_type,
            payload={"payment_id": payment.payment_id, "amount": str(movement.amount), "previous_status": from_status},
            state=state,
        )
    if moved:
        payment.status, payment.updated_at = to_status, now
    else:  # an earlier attempt moved it: read what it wrote
        payment.refresh_from_db()
    return payment


def payment_charge(*, order_id: str, payment_id: str, event_id: str) -> Payment:
    """Charge an order's payment exactly once, whatever is retried.

    1. Record the payment as PENDING (one row per payment_id; another order's id is refused).
    2. Ask the provider to charge, outside any transaction, with payment_id as idempotency key.
    3. Mark the payment COMPLETED and record PAYMENT_CHARGED with the new state, together.
    """
    payment, _ = get_or_insert(
        Payment,
        payment_id=payment_id,
        defaults=lambda: {
            "order_id": order_id,
            "amount": Order.objects.values_list("total", flat=True).get(id=order_id),
            "status": PaymentStatus.PENDING,
        },
    )
    if payment.order_id != order_id:
        raise PaymentConflict("the payment_id belongs to another order")
    if payment.status != PaymentStatus.PENDING:
        return payment
    return _settle(
        payment,
        move=providers.charge,
        to_status=PaymentStatus.COMPLETED,
        event_id=event_id,
        event_type=EventType.PAYMENT_CHARGED,
        state=State.PAYMENT_CHARGED,
    )


def payment_refund(*, order_id: str, payment_id: str, event_id: str) -> Payment:
    """Give a charged payment back, exactly once (provider key: the payment_id, kind refund)."""
    payment = Payment.objects.get(payment_id=payment_id, order_id=order_id)
    if payment.status != PaymentStatus.COMPLETED:
        return payment
    return _settle(
        payment,
        move=providers.refund,
        to_status=PaymentStatus.REFUNDED,
        event_id=event_id,
        event_type=EventType.PAYMENT_REFUNDED,
        state=None,
    )


def order_address_update(*, order_id: str, event_id: str, address: dict[str, Any], actor: str, via: str = "") -> None:
    """Write the new address at once, with an ADDRESS_UPDATED event holding old and new."""
    with transaction.atomic():
        if Event.objects.filter(id=event_id).exists():
            return
        old = Order.objects.filter(id=order_id).values_list("address_json", flat=True).get()
        record_transition(
            order_id=order_id,
            event_id=event_id,
            event_type=EventType.ADDRESS_UPDATED,
            payload={"old": old, "new": address, "actor": actor, "via": via},
            order_fields={"address_json": address},
        )


def note_add(*, order_id: str, author: Any, text: str) -> Note:
    """Record a reviewer's note on an order (the caller checked `orders.add_note` and the length)."""
    return Note.objects.create(order_id=order_id, author=author, text=text)
