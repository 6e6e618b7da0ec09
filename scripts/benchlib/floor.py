"""The benchmark's floor: bare Temporal workflows of the same shape as an order, doing nothing.

`scripts/bench.py` starts this module as its own process to host the floor's workers:

    .venv/bin/python -m scripts.benchlib.floor worker --address 127.0.0.1:7233 \
        --order-queue bench-floor-order --shipping-queue bench-floor-shipping

and drives the workflows itself with the Temporal client, by name (`BenchFloorOrder`). The
workflows live in a module of their own because Temporal's workflow sandbox re-imports a
workflow's module by name, which a script's `__main__` cannot be.

The default shape is the one issue #5 defines: "6 no-op activities, a child workflow with 2 no-op
activities on a second queue, approval signalled right after start". Every activity is a no-op and
there is no database, web app or Django anywhere:

    parent on the order queue:   3 activities                              (received, validated, review)
                                 wait for the "approve" signal
                                 1 activity                                (charged)
                                 child on the shipping queue:
                                     1 activity                            (package_prepared)
                                     1 activity                            (carrier_dispatched)
                                 2 activities                              (shipped, completed)

`parent_activities` (6 by default) comes in the workflow input: bench.py's `--floor-activities`.

Activity options are the order workflow's: start-to-close 2 s; retries from 5 ms, doubling, at most
200 ms. The worker is configured like `manage.py runworker`: both queues in one process, one
client, synchronous activities on a 20-thread ThreadPoolExecutor, max_concurrent_activities 20,
everything else at the SDK's defaults. bench.py's scale-out phase runs two such processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

ORDER_WORKFLOW = "BenchFloorOrder"
SHIPPING_WORKFLOW = "BenchFloorShipping"
TIMER_WORKFLOW = "BenchTimerProbe"

ACTIVITY_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=5),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(milliseconds=200),
        maximum_attempts=1000,
    ),
}


@activity.defn(name="floor_noop")
def floor_noop(step: str) -> str:
    """A synchronous no-op, run on the worker's thread pool like the order activities."""
    return step


def split_activities(total: int) -> tuple[int, int, int]:
    """How many parent activities go before approval, between approval and the child, after it."""
    before = min(3, total)
    after = min(2, total - before)
    return before, total - before - after, after


@workflow.defn(name=ORDER_WORKFLOW)
class FloorOrderWorkflow:
    def __init__(self) -> None:
        self._approved = False

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> str:
        before, between, after = split_activities(int(spec.get("parent_activities", 6)))
        for i in range(before):
            await workflow.execute_activity("floor_noop", f"pre-{i}", **ACTIVITY_OPTIONS)
        await workflow.wait_condition(lambda: self._approved)
        for i in range(between):
            await workflow.execute_activity("floor_noop", f"mid-{i}", **ACTIVITY_OPTIONS)
        await workflow.execute_child_workflow(
            SHIPPING_WORKFLOW, id=f"{workflow.info().workflow_id}-shipping", task_queue=spec["shipping_queue"]
        )
        for i in range(after):
            await workflow.execute_activity("floor_noop", f"post-{i}", **ACTIVITY_OPTIONS)
        return "COMPLETED"

    @workflow.signal(name="approve")
    def approve(self) -> None:
        self._approved = True


@workflow.defn(name=SHIPPING_WORKFLOW)
class FloorShippingWorkflow:
    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity("floor_noop", "package_prepared", **ACTIVITY_OPTIONS)
        await workflow.execute_activity("floor_noop", "carrier_dispatched", **ACTIVITY_OPTIONS)
        return "SHIPPED"


@workflow.defn(name=TIMER_WORKFLOW)
class TimerProbeWorkflow:
    """Sleeps `count` durable timers of `ms` each: how precise the server's timers are.

    Activity retries wait on the same kind of server timer, so this says what a retry's 5-200 ms
    backoff really costs on the server under test.
    """

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> None:
        for _ in range(int(spec["count"])):
            await workflow.sleep(float(spec["ms"]) / 1000.0)


async def serve(address: str, order_queue: str, shipping_queue: str, threads: int) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="floor-activity") as executor:
        common: dict[str, Any] = {
            "activities": [floor_noop],
            "activity_executor": executor,
            "max_concurrent_activities": threads,
        }
        workers = [
            Worker(client, task_queue=order_queue, workflows=[FloorOrderWorkflow, TimerProbeWorkflow], **common),
            Worker(client, task_queue=shipping_queue, workflows=[FloorShippingWorkflow], **common),
        ]
        runs = [asyncio.create_task(w.run()) for w in workers]
        print(f"floor worker ready (pid {os.getpid()}): {order_queue}, {shipping_queue}", flush=True)
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, *runs], return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        stopped.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    worker = sub.add_parser("worker", help="host the floor's workflows and no-op activities")
    worker.add_argument("--address", required=True, help="Temporal frontend host:port")
    worker.add_argument("--order-queue", required=True)
    worker.add_argument("--shipping-queue", required=True)
    worker.add_argument("--threads", type=int, default=20, help="activity threads = max_concurrent_activities [20]")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.address, args.order_queue, args.shipping_queue, args.threads))
    return 0


if __name__ == "__main__":
    # Run the copy imported under its own name, so the workflow classes belong to
    # `scripts.benchlib.floor` (importable by the sandbox) and not to `__main__`.
    from scripts.benchlib import floor

    sys.exit(floor.main())
