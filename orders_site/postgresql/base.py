"""Django's PostgreSQL backend, with each pooled connection checked as it is borrowed.

psycopg_pool can check a connection before lending it (`check`, which Django sets when
CONN_HEALTH_CHECKS is on), but after each failed check it sleeps 1 s, then 2 s, 4 s ... before it
tries the next idle connection. When PostgreSQL's backends are terminated (a restart, a failover,
`pg_terminate_backend`) every idle connection dies at once, and the first request waited through
that whole series: 7 s for four dead connections, the pool's timeout and a 503 for five or more.
Here the pool checks nothing itself; a connection it lends is checked here, and a dead one is
discarded (the pool opens a replacement in the background) and the next one taken at once.

The check costs no round trip for a quiet connection. The server of an idle connection sends
nothing unless the session is ending (a terminated backend sends an error, then closes the
socket), so a connection with nothing to read is used as it is, and one with something to read
is checked with an empty query, as psycopg_pool's own check does.
"""

from __future__ import annotations

import select
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool


def _quiet(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server has sent nothing since the connection was last used."""
    if conn.closed:
        return False
    if not hasattr(select, "poll"):  # no poll() on this platform: always the round trip
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return not poller.poll(0)


def is_live(conn: psycopg.Connection[Any]) -> bool:
    if _quiet(conn):
        return True
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.Error:
        return False
    return True


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        # At worst every idle connection is dead; after them come the ones the pool opens anew.
        for _ in range(pool.max_size + 1):
            conn = super().get_new_connection(conn_params)
            if is_live(conn):
                return conn
            conn.close()
            pool.putconn(conn)  # closed: the pool drops it and opens a replacement
        raise psycopg.OperationalError(f"no live connection in the pool after {pool.max_size + 1} tries")
