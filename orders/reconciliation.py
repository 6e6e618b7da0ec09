"""Compare every open order's database state with its workflow, and repair drift from the workflow.

The workflow owns an order's state; the database is its record. They drift only when something
went wrong outside the workflow's control (a start whose workflow never began because Temporal
was down, a database restored from an older backup, a hand edit). The workflow's word wins.

A healthy order is often caught between two steps: the workflow has decided its next state
while the step that writes it is still running, or the database has moved on since the workflow
answered. So an order is in step when its stored state is one the workflow has recorded or is
recording (`recorded_state` or `state` of its `status` query), read in that order; anything else
is looked at again after `settle` seconds, and only a difference that stays put is drift.

The first look at every order comes from one visibility query (paged): the running order
workflows and their `OrderState`. An order whose stored state equals it is in step without a
call of its own; one that differs, or has no `OrderState` yet (docs/decisions/0009), is asked its
`status`; only an order with no running workflow in the list (not started, closed, or too new to
be listed) and a second look take a `describe`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from lifecycle.client import get_client
from lifecycle.states import END_STATES, State
from lifecycle.workflows import ORDER_STATE, OrderWorkflow
from orders import selectors, services
from orders.workflow_start import order_workflow_start

CONCURRENCY = 20
QUERY_TIMEOUT = timedelta(seconds=10)
SETTLE_SECONDS = 2.0
LOOKS = 3  # at most; a difference seen unchanged twice is drift
LIST_PAGE_SIZE = 1000
UNLISTED = "unlisted"  # no running workflow of that id in the visibility query's answer

NO_WORKFLOW = "no workflow"
STATE_DIFFERS = "state differs"
WORKFLOW_CLOSED = "workflow closed early"


@dataclass
class Drift:
    order_id: str
    database_state: str
    workflow_state: str | None
    problem: str
    fixed: bool = False
    note: str = ""


@dataclass(frozen=True)
class Look:
    """The workflow's answer, then the stored state read right after it."""

    database_state: str | None
    workflow_state: str | None = None  # what the workflow has decided
    recorded_state: str | None = None  # what its steps have written so far
    closed_as: str | None = None  # how the workflow ended, if it has

    def problem(self) -> str:
        """Why this look is out of step ("" if it is in step)."""
        if self.workflow_state is None:
            return NO_WORKFLOW
        if self.closed_as is not None and self.workflow_state not in END_STATES:
            return WORKFLOW_CLOSED
        if self.database_state in (self.workflow_state, self.recorded_state):
            return ""
        return STATE_DIFFERS


async def running_order_states(client: Client) -> dict[str, str | None]:
    """{workflow id: its OrderState} of every running order workflow on the order queue (one
    visibility query, read page by page)."""
    query = (
        f'WorkflowType = "{OrderWorkflow.__name__}" AND ExecutionStatus = "Running" '
        f'AND TaskQueue = "{settings.ORDER_TASK_QUEUE}"'
    )
    return {
        execution.id: execution.typed_search_attributes.get(ORDER_STATE)
        async for execution in client.list_workflows(query, page_size=LIST_PAGE_SIZE)
    }


async def _look(client: Client, order_id: str, listed: str | None = UNLISTED) -> Look:
    """`listed`: the OrderState the visibility query gave for a running workflow, if it listed it."""
    handle = client.get_workflow_handle(order_id)
    closed_as = None
    if listed == UNLISTED:
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return Look(await selectors.order_state_async(order_id=order_id))
        if description.status and description.status is not WorkflowExecutionStatus.RUNNING:
            closed_as = description.status.name
    elif listed is not None:
        stored = await selectors.order_state_async(order_id=order_id)
        if stored == listed:
            return Look(stored, listed, listed)  # in step, without asking the workflow
    view = await handle.query(OrderWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    return Look(
        await selectors.order_state_async(order_id=order_id), view.state, view.recorded_state or view.state, closed_as
    )


async def _settled_look(client: Client, order_id: str, settle: float, listed: str | None) -> Look:
    """The first look that is in step, or one whose difference stayed put for `settle` seconds."""
    look = await _look(client, order_id, listed)
    for _ in range(LOOKS - 1):
        if not look.problem():
            return look
        await asyncio.sleep(settle)
        again = await _look(client, order_id)
        if again == look:
            return look
        look = again
    return look


async def _check(client: Client, order_id: str, listed: str | None, *, fix: bool, settle: float) -> Drift | None:
    look = await _settled_look(client, order_id, settle, listed)
    problem = look.problem()
    if not problem or look.database_state is None:
        return None  # in step, or the order is gone
    drift = Drift(order_id, look.database_state, look.workflow_state, problem)
    if problem == WORKFLOW_CLOSED:
        drift.note = f"workflow {look.closed_as}; needs a person"
    elif fix and problem == NO_WORKFLOW and look.database_state == State.ORDER_RECEIVED:
        order = await sync_to_async(selectors.order_get)(order_id=order_id)
        if order is not None:
            await order_workflow_start(order)
            drift.fixed, drift.note = True, "workflow started"
    elif fix and problem == STATE_DIFFERS and look.recorded_state:
        # Compare-and-set: if the workflow moved the order meanwhile, its own write stands.
        await sync_to_async(services.order_set_state)(
            order_id=order_id, state=State(look.recorded_state), from_states=(State(look.database_state),)
        )
        drift.fixed, drift.note = True, f"database set to {look.recorded_state}"
    return drift


async def reconcile(
    *, fix: bool, settle: float = SETTLE_SECONDS, client: Client | None = None
) -> tuple[int, list[Drift]]:
    """(how many open orders were checked, the drifted ones)."""
    client = client or await get_client()
    running = await running_order_states(client)  # before the stored states: the workflow leads
    order_ids = await sync_to_async(selectors.open_order_ids)()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(order_id: str) -> Drift | None:
        async with limit:
            return await _check(client, order_id, running.get(order_id, UNLISTED), fix=fix, settle=settle)

    results = await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return len(order_ids), [drift for drift in results if drift is not None]
