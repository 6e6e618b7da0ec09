"""Database connections in the web process: none is held while a request waits for Temporal.

Under ASGI, Django runs a request's synchronous work (ORM calls, a sync view) in a thread of the
request's own, and the connection that thread borrows from the pool stays checked out until the
request ends. A request that goes on to wait for a workflow's verdict (up to
TEMPORAL_UPDATE_TIMEOUT_SECONDS when no worker answers) would hold it all that time: a Temporal or
worker outage would then empty the pool and take reads and /health down with it. Code about to
wait for Temporal gives the connection back first; the next database call borrows one again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

P = ParamSpec("P")
T = TypeVar("T")


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
