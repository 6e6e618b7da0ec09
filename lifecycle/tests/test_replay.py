"""Recorded histories must replay against today's workflow code.

A change to OrderWorkflow or ShippingWorkflow that would break orders already running (a
non-deterministic change) fails here. Until the first tagged release there is one version of the
workflow: change it and record the histories anew with `RECORD_HISTORIES=1 make test` (the end-to-end
tests in test_order_workflow.py and test_api_team_review.py rewrite the files under histories/, and
test_encryption.py those under histories/encrypted/, which it replays itself). From the first release on, a
change goes behind `workflow.patched` and the old histories stay (docs/decisions/0006).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from lifecycle.worker import workflow_runner
from lifecycle.workflows import OrderWorkflow, ShippingWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_recorded() -> None:
    names = {path.stem for path in HISTORIES}
    assert names >= {"happy_path", "cancel_before_payment", "dispatch_failure"}
    # The shipping child took a cancel: its Update handlers replay too.
    assert names >= {"cancel_while_shipping", "cancel_while_shipping_shipping"}
    # A team's review: claims, a first approval and the second (Updates with activities of their own).
    assert "four_eyes_with_claim" in names


# The runners: Temporal's default sandbox (stricter than the worker's pass-through one, so a clock,
# a random number or I/O in workflow code fails here), the worker's own (lifecycle.sandbox), and
# the one WORKFLOW_SANDBOX=0 picks.
RUNNERS = {
    "full sandbox": lambda: {},
    "worker's sandbox": lambda: {"workflow_runner": workflow_runner(sandbox=True)},
    "WORKFLOW_SANDBOX=0": lambda: {"workflow_runner": workflow_runner(sandbox=False)},
}


@pytest.mark.parametrize("runner", list(RUNNERS))
@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
def test_recorded_history_replays_without_nondeterminism(path: Path, runner: str) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())

    async def replay() -> None:
        replayer = Replayer(workflows=[OrderWorkflow, ShippingWorkflow], **RUNNERS[runner]())
        await replayer.replay_workflow(history)

    asyncio.run(replay())
