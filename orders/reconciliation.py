"""Compare every open order's database state with its workflow, and repair drift from the workflow.

The workflow owns an order's state; the database is its record. They drift only when something
went wrong outside the workflow's control (a start whose workflow never began because Temporal
was down, a database restored from an older backup, a hand edit). The workflow's word wins.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import sync_to_async
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from lifecycle.client import get_client
from lifecycle.states import END_STATES, State
from lifecycle.workflows import OrderWorkflow
from orders import services
from orders.models import Order
from orders.workflow_start import order_workflow_start

CONCURRENCY = 20
QUERY_TIMEOUT = timedelta(seconds=10)

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


def _open_orders() -> list[tuple[str, str]]:
    return list(
        Order.objects.exclude(state__in=[s.value for s in END_STATES]).order_by("created_at").values_list("id", "state")
    )


async def _check(order_id: str, database_state: str, *, fix: bool) -> Drift | None:
    client = await get_client()
    handle = client.get_workflow_handle(order_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        drift = Drift(order_id, database_state, None, NO_WORKFLOW)
        if fix and database_state == State.ORDER_RECEIVED:
            await _start(order_id)
            drift.fixed, drift.note = True, "workflow started"
        return drift
    view = await handle.query(OrderWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
    closed = description.status not in (None, WorkflowExecutionStatus.RUNNING)
    if closed and view.state not in END_STATES:
        name = description.status.name if description.status else "?"
        return Drift(order_id, database_state, view.state, WORKFLOW_CLOSED, note=f"workflow {name}; needs a person")
    if view.state == database_state:
        return None
    drift = Drift(order_id, database_state, view.state, STATE_DIFFERS)
    if fix:
        # Compare-and-set: if the workflow moved the order meanwhile, its own write stands.
        await sync_to_async(services.order_set_state)(
            order_id=order_id, state=State(view.state), from_states=(State(database_state),)
        )
        drift.fixed, drift.note = True, f"database set to {view.state}"
    return drift


async def _start(order_id: str) -> None:
    await order_workflow_start(await Order.objects.aget(id=order_id))


async def reconcile(*, fix: bool) -> tuple[int, list[Drift]]:
    """(how many open orders were checked, the drifted ones)."""
    orders = await sync_to_async(_open_orders)()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(order_id: str, state: str) -> Drift | None:
        async with limit:
            return await _check(order_id, state, fix=fix)

    results = await asyncio.gather(*(one(order_id, state) for order_id, state in orders))
    return len(orders), [drift for drift in results if drift is not None]
