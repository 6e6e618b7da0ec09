"""The two task-queue workers, built from settings and run until asked to stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from lifecycle.activities import ORDER_ACTIVITIES, SHIPPING_ACTIVITIES
from lifecycle.sandbox import compiled_sandbox_runner
from lifecycle.workflows import OrderWorkflow, ShippingWorkflow

logger = logging.getLogger("lifecycle.worker")

QUEUES = ("order", "shipping")


@dataclass(frozen=True)
class WorkerConfig:
    order_task_queue: str
    shipping_task_queue: str
    activity_threads: int = 20
    grace_seconds: float = 10.0
    # Workflows kept in memory between tasks; beyond this the least recent are evicted and
    # replayed from history when they next wake, which bounds a worker's memory.
    max_cached_workflows: int = 1000
    # Run workflow code inside Temporal's sandbox (see `workflow_runner`).
    sandbox: bool = True


def workflow_runner(sandbox: bool) -> WorkflowRunner:
    """The sandbox re-checks every workflow task for clocks, randomness and I/O; without it the
    same code runs directly. Either way the tests replay recorded histories in the full sandbox."""
    if not sandbox:
        return UnsandboxedWorkflowRunner()
    # Modules pass through the sandbox instead of being re-imported for every workflow run: the
    # workflow code imports only deterministic modules of its own and temporalio, and the
    # sandbox's restrictions (no clock, no randomness, no I/O) still apply. Measured: about
    # 90 ms less per order at concurrency 1 and 15 % less worker CPU (docs/performance.md). The
    # sandbox's entry code is compiled once instead of at every activation (lifecycle.sandbox).
    return compiled_sandbox_runner(SandboxRestrictions.default.with_passthrough_all_modules())


def activity_executor(config: WorkerConfig, queues: tuple[str, ...]) -> ThreadPoolExecutor:
    """One thread pool for the process's workers, with a thread for every activity they may run
    at once: each worker runs up to `activity_threads` activities and as many local activities
    (all synchronous). Smaller, an activity could wait for a thread while its start-to-close
    timeout runs. Threads start only when needed."""
    slots = 2 * config.activity_threads * len(queues)
    return ThreadPoolExecutor(max_workers=slots, thread_name_prefix="activity")


def build_workers(
    client: Client, queues: tuple[str, ...], config: WorkerConfig, executor: ThreadPoolExecutor
) -> list[Worker]:
    common = {
        "activity_executor": executor,
        "max_concurrent_activities": config.activity_threads,
        "max_concurrent_local_activities": config.activity_threads,
        "graceful_shutdown_timeout": timedelta(seconds=config.grace_seconds),
        "max_cached_workflows": config.max_cached_workflows,
        "workflow_runner": workflow_runner(config.sandbox),
    }
    workers = []
    if "order" in queues:
        workers.append(
            Worker(
                client,
                task_queue=config.order_task_queue,
                workflows=[OrderWorkflow],
                activities=ORDER_ACTIVITIES,
                **common,  # type: ignore[arg-type]
            )
        )
    if "shipping" in queues:
        workers.append(
            Worker(
                client,
                task_queue=config.shipping_task_queue,
                workflows=[ShippingWorkflow],
                activities=SHIPPING_ACTIVITIES,
                **common,  # type: ignore[arg-type]
            )
        )
    return workers


async def run_workers(
    client: Client, queues: tuple[str, ...], config: WorkerConfig, *, stop: asyncio.Event | None = None
) -> None:
    """Poll the chosen queues until SIGTERM/SIGINT (or `stop`), then drain within the grace period."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
            pass
    with activity_executor(config, queues) as executor:
        workers = build_workers(client, queues, config, executor)
        runs = [asyncio.create_task(worker.run()) for worker in workers]
        names = ", ".join(worker.task_queue for worker in workers)
        logger.info("runworker ready: polling %s (pid %s)", names, __import__("os").getpid())
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopped, *runs], return_when=asyncio.FIRST_COMPLETED)
        if stopped in done:
            logger.info("runworker stopping: draining in-flight activities (up to %ss)", config.grace_seconds)
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        for run in runs:
            if run.done() and not run.cancelled() and run.exception() is not None:
                raise run.exception()  # type: ignore[misc]
        stopped.cancel()
        logger.info("runworker stopped")
