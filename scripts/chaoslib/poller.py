"""The database as the chaos run watches it: one query at a time through the faults, and a
poller thread that keeps every order's state and the charges in flight current."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from scripts.stack import postgres_connect

END_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "APPROVAL_TIMEOUT"})
CHARGED_STATES = frozenset({"PAYMENT_CHARGED", "SHIPPING"})
POLL_SECONDS = 0.1


def pg_connect(db_name: str) -> psycopg.Connection[Any]:
    return postgres_connect(db_name, timeout=5)


def query(db_name: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One query on a fresh connection, retried: the chaos itself terminates connections."""
    for attempt in range(20):
        try:
            with pg_connect(db_name) as conn:
                return list(conn.execute(sql, params).fetchall())
        except psycopg.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


CHARGES_IN_FLIGHT_SQL = (
    # PENDING: a charge attempt is under way. With a provider row: the money has moved but no
    # attempt has recorded it yet -- the window where a death must not lead to a second charge.
    "SELECT count(*), count(c.id) FROM payments p LEFT JOIN provider_charges c "
    "ON c.idempotency_key = p.payment_id AND c.kind = 'charge' WHERE p.status = 'PENDING'"
)


class StatePoller(threading.Thread):
    """Keeps current order states and charges in flight, read by the scenarios, the faults and the drain.

    One query a tick for all orders is far cheaper than each scenario polling on its own.
    """

    def __init__(self, db_name: str) -> None:
        super().__init__(name="state-poller", daemon=True)
        self.db_name = db_name
        self.states: dict[str, str] = {}
        self.charges_pending = 0
        self.charges_unrecorded = 0
        # Orders whose stored state left an end state again: e.g. CANCELLED -> AWAITING_APPROVAL.
        self.regressions: dict[str, list[str]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.halt.is_set():
            try:
                if conn is None or conn.closed:
                    conn = pg_connect(self.db_name)
                rows = conn.execute("SELECT id, state FROM orders").fetchall()
                self._note_regressions(rows)
                self.states = {row[0]: row[1] for row in rows}
                self.charges_pending, self.charges_unrecorded = conn.execute(CHARGES_IN_FLIGHT_SQL).fetchone() or (0, 0)
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None  # terminated by the chaos: reconnect on the next tick
            self.halt.wait(POLL_SECONDS)
        if conn is not None:
            conn.close()

    def _note_regressions(self, rows: list[tuple[Any, ...]]) -> None:
        stamp = time.strftime("%H:%M:%S")
        for order_id, state in rows:
            before = self.states.get(order_id)
            if before in END_STATES and state != before:
                self.regressions.setdefault(order_id, []).append(f"{stamp} {before} -> {state}")

    def state(self, order_id: str) -> str | None:
        return self.states.get(order_id)

    def wait(self, order_id: str, states: frozenset[str], seconds: float, halt: threading.Event) -> str | None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not halt.is_set():
            current = self.state(order_id)
            if current in states:
                return current
            time.sleep(POLL_SECONDS / 2)
        return self.state(order_id)
