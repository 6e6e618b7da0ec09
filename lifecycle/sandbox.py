"""Temporal's workflow sandbox, without compiling the same few lines of Python over and over.

The SDK's `SandboxedWorkflowRunner` enters a workflow's sandbox by `exec`-ing small code strings:
one per workflow activation, and one per payload it converts (to look up the serialization
context). `exec` compiles a string each time it gets one, about 20 µs here, and that was a tenth
of a worker's CPU per order (docs/performance.md). `CompiledSandboxRunner` hands `exec` the same
strings compiled once. Everything else is the SDK's: the restrictions, the per-run module state,
the code that runs.

It subclasses the SDK's private `_Instance`. `compiled_sandbox_runner` falls back to the SDK's own
runner when that class no longer looks as expected (an SDK upgrade), and test_worker.py fails
then, so that whoever upgrades notices the cost coming back.
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass
from types import CodeType
from typing import Any

from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox import _runner as sdk_runner

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=64)  # the SDK's strings: a handful, plus two per workflow class
def _compiled(code: str) -> CodeType:
    return compile(code, "<string>", "exec")


def _sdk_shape_known() -> bool:
    instance = getattr(sdk_runner, "_Instance", None)
    run_code = getattr(instance, "_run_code", None)
    if run_code is None:
        return False
    return list(inspect.signature(run_code).parameters) == ["self", "code", "extra_globals"]


@functools.cache
def _compiled_instance() -> type[WorkflowInstance]:
    """The SDK's sandbox instance, entering the sandbox with compiled code (defined on first use,
    so that an SDK without `_Instance` still imports this module and falls back)."""

    class CompiledInstance(sdk_runner._Instance):
        def _run_code(self, code: str, **extra_globals: Any) -> None:
            super()._run_code(_compiled(code), **extra_globals)  # type: ignore[arg-type]  # exec takes code objects

    return CompiledInstance


@dataclass(frozen=True)
class CompiledSandboxRunner(SandboxedWorkflowRunner):
    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _compiled_instance()(det, self.runner_class, self.restrictions)  # type: ignore[call-arg]


def compiled_sandbox_runner(restrictions: SandboxRestrictions) -> SandboxedWorkflowRunner:
    """The sandbox with `restrictions`, compiling its entry code once; the SDK's plain runner if
    this SDK's sandbox is not the one `CompiledSandboxRunner` was written against."""
    if not _sdk_shape_known():
        logger.warning("temporalio's sandbox changed: workflows run in its plain runner (slower, lifecycle/sandbox.py)")
        return SandboxedWorkflowRunner(restrictions=restrictions)
    return CompiledSandboxRunner(restrictions=restrictions)
