"""The Temporal client side of the benchmark: the floor's driver, whether a worker polls its
queues yet, the timer probe, and the result waiter our orders' driver uses."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

from scripts.benchlib.floor import ORDER_WORKFLOW, TIMER_WORKFLOW
from scripts.benchlib.measure import summary_ms
from scripts.benchlib.stack import START_TIMEOUT_S, BenchError
from scripts.stack import Process, wait_for

# How long one order (or floor workflow) may take before it counts as an error. Generous: with flaky
# calls, a regular activity's retries can take minutes in the tail on a loaded machine.
ORDER_TIMEOUT_S = 600.0


class TemporalSide:
    """A Temporal client on an event loop owned by the main thread."""

    def __init__(self, address: str, floor_order_queue: str, floor_shipping_queue: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.address = address
        self.floor_order_queue = floor_order_queue
        self.floor_shipping_queue = floor_shipping_queue
        self.client: Any = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(_ticking(coro))

    def connect(self) -> None:
        from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
        from temporalio.client import Client

        async def go() -> Any:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    client = await Client.connect(self.address)
                    await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
                    return client
                except Exception as err:  # the dev server may still be registering the namespace
                    if time.monotonic() > deadline:
                        raise BenchError(f"Temporal at {self.address} is not ready: {err}") from err
                    await asyncio.sleep(0.2)

        self.client = self.run(go())

    def wait_for_pollers(self, process: Process, queues: list[str]) -> None:
        """Until `process` polls each of `queues` for workflow and activity tasks."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        kinds = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)

        async def polling() -> bool:
            for queue in queues:
                for kind in kinds:
                    response = await self.client.workflow_service.describe_task_queue(
                        DescribeTaskQueueRequest(
                            namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=kind
                        )
                    )
                    if not any(p.identity.startswith(f"{process.pid}@") for p in response.pollers):
                        return False
            return True

        wait_for(
            lambda: self.run(polling()),
            seconds=START_TIMEOUT_S,
            what=f"{process.name} to poll {', '.join(queues)}",
            process=process,
        )

    def floor_batch(self, prefix: str, n: int, concurrency: int, spec: dict[str, Any]) -> dict[str, Any]:
        """`n` floor workflows `<prefix>-<i>`, `concurrency` at a time: started, approved at once, awaited."""
        spec = {**spec, "shipping_queue": self.floor_shipping_queue}
        return self.run(_floor_batch(self.client, self.floor_order_queue, prefix, n, concurrency, spec))

    def timer_probe(self, run_id: str, count: int = 5, ms: float = 50.0) -> dict[str, Any]:
        """How long `count` durable timers of `ms` take on this server (activity retries wait on such timers)."""

        async def go() -> float:
            t0 = time.perf_counter()
            await self.client.execute_workflow(
                TIMER_WORKFLOW, {"count": count, "ms": ms}, id=f"timer-probe-{run_id}-{secrets.token_hex(3)}",
                task_queue=self.floor_order_queue,
            )  # fmt: skip
            return time.perf_counter() - t0

        wall = self.run(go())
        return {"timers": count, "requested_ms": ms, "observed_ms_per_timer": round(wall * 1000.0 / count, 1)}

    def close(self) -> None:
        try:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:  # left behind by an interrupted phase
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=5))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


async def _ticking(coro: Any) -> Any:
    """Await `coro` while waking the loop every 0.2 s.

    Ctrl-C (SIGINT) may be delivered to one of the Temporal bridge's threads; Python then runs the
    handler only when the main thread next runs Python code, so it must never sleep for long.
    """

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.2)

    ticker = asyncio.ensure_future(tick())
    try:
        return await coro
    finally:
        ticker.cancel()


async def _floor_batch(
    client: Any, task_queue: str, prefix: str, n: int, concurrency: int, spec: dict[str, Any]
) -> dict[str, Any]:
    latencies: list[float] = []
    starts: list[float] = []
    signals: list[float] = []
    errors: list[str] = []
    todo = list(range(n))
    last_done: list[float] = []

    async def one(i: int) -> None:
        t0 = time.perf_counter()
        try:
            handle = await client.start_workflow(ORDER_WORKFLOW, spec, id=f"{prefix}-{i}", task_queue=task_queue)
            t_started = time.perf_counter()
            await handle.signal("approve")
            t_signalled = time.perf_counter()
            result = await asyncio.wait_for(handle.result(), ORDER_TIMEOUT_S)
            if result != "COMPLETED":
                raise RuntimeError(f"result {result!r}")
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            starts.append(t_started - t0)
            signals.append(t_signalled - t_started)
            last_done.append(t1)
        except Exception as err:
            errors.append(f"{prefix}-{i}: {type(err).__name__}: {err}")

    async def lane() -> None:
        while todo:
            await one(todo.pop(0))

    t_start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    wall = (max(last_done) if last_done else time.perf_counter()) - t_start
    extra = {
        "start_request_ms_p50": summary_ms(starts)["p50"],
        "approve_request_ms_p50": summary_ms(signals)["p50"],
        "approve_request_ms_p95": summary_ms(signals)["p95"],
    }
    return {"latencies": latencies, "errors": errors, "wall": wall, "extra": extra}


class ResultWaiter:
    """One Temporal client on an asyncio loop of its own, in a background thread.

    The driver's threads wait for an order workflow's result through it (`--completion result`),
    instead of polling the web app's /status: a real client would learn about completion from a
    push, not by costing the web ~15 ms of CPU per poll.
    """

    def __init__(self, address: str, *, payload_key: str | None = None) -> None:
        self.address = address
        self.payload_key = payload_key  # the app's PAYLOAD_ENCRYPTION_KEY: results arrive encrypted
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="bench-results", daemon=True)
        self.client: Any = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> None:
        from temporalio.client import Client

        from lifecycle.codec import EncryptionCodec, data_converter, parse_key

        codec = EncryptionCodec(parse_key(self.payload_key, "PAYLOAD_ENCRYPTION_KEY")) if self.payload_key else None
        self.thread.start()
        try:
            connecting = Client.connect(self.address, data_converter=data_converter(codec))
            self.client = asyncio.run_coroutine_threadsafe(connecting, self.loop).result(30)
        except Exception as err:
            raise BenchError(f"the result client could not connect to Temporal at {self.address}: {err}") from err

    def result(self, workflow_id: str, deadline: float, stop: threading.Event) -> Any:
        """The workflow's result; raises what the workflow raised, or on `stop` or past `deadline`."""
        future = asyncio.run_coroutine_threadsafe(self.client.get_workflow_handle(workflow_id).result(), self.loop)
        try:
            while True:
                try:
                    return future.result(timeout=0.2)  # returns as soon as the result is in
                except TimeoutError:
                    if stop.is_set():
                        raise RuntimeError("interrupted") from None
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"no result after {ORDER_TIMEOUT_S:.0f} s") from None
        finally:
            future.cancel()

    def close(self) -> None:
        if not self.thread.is_alive():
            self.loop.close()
            return

        async def cancel_pending() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)

        try:
            asyncio.run_coroutine_threadsafe(cancel_pending(), self.loop).result(10)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()
