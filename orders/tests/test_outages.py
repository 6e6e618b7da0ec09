"""Outages of one part must not take the others down: a Temporal or worker outage leaves the
database to readers, and the database's backends ending (a restart, a failover) costs no request.

PostgreSQL only: SQLite has no connection pool to run dry and no server that ends connections.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client

from orders.permissions import REVIEWERS, ensure_groups
from orders.tests.factories import make_order, new_order_id, order_body, wait_for_state, wait_until
from orders.tokens import token_create
from scripts.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
POOL_SIZE = 4  # the web process's pool in the outage test: fewer connections than actions in flight
CSRF_SECRET = "a" * 32  # the console's CSRF cookie; the form sends the same value
# What a restart or failover of PostgreSQL does to the connections of this database's clients.
END_EVERY_OTHER_BACKEND = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
OTHER_BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no connection pool and no server that ends connections")


@dataclass
class Web:
    """The ASGI app under uvicorn in a process of its own, as in production."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def send(self, method: str, path: str, headers: dict[str, str], body: str = "") -> Answer:
        return Answer(self.port, method, path, headers, body)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.send("GET", path, headers or {}).result(timeout=60)


class Answer:
    """A request sent at once whose answer is read in the background, to be looked at later."""

    def __init__(self, port: int, method: str, path: str, headers: dict[str, str], body: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
        self.conn.request(method, path, body=body.encode(), headers=headers)
        self.value: tuple[int, Any] | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            response = self.conn.getresponse()
            content = response.read()
        except OSError as err:  # the server stopped first (a failed test's teardown)
            self.value = (0, repr(err))
            return
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        self.value = (response.status, json.loads(content) if is_json else content)

    @property
    def answered(self) -> bool:
        return self.value is not None

    def result(self, timeout: float) -> tuple[int, Any]:
        self.thread.join(timeout)
        assert self.value is not None, "no answer in time"
        return self.value


@pytest.fixture
def web(queues: Any, temporal: Any, tmp_path: Path) -> Iterator[Web]:
    from lifecycle.tests.test_runworker import database_url

    require_postgresql()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "TEMPORAL_ADDRESS": temporal.address,
        "ORDER_TASK_QUEUE": queues.order_task_queue,
        "SHIPPING_TASK_QUEUE": queues.shipping_task_queue,
        "DEBUG": "0",
        "DB_POOL_MAX_SIZE": str(POOL_SIZE),
        # A request that finds the pool empty gives up soon (503), instead of after the usual 10 s.
        "DB_POOL_TIMEOUT_SECONDS": "3",
        "TEMPORAL_UPDATE_TIMEOUT_SECONDS": "120",
    }
    log = tmp_path / "web.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "orders_site.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "3",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Web(port, process, log)

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return server.get("/health")[0] == 200
        except OSError:
            return False

    try:
        wait_until(up, timeout=60, interval=0.2, what="the web app to answer /health")
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def signed_in(user: User) -> dict[str, str]:
    """Headers of a console session for `user` (its session row made the way a sign-in makes it)."""
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    return {
        "Cookie": f"sessionid={session}; csrftoken={CSRF_SECRET}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def awaiting_orders(api: Client, count: int) -> list[str]:
    order_ids = [new_order_id() for _ in range(count)]
    for order_id in order_ids:
        assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    for order_id in order_ids:
        wait_for_state(order_id, "AWAITING_APPROVAL")
    return order_ids


def update_reached_temporal(temporal: Any, order_id: str) -> bool:
    """Whether an action is waiting in the order's workflow: with no worker, an Update leaves a
    workflow task scheduled that nobody takes."""
    description = temporal.run(temporal.client.get_workflow_handle(order_id).describe())
    return bool(description.raw_description.HasField("pending_workflow_task"))


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_actions_waiting_for_a_stopped_worker_hold_no_connection_and_reads_go_on(
    web: Web, workers: Any, api: Client, api_user: Any, temporal: Any
) -> None:
    ensure_groups()
    reviewer = User.objects.create_user("outage-reviewer")
    reviewer.groups.add(Group.objects.get(name=REVIEWERS))
    token = {"Authorization": f"Bearer {token_create(user=api_user)}"}
    session = signed_in(reviewer)
    by_api = awaiting_orders(api, POOL_SIZE)
    by_console = awaiting_orders(api, POOL_SIZE)
    workers.stop()

    # Twice as many actions as the web process has connections, half from the API and half
    # from the console (a sync view), all waiting for a worker that is not there.
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": CSRF_SECRET})
    actions = [web.send("POST", f"/orders/{order_id}/signals/approve", token) for order_id in by_api] + [
        web.send("POST", f"/review/orders/{order_id}/approve/", session, form) for order_id in by_console
    ]
    order_ids = by_api + by_console
    wait_until(
        lambda: any(a.answered for a in actions) or all(update_reached_temporal(temporal, o) for o in order_ids),
        timeout=60,
        interval=0.2,
        what="every action to reach its workflow",
    )
    status, body = web.get(f"/orders/{by_api[0]}/status", token)
    assert status == 200, body
    assert body["state"] == "AWAITING_APPROVAL"
    status, body = web.get("/health")
    assert (status, body["database"]) == (200, "ok"), body
    assert not [a.value for a in actions if a.answered], "every action must still be waiting for a worker"

    workers.start()
    results = [action.result(timeout=150) for action in actions]
    assert [status for status, _ in results] == [202] * POOL_SIZE + [302] * POOL_SIZE, results
    for order_id in order_ids:
        wait_for_state(order_id, "COMPLETED")


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
