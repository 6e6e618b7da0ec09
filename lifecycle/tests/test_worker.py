"""The workers' shape: what a runworker process may run at once, and on what."""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.worker import UnsandboxedWorkflowRunner

from lifecycle.sandbox import CompiledSandboxRunner
from lifecycle.worker import QUEUES, WorkerConfig, activity_executor, build_workers, workflow_runner


def test_the_activity_threads_cover_every_activity_both_workers_may_run_at_once(time_skipping: Any) -> None:
    """Both task queues' workers share one thread pool: with fewer threads than their slots, an
    activity could queue for a thread while its start-to-close timeout runs."""

    async def slots(queues: tuple[str, ...]) -> tuple[int, int]:
        suffix = uuid.uuid4().hex
        config = WorkerConfig(f"order-{suffix}", f"shipping-{suffix}", activity_threads=7)
        with activity_executor(config, queues) as executor:
            workers = build_workers(time_skipping.client, queues, config, executor)
            wanted = sum(
                worker.config()["max_concurrent_activities"] + worker.config()["max_concurrent_local_activities"]
                for worker in workers
            )
            return wanted, executor._max_workers

    assert time_skipping.run(slots(QUEUES)) == (28, 28)
    assert time_skipping.run(slots(("shipping",))) == (14, 14)


def test_workflows_run_in_the_sandbox_that_compiles_its_entry_code_once() -> None:
    """If a temporalio upgrade changed the sandbox's private `_Instance`, lifecycle.sandbox falls
    back to the SDK's plain runner and every workflow activation pays for compiling again: this
    says so, so that whoever upgrades adapts `CompiledSandboxRunner` (or drops it)."""
    runner = workflow_runner(sandbox=True)
    assert isinstance(runner, CompiledSandboxRunner)
    assert runner.restrictions.passthrough_all_modules
    assert isinstance(workflow_runner(sandbox=False), UnsandboxedWorkflowRunner)
