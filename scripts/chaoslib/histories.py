"""What Temporal recorded: each order workflow's history (with its shipping child's), and which
workflows are still running."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass
class History:
    """What one order workflow's Temporal history (with its shipping child's) says: its charge
    attempts, its workflow tasks, the actions it accepted and how it ended."""

    attempts: int = 0  # of payment_charged
    last_failure_timeout: bool = False
    last_started: datetime | None = None  # when the last attempt of payment_charged started
    timed_out_events: int = 0
    result: str | None = None
    closed: str = "RUNNING"
    workflow_task_timeouts: int = 0
    workflow_task_max_attempt: int = 0
    updates_accepted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        accepted = ", ".join(self.updates_accepted) or "none"
        return (
            f"history: {self.closed}, updates accepted: {accepted}, workflow task timeouts "
            f"{self.workflow_task_timeouts}, highest workflow task attempt {self.workflow_task_max_attempt}"
        )


async def fetch_histories(address: str, order_ids: list[str]) -> dict[str, History]:
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    client = await Client.connect(address)
    limit = asyncio.Semaphore(8)
    closing = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "COMPLETED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "FAILED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "TERMINATED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "TIMED_OUT",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "CANCELED",
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
    }

    async def child_updates(order_id: str, found: History) -> None:
        """The shipping child decides cancel and address changes while the order ships: its
        accepted Updates count as the order's, and its workflow tasks as well."""
        from temporalio.service import RPCError, RPCStatusCode

        try:
            async with limit:
                history = await client.get_workflow_handle(f"shipping-{order_id}").fetch_history()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return  # the order never shipped
            raise
        for event in history.events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                accepted = event.workflow_execution_update_accepted_event_attributes
                found.updates_accepted.append(accepted.accepted_request.input.name)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                attempt = event.workflow_task_scheduled_event_attributes.attempt
                found.workflow_task_max_attempt = max(found.workflow_task_max_attempt, attempt)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                found.workflow_task_timeouts += 1

    async def one(order_id: str) -> tuple[str, History]:
        found = History()
        await child_updates(order_id, found)
        async with limit:
            history = await client.get_workflow_handle(order_id).fetch_history()
        names: dict[int, str] = {}
        for event in history.events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                names[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                if names.get(started.scheduled_event_id) == "payment_charged":
                    # A retried activity's Started event is written once, for its last attempt,
                    # carrying that attempt's number and the previous attempt's failure.
                    found.attempts = max(found.attempts, started.attempt)
                    found.last_failure_timeout = started.last_failure.HasField("timeout_failure_info")
                    found.last_started = event.event_time.ToDatetime(tzinfo=UTC)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
                timed_out = event.activity_task_timed_out_event_attributes
                if names.get(timed_out.scheduled_event_id) == "payment_charged":
                    found.timed_out_events += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                attempt = event.workflow_task_scheduled_event_attributes.attempt
                found.workflow_task_max_attempt = max(found.workflow_task_max_attempt, attempt)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                found.workflow_task_timeouts += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                accepted = event.workflow_execution_update_accepted_event_attributes
                found.updates_accepted.append(accepted.accepted_request.input.name)
            elif kind in closing:
                found.closed = closing[kind]
                if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                    payloads = event.workflow_execution_completed_event_attributes.result.payloads
                    found.result = json.loads(payloads[0].data) if payloads else None
        return order_id, found

    pairs = await asyncio.gather(*(one(order_id) for order_id in order_ids))
    return dict(pairs)


async def running_workflows(address: str, order_ids: list[str]) -> list[str]:
    """The orders whose workflow has not closed yet."""
    from temporalio.client import Client, WorkflowExecutionStatus

    client = await Client.connect(address)
    limit = asyncio.Semaphore(8)

    async def running(order_id: str) -> bool:
        async with limit:
            description = await client.get_workflow_handle(order_id).describe()
        return description.status == WorkflowExecutionStatus.RUNNING

    flags = await asyncio.gather(*(running(order_id) for order_id in order_ids))
    return [order_id for order_id, flag in zip(order_ids, flags, strict=True) if flag]
