"""The database's view of every order after the drain, and the stories its events must tell."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from scripts.chaoslib.poller import query

COMPLETED_TRAIL = frozenset(
    {
        "ORDER_RECEIVED", "ORDER_VALIDATED", "ORDER_APPROVED", "PAYMENT_CHARGED",
        "PACKAGE_PREPARED", "CARRIER_DISPATCHED", "ORDER_SHIPPED", "ORDER_COMPLETED",
    }
)  # fmt: skip
TERMINAL_EVENTS = {
    "ORDER_COMPLETED": "COMPLETED",
    "ORDER_CANCELLED": "CANCELLED",
    "APPROVAL_TIMEOUT": "APPROVAL_TIMEOUT",
    "DISPATCH_FAILED": "FAILED",
    "ORDER_FAILED": "FAILED",
}


@dataclass
class Facts:
    """The database's view of every order after the drain."""

    states: dict[str, str]
    totals: dict[str, Decimal]
    payments: dict[str, list[str]]  # order id -> payment statuses
    charges: dict[str, int]  # payment id -> provider charge rows
    charged_at: dict[str, datetime]  # payment id -> when the provider moved the money
    refunds: dict[str, int]
    money_charged: Decimal
    money_refunded: Decimal
    duplicate_events: list[tuple[str, str, int]]
    event_types: dict[str, set[str]]
    dispatch_address: dict[str, Any]
    addresses: dict[str, Any]  # the address stored on the order
    address_events: dict[str, int]


def gather_facts(db_name: str) -> Facts:
    states: dict[str, str] = {}
    totals: dict[str, Decimal] = {}
    addresses: dict[str, Any] = {}
    for order_id, state, total, address in query(db_name, "SELECT id, state, total, address_json FROM orders"):
        states[order_id], totals[order_id], addresses[order_id] = state, total, address
    payments: dict[str, list[str]] = {}
    for order_id, status in query(db_name, "SELECT order_id, status FROM payments"):
        payments.setdefault(order_id, []).append(status)
    charges: dict[str, int] = {}
    refunds: dict[str, int] = {}
    for key, kind, count in query(
        db_name, "SELECT idempotency_key, kind, count(*) FROM provider_charges GROUP BY 1, 2"
    ):
        (charges if kind == "charge" else refunds)[key] = int(count)
    charged_at = dict(
        query(db_name, "SELECT idempotency_key, min(created_at) FROM provider_charges WHERE kind = 'charge' GROUP BY 1")
    )
    sums = dict(query(db_name, "SELECT kind, coalesce(sum(amount), 0) FROM provider_charges GROUP BY kind"))
    duplicates = [
        (order_id, kind, int(count))
        for order_id, kind, count in query(
            db_name,
            # Address changes and claims may repeat; every other step is recorded once.
            "SELECT order_id, type, count(*) FROM events"
            " WHERE type NOT IN ('ADDRESS_UPDATED', 'ORDER_CLAIMED', 'ORDER_RELEASED') "
            "GROUP BY 1, 2 HAVING count(*) > 1",
        )
    ]
    event_types: dict[str, set[str]] = {}
    address_events: Counter[str] = Counter()
    for order_id, kind in query(db_name, "SELECT order_id, type FROM events"):
        event_types.setdefault(order_id, set()).add(kind)
        if kind == "ADDRESS_UPDATED":
            address_events[order_id] += 1
    dispatch = {
        order_id: payload.get("address")
        for order_id, payload in query(
            db_name, "SELECT order_id, payload_json FROM events WHERE type = 'CARRIER_DISPATCHED'"
        )
    }
    return Facts(
        states, totals, payments, charges, charged_at, refunds,
        Decimal(sums.get("charge", 0)), Decimal(sums.get("refund", 0)),
        duplicates, event_types, dispatch, addresses, dict(address_events),
    )  # fmt: skip


def phantom_events(order_ids: list[str], facts: Facts) -> list[str]:
    """Orders with an event for a step their workflow did not take: an end other than the
    order's, two different ends, or an approval or charge on an order that timed out unapproved."""
    found = []
    for oid in order_ids:
        have = facts.event_types.get(oid, set())
        state = facts.states[oid]
        ends = {TERMINAL_EVENTS[kind] for kind in have if kind in TERMINAL_EVENTS}
        wrong = sorted(kind for kind in have if kind in TERMINAL_EVENTS and TERMINAL_EVENTS[kind] != state)
        if state == "APPROVAL_TIMEOUT":
            wrong += sorted(have & {"ORDER_APPROVED", "PAYMENT_CHARGED"})
        if wrong or len(ends) > 1:
            found.append(f"{oid} ({state}) has {', '.join(wrong) or sorted(ends)}")
    return found


def trail_gaps(order_ids: list[str], facts: Facts) -> list[str]:
    """Orders whose events do not tell the story their end state implies."""
    gaps = []
    for oid in order_ids:
        have = facts.event_types.get(oid, set())
        state = facts.states[oid]
        need = {"ORDER_RECEIVED", "ORDER_VALIDATED"}
        if state == "CANCELLED" and not have & {"ORDER_APPROVED", "PAYMENT_CHARGED"}:
            need = {"ORDER_RECEIVED"}  # a cancel that arrived before validation skips it
        if state == "COMPLETED":
            need |= COMPLETED_TRAIL
        elif state == "CANCELLED":
            need |= {"ORDER_CANCELLED"} | ({"PAYMENT_REFUNDED"} if "PAYMENT_CHARGED" in have else set())
        elif state == "FAILED":
            need |= {"DISPATCH_FAILED", "PAYMENT_CHARGED", "PAYMENT_REFUNDED", "PACKAGE_PREPARED"}
        missing = need - have
        if missing:
            gaps.append(f"{oid} ({state}): missing {sorted(missing)}")
    return gaps
