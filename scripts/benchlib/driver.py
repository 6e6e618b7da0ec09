"""Our orders driven through the JSON API, as a shop's client would; and the database's view of them."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from scripts.benchlib.clients import ORDER_TIMEOUT_S, ResultWaiter
from scripts.benchlib.measure import summary_ms
from scripts.benchlib.stack import BenchError
from scripts.stack import HOST, FreshDatabase, Process

END_STATES = {"COMPLETED", "FAILED", "CANCELLED", "APPROVAL_TIMEOUT"}


class Http:
    """One keep-alive connection; reconnects (and resends once) when the server closed it."""

    RETRYABLE = (http.client.RemoteDisconnected, http.client.CannotSendRequest, http.client.BadStatusLine,
                 ConnectionResetError, BrokenPipeError, ConnectionRefusedError)  # fmt: skip

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        self.port = port
        self.headers = headers or {}
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, http.client.HTTPResponse]:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        all_headers = {**self.headers, **(headers or {})}
        if data is not None and "Content-Type" not in all_headers:
            all_headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                self.conn.request(method, path, body=data, headers=all_headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                if (resp.getheader("Connection") or "").lower() == "close":
                    self.close()
                return resp.status, raw, resp
            except self.RETRYABLE:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _detail(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("detail", ""))
    except ValueError:
        return raw[:200].decode(errors="replace")


def order_body(order_id: str) -> dict[str, Any]:
    return {
        "payment_id": f"pay-{order_id}",
        "items": [{"name": "Widget", "price": 29.99, "quantity": 2}],
        "address": {"street": "123 Main St", "city": "NYC", "zip": "10001"},
    }


class OrderDriver:
    def __init__(self, port: int, token: str, stop: threading.Event, waiter: ResultWaiter | None = None) -> None:
        """`waiter`: await each order workflow's result through it; None: poll GET /status."""
        self.port = port
        self.auth = {"Authorization": f"Bearer {token}"}
        self.stop = stop
        self.waiter = waiter
        self.local = threading.local()

    @property
    def completion(self) -> str:
        return "poll" if self.waiter is None else "result"

    def _http(self) -> Http:
        conn = getattr(self.local, "http", None)
        if conn is None:
            conn = self.local.http = Http(self.port, self.auth)
        return conn

    def start(self, order_id: str) -> None:
        status, raw, _ = self._http().request("POST", f"/orders/{order_id}/start", order_body(order_id))
        if status not in (200, 201):
            raise RuntimeError(f"start answered {status}: {_detail(raw)}")

    def cancel(self, order_id: str) -> None:
        status, raw, _ = self._http().request("POST", f"/orders/{order_id}/signals/cancel")
        if status != 202:
            raise RuntimeError(f"cancel answered {status}: {_detail(raw)}")

    def approve(self, order_id: str) -> int:
        """Approve it, retrying while the workflow is not ready for it yet; how many tries it took."""
        tries = 0
        while True:
            tries += 1
            status, raw, _ = self._http().request("POST", f"/orders/{order_id}/signals/approve")
            detail = _detail(raw)
            if status == 202 or (status == 409 and "already approved" in detail):
                return tries
            not_ready = status == 409 and re.search(r"not (yet |)(ready|started|running)|not yet", detail, re.I)
            if not_ready and tries < 100 and not self.stop.is_set():
                time.sleep(0.02)
                continue
            raise RuntimeError(f"approve answered {status}: {detail}")

    def one(self, order_id: str, poll_s: float) -> dict[str, Any]:
        """Start, approve and see one order complete: its timings."""
        t0 = time.perf_counter()
        self.start(order_id)
        t_started = time.perf_counter()
        approve_tries = self.approve(order_id)
        t_approved = time.perf_counter()
        deadline = t0 + ORDER_TIMEOUT_S
        if self.waiter is not None:
            state = self.waiter.result(order_id, deadline, self.stop)  # workflow id = order id
            if state != "COMPLETED":
                raise RuntimeError(f"the workflow returned {state!r}")
            polls = 0
        else:
            polls = self.poll_until_completed(order_id, poll_s, deadline)
        t1 = time.perf_counter()
        return {"id": order_id, "latency": t1 - t0, "done": t1, "start": t_started - t0,
                "approve": t_approved - t_started, "polls": polls, "approve_tries": approve_tries}  # fmt: skip

    def poll_until_completed(self, order_id: str, poll_s: float, deadline: float) -> int:
        """GET /status every `poll_s` until COMPLETED; how many polls it took."""
        polls = 0
        while not self.stop.is_set():
            status, raw, _ = self._http().request("GET", f"/orders/{order_id}/status")
            polls += 1
            if status != 200:
                raise RuntimeError(f"status answered {status}: {_detail(raw)}")
            state = json.loads(raw)["state"]
            if state == "COMPLETED":
                return polls
            if state in END_STATES:
                raise RuntimeError(f"ended in {state}")
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not COMPLETED after {ORDER_TIMEOUT_S:.0f} s (state {state})")
            time.sleep(poll_s)
        raise RuntimeError("interrupted")

    def each(self, ids: list[str], concurrency: int, action: Callable[[str], Any]) -> tuple[list[Any], list[str]]:
        """`action(order_id)` for every id on `concurrency` threads: (its results, its errors)."""
        results: list[Any] = []
        errors: list[str] = []

        def run(order_id: str) -> None:
            if self.stop.is_set():
                return
            try:
                results.append(action(order_id))
            except Exception as err:
                errors.append(f"{order_id}: {type(err).__name__}: {err}")

        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="order")
        try:
            futures = [pool.submit(run, order_id) for order_id in ids]
            while not all(f.done() for f in futures):
                # Never block for long: a signal delivered to another thread is handled only when
                # the main thread next runs Python code.
                wait(futures, timeout=0.2)
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C: let the threads see it and do not wait for them
            self.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results, errors

    def batch(self, prefix: str, n: int, concurrency: int, poll_s: float) -> dict[str, Any]:
        t_start = time.perf_counter()
        results, errors = self.each([f"{prefix}-{i}" for i in range(n)], concurrency, lambda oid: self.one(oid, poll_s))
        wall = (max(r["done"] for r in results) if results else time.perf_counter()) - t_start
        polling = self.waiter is None
        polls = round(sum(r["polls"] for r in results) / len(results), 1) if results and polling else None
        extra = {
            "completion": self.completion,
            "start_request_ms_p50": summary_ms([r["start"] for r in results])["p50"],
            "approve_request_ms_p50": summary_ms([r["approve"] for r in results])["p50"],
            "approve_request_ms_p95": summary_ms([r["approve"] for r in results])["p95"],
            "status_polls_per_order": polls,
            "approve_retries": sum(r["approve_tries"] - 1 for r in results),
            "poll_interval_ms": round(poll_s * 1000) if polling else None,
        }
        return {"latencies": [r["latency"] for r in results], "ids": [r["id"] for r in results], "errors": errors,
                "wall": wall, "extra": extra}  # fmt: skip


# --- the database's view ---------------------------------------------------------------------
def like_prefix(prefix: str) -> str:
    """A LIKE pattern for the orders `<prefix>-<n>`."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "-%"


def check_in_database(database: FreshDatabase, prefix: str, batch: dict[str, Any]) -> None:
    """One query after a phase: each order seen completing must be COMPLETED in the database.

    An order that is not counts as an error instead of as done.
    """
    with database.connect() as conn:
        rows = conn.execute("SELECT id, state FROM orders WHERE id LIKE %s", (like_prefix(prefix),)).fetchall()
    states = {order_id: state for order_id, state in rows}
    pairs = zip(batch["ids"], batch["latencies"], strict=True)
    kept = [(oid, lat) for oid, lat in pairs if states.get(oid) == "COMPLETED"]
    for oid in batch["ids"]:
        if states.get(oid) != "COMPLETED":
            batch["errors"].append(f"{oid}: seen completing, but its state in the database is {states.get(oid)}")
    batch["ids"] = [oid for oid, _ in kept]
    batch["latencies"] = [lat for _, lat in kept]
    batch["extra"]["database_completed"] = sum(1 for state in states.values() if state == "COMPLETED")


def count_states(database: FreshDatabase, prefix: str) -> dict[str, int]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM orders WHERE id LIKE %s GROUP BY state", (like_prefix(prefix),)
        ).fetchall()
    return {state: int(n) for state, n in rows}


def wait_for_states(
    database: FreshDatabase,
    prefix: str,
    states: set[str],
    n: int,
    proc: Process,
    what: str,
    timeout: float = ORDER_TIMEOUT_S,
) -> dict[str, int]:
    """Until `n` orders `<prefix>-*` are in one of `states` (polled every 0.2 s); the counts by state."""
    deadline = time.monotonic() + timeout
    while True:
        counts = count_states(database, prefix)
        if sum(v for k, v in counts.items() if k in states) >= n:
            return counts
        if not proc.alive():
            raise BenchError(f"{proc.name} exited ({proc.describe_exit()}) before {what}{proc.log_hint()}")
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}: states {counts}")
        time.sleep(0.2)
