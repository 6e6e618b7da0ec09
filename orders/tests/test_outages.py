"""Outages of one part must not take the others down: the database's backends ending (a restart,
a failover) costs no request.

PostgreSQL only: SQLite has no connection pool to run dry and no server that ends connections.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import connection
from django.test import Client

from orders.tests.factories import make_order, wait_until

# What a restart or failover of PostgreSQL does to the connections of this database's clients.
END_EVERY_OTHER_BACKEND = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
OTHER_BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no connection pool and no server that ends connections")


def test_the_first_request_after_postgresql_ends_every_backend_succeeds(api: Client) -> None:
    require_postgresql()
    order = make_order()
    pool = connection.pool
    assert pool is not None

    # Several idle connections in the pool, as a busy process has: borrowed at once, then returned.
    borrowers = 8
    together = threading.Barrier(borrowers)

    def borrow() -> None:
        connection.ensure_connection()
        together.wait(timeout=30)
        connection.close()

    threads = [threading.Thread(target=borrow) for _ in range(borrowers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    connection.close()  # this thread's too, as the end of a request returns it
    assert pool.get_stats()["pool_available"] >= borrowers

    params = connection.get_connection_params()
    with psycopg.connect(
        dbname=params["dbname"],
        user=params.get("user"),
        password=params.get("password"),
        host=params.get("host"),
        port=params.get("port"),
        autocommit=True,
    ) as admin:
        ended = admin.execute(END_EVERY_OTHER_BACKEND).fetchall()
        assert len(ended) >= borrowers
        wait_until(lambda: admin.execute(OTHER_BACKENDS).fetchone() == (0,), what="every other backend to end")

    answers = []
    for _ in range(30):
        response = api.get(f"/orders/{order.id}/status")
        answers.append(response.status_code)
        connection.close()  # each request borrows anew, as under a server
    assert answers == [200] * 30
