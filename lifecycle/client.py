"""Talking to Temporal from Django: one lazily created client per event loop, reused.

Under ASGI there is one event loop per web process, so one client. Sync code (admin, management
commands) reaches these coroutines through asgiref's `async_to_sync`.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from temporalio.api.enums.v1 import TaskQueueType, WorkerStatus
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest, ListWorkersRequest
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from lifecycle.connect import connect
from lifecycle.states import Action
from lifecycle.types import ActionResult, ActorRequest, AddressChange, OrderInput, Tuning
from lifecycle.workflows import ASK_SHIPPING, OrderWorkflow, shipping_workflow_id

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = weakref.WeakKeyDictionary()
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

UPDATE_NAMES = {
    Action.APPROVE: "approve",
    Action.CANCEL: "cancel",
    Action.UPDATE_ADDRESS: "change_address",
    Action.CLAIM: "claim",
    Action.RELEASE: "release",
}


class TemporalUnavailable(Exception):
    """Temporal (or a worker for the order) did not answer in time."""


class ActionRefused(Exception):
    """The workflow refused an action; `state` is the order's state as the workflow saw it."""

    def __init__(self, detail: str, state: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.state = state


async def get_client() -> Client:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is not None:
        return client
    lock = _locks.setdefault(loop, asyncio.Lock())
    async with lock:
        client = _clients.get(loop)
        if client is None:
            try:
                client = await connect()
            except RuntimeError as err:  # the core SDK reports connection failures as RuntimeError
                raise TemporalUnavailable(f"cannot reach Temporal at {settings.TEMPORAL_ADDRESS}: {err}") from err
            _clients[loop] = client
    return client


def tuning_from_settings() -> Tuning:
    return Tuning(
        activity_timeout_seconds=settings.ACTIVITY_TIMEOUT_SECONDS,
        activity_max_attempts=settings.ACTIVITY_MAX_ATTEMPTS,
        approval_timeout_seconds=settings.APPROVAL_TIMEOUT_SECONDS,
        four_eyes_min_total=settings.FOUR_EYES_MIN_TOTAL,
        claim_ttl_seconds=settings.CLAIM_TTL_SECONDS,
        escalate_after_seconds=settings.ESCALATE_AFTER_SECONDS,
    )


async def start_order_workflow(order: OrderInput) -> str:
    """Start the order's workflow (id = order id) unless it already runs; returns its run id."""
    client = await get_client()
    run_timeout = settings.WORKFLOW_RUN_TIMEOUT_SECONDS
    try:
        handle = await client.start_workflow(
            OrderWorkflow.run,
            order,
            id=order.order_id,
            task_queue=settings.ORDER_TASK_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            run_timeout=timedelta(seconds=run_timeout) if run_timeout else None,
        )
    except WorkflowAlreadyStartedError as err:
        if err.run_id:
            return err.run_id
        description = await client.get_workflow_handle(order.order_id).describe()
        return description.run_id
    except RPCError as err:
        raise TemporalUnavailable(f"Temporal did not start the workflow: {err.message}") from err
    return handle.result_run_id or ""


async def send_action(
    order_id: str,
    action: Action,
    *,
    actor: str,
    via: str,
    address: dict[str, Any] | None = None,
    reason: str = "",
    update_id: str | None = None,
    may_reassign: bool = False,
) -> ActionResult:
    """Ask the order's workflow to apply an action and wait for its verdict.

    `update_id` names the Update: sent again with the same id (a client retrying after a 503 or a
    lost answer), the server attaches the request to the first one and returns its outcome instead
    of applying the action twice. Without it every call is a new Update.

    Raises ActionRefused when the workflow (or the fact that it has ended) refuses it, and
    TemporalUnavailable when no verdict came within TEMPORAL_UPDATE_TIMEOUT_SECONDS in all.
    """
    client = await get_client()
    payload: ActorRequest | AddressChange
    if action is Action.UPDATE_ADDRESS:
        payload = AddressChange(address=address or {}, actor=actor, via=via)
    else:
        payload = ActorRequest(actor=actor, reason=reason, via=via, may_reassign=may_reassign)
    budget = settings.TEMPORAL_UPDATE_TIMEOUT_SECONDS
    try:
        # One deadline for the whole call: an Update can take two RPCs (admission, then result),
        # and one more workflow when the order's shipping child decides.
        async with asyncio.timeout(budget):
            return await _deliver(client, order_id, UPDATE_NAMES[action], payload, update_id, budget)
    except TimeoutError as err:
        raise TemporalUnavailable(
            f"the order's workflow did not answer within {budget:g} s; check its status before retrying"
        ) from err
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError):
            state = cause.details[0] if cause.details else None
            raise ActionRefused(cause.message, state=str(state) if state else None) from err
        raise ActionRefused(f"the workflow refused the action: {cause}") from err
    except WorkflowUpdateRPCTimeoutOrCancelledError as err:
        raise TemporalUnavailable(
            "the order's workflow did not answer in time; check its status before retrying"
        ) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ActionRefused("the order's workflow has ended") from err
        raise TemporalUnavailable(f"Temporal did not deliver the action: {err.message}") from err


SHIPPING_RETRY_S = 0.05


async def _deliver(
    client: Client, order_id: str, name: str, payload: Any, update_id: str | None, budget: float
) -> ActionResult:
    """The Update to the order's workflow, or to its shipping child when the order says so.

    While the shipping child decides (see lifecycle.workflows) the order answers ASK_SHIPPING
    without recording anything, so the same update id goes on to the child. A child not started
    yet or already finished is NOT_FOUND: then the order is asked again a moment later, and by
    then it either has the child's outcome or has the child running. The caller's deadline bounds
    the loop.
    """

    async def update(workflow_id: str) -> ActionResult:
        return await client.get_workflow_handle(workflow_id).execute_update(
            name, payload, id=update_id, result_type=ActionResult, rpc_timeout=timedelta(seconds=budget)
        )

    while True:
        try:
            return await update(order_id)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == ASK_SHIPPING):
                raise
        try:
            return await update(shipping_workflow_id(order_id))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(SHIPPING_RETRY_S)


# A live worker's long poll lasts up to a minute, and it polls again as soon as one ends: a worker
# that has not polled for longer has gone away without saying so (killed, or cut off).
POLLER_FRESHNESS = timedelta(seconds=90)
STOPPED = (WorkerStatus.WORKER_STATUS_SHUTTING_DOWN, WorkerStatus.WORKER_STATUS_SHUTDOWN)
HEALTH_RPC_TIMEOUT = timedelta(seconds=5)
HEARTBEAT_PAGES = 5


async def queue_workers(task_queue: str) -> int:
    """How many workers serve `task_queue` for workflow tasks now.

    The server lists each worker that polled the queue and when its latest poll began; a worker
    stays listed for minutes after it stops. A worker stopped the usual way (SIGTERM, a deploy)
    says so in its worker heartbeat, and counts no more from then on unless it, or a new worker
    of the same identity, has polled since. Servers keep heartbeats from Temporal 1.29.1 with
    `frontend.WorkerHeartbeatsEnabled` and `frontend.ListWorkersEnabled` (the dev server of the
    `temporal` CLI here has them on); without them, and for a worker killed outright, a worker
    drops out POLLER_FRESHNESS after its last poll began.
    """
    client = await get_client()
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=HEALTH_RPC_TIMEOUT,
    )
    now = datetime.now(UTC)
    polled = {poller.identity: poller.last_access_time.ToDatetime(UTC) for poller in response.pollers}
    polled = {identity: at for identity, at in polled.items() if now - at < POLLER_FRESHNESS}
    if not polled:
        return 0
    stopped = await _stopped_at(client, task_queue)
    return sum(1 for identity, at in polled.items() if identity not in stopped or at > stopped[identity])


async def _stopped_at(client: Client, task_queue: str) -> dict[str, datetime]:
    """When each worker identity on `task_queue` last reported that it is stopping, from the
    server's worker heartbeats; empty where the server keeps none (older servers, or turned off)."""
    if "'" in task_queue:  # not expressible in the list query; the pollers alone decide then
        return {}
    stopped: dict[str, datetime] = {}
    token = b""
    for _ in range(HEARTBEAT_PAGES):
        try:
            response = await client.workflow_service.list_workers(
                ListWorkersRequest(
                    namespace=client.namespace, query=f"TaskQueue = '{task_queue}'", next_page_token=token
                ),
                timeout=HEALTH_RPC_TIMEOUT,
            )
        except RPCError:
            return stopped
        for info in response.workers_info:
            heartbeat = info.worker_heartbeat
            if heartbeat.status in STOPPED and heartbeat.HasField("heartbeat_time"):
                at = heartbeat.heartbeat_time.ToDatetime(UTC)
                identity = heartbeat.worker_identity
                stopped[identity] = max(at, stopped.get(identity, at))
        token = response.next_page_token
        if not token:
            break
    return stopped


def _workers(count: int) -> str:
    return f"ok ({count} worker{'' if count == 1 else 's'})" if count else "no worker"


async def workers_health(task_queues: list[str]) -> dict[str, str]:
    """Per task queue: "ok (N workers)", "no worker", or "unknown: why"."""
    report: dict[str, str] = {}
    for task_queue in task_queues:
        try:
            report[task_queue] = _workers(await queue_workers(task_queue))
        except (TimeoutError, TemporalUnavailable, RPCError, RuntimeError) as err:
            report[task_queue] = f"unknown: {err or type(err).__name__}"
    return report


async def temporal_health() -> str:
    """ "ok", or why Temporal cannot be used."""
    try:
        client = await asyncio.wait_for(get_client(), timeout=5)
        await asyncio.wait_for(client.service_client.check_health(), timeout=5)
    except (TimeoutError, TemporalUnavailable, RPCError, RuntimeError) as err:
        return f"unreachable at {settings.TEMPORAL_ADDRESS}: {err or type(err).__name__}"
    return "ok"
