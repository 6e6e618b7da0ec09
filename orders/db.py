"""Database helpers: no connection held while a request waits for Temporal, and writes that
cost no more round trips than they need.

Under ASGI, Django runs a request's synchronous work (ORM calls, a sync view) in a thread of the
request's own, and the connection that thread borrows from the pool stays checked out until the
request ends. A request that goes on to wait for a workflow's verdict (up to
TEMPORAL_UPDATE_TIMEOUT_SECONDS when no worker answers) would hold it all that time: a Temporal or
worker outage would then empty the pool and take reads and /health down with it. Code about to
wait for Temporal gives the connection back first; the next database call borrows one again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import Model

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=Model)


def release_connections() -> None:
    """Give this thread's connections back, as the end of a request does: to the pool, or closed.

    A connection inside a transaction stays (closing it would break the transaction), and so does
    a persistent one (CONN_MAX_AGE, used only without the pool).
    """
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


async def run_then_release(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`func` in the request's thread, as `sync_to_async` runs it, then its connection given back:
    for database work that comes before a wait for Temporal."""

    def run() -> T:
        try:
            return func(*args, **kwargs)
        finally:
            release_connections()

    return await sync_to_async(run)()


def on_its_own() -> AbstractContextManager[Any]:
    """Around one statement that may fail on a constraint: alone, the statement is atomic by
    itself and needs no transaction (BEGIN and COMMIT are two round trips); inside a caller's
    transaction, a savepoint keeps that transaction usable after the failure."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def get_or_insert(
    model: type[M], *, defaults: Callable[[], Mapping[str, Any]] | None = None, **lookup: Any
) -> tuple[M, bool]:
    """`get_or_create` for a row that is usually new or usually there, in one or two round trips
    instead of four: a read, then a lone INSERT; a concurrent insert of the same row makes this
    read the winner's. `defaults` is called only when the row is missing."""
    manager = model._default_manager
    row = manager.filter(**lookup).first()
    if row is not None:
        return row, False
    try:
        with on_its_own():
            return manager.create(**lookup, **(defaults() if defaults else {})), True
    except IntegrityError:
        return manager.get(**lookup), False
