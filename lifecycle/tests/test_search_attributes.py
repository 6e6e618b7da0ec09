"""The `OrderState` search attribute: the workflow keeps it current, and reconcile reads it.

Through the real dev server (its visibility store answers the queries), the API and real workers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    DescribeWorkflowInput,
    Interceptor,
    ListWorkflowsInput,
    OutboundInterceptor,
    QueryWorkflowInput,
    WorkflowExecutionAsyncIterator,
    WorkflowExecutionDescription,
)

from orders.tests.factories import new_order_id, order_body, wait_for_state

VISIBLE_WITHIN_S = 15.0


class CountingCalls(Interceptor):
    """Counts the client calls reconcile makes; every call still goes to the server."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        calls = self.calls

        class Outbound(OutboundInterceptor):
            def list_workflows(self, input: ListWorkflowsInput) -> WorkflowExecutionAsyncIterator:
                calls["list"] += 1
                return super().list_workflows(input)

            async def describe_workflow(self, input: DescribeWorkflowInput) -> WorkflowExecutionDescription:
                calls["describe"] += 1
                return await super().describe_workflow(input)

            async def query_workflow(self, input: QueryWorkflowInput) -> Any:
                calls["query"] += 1
                return await super().query_workflow(input)

        return Outbound(next)


def listed(temporal: Any, query: str) -> list[str]:
    async def ids() -> list[str]:
        return [execution.id async for execution in temporal.client.list_workflows(query)]

    return sorted(temporal.run(ids()))


def wait_until_listed(temporal: Any, query: str, expected: list[str]) -> None:
    """Visibility follows the workflow by a moment: poll until the query lists exactly `expected`."""
    deadline = time.monotonic() + VISIBLE_WITHIN_S
    while (found := listed(temporal, query)) != sorted(expected):
        assert time.monotonic() < deadline, f"{query} lists {found}, not {sorted(expected)}"
        time.sleep(0.1)


def test_order_state_follows_the_order_and_finds_the_waiting_ones(
    api: Any, workers: Any, temporal: Any, queues: Any
) -> None:
    waiting, done = new_order_id(), new_order_id()
    for order_id in (waiting, done):
        assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
        wait_for_state(order_id, "AWAITING_APPROVAL")
    on_our_queue = f'TaskQueue = "{queues.order_task_queue}"'
    wait_until_listed(temporal, f"OrderState = 'AWAITING_APPROVAL' AND {on_our_queue}", [done, waiting])

    assert api.post(f"/orders/{done}/signals/approve").status_code == 202
    wait_for_state(done, "COMPLETED")
    wait_until_listed(temporal, f"OrderState = 'AWAITING_APPROVAL' AND {on_our_queue}", [waiting])
    wait_until_listed(temporal, f"OrderState = 'COMPLETED' AND {on_our_queue}", [done])

    # Nothing at the start; AWAITING_APPROVAL once the order had waited REST_BEFORE_PUBLISHING,
    # then every state it rests in, at once. PAYMENT_CHARGED and SHIPPED pass within one task.
    assert published_states(temporal, done) == ["AWAITING_APPROVAL", "SHIPPING", "COMPLETED"]


def test_an_order_that_rests_nowhere_is_never_written_to_visibility(api: Any, workers: Any, temporal: Any) -> None:
    """Approved within seconds, shipped within seconds: no OrderState at all, so no visibility
    write for it; the closed workflow's status says how it ended."""
    order_id = new_order_id()
    assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    wait_for_state(order_id, "AWAITING_APPROVAL")
    assert api.post(f"/orders/{order_id}/signals/approve").status_code == 202
    wait_for_state(order_id, "COMPLETED")
    assert published_states(temporal, order_id) == []


def published_states(temporal: Any, workflow_id: str) -> list[str]:
    """The OrderState values the workflow's history wrote: at its start, then each upsert."""
    history = temporal.run(temporal.client.get_workflow_handle(workflow_id).fetch_history())
    started = history.events[0].workflow_execution_started_event_attributes
    fields = [started.search_attributes.indexed_fields] if started.HasField("search_attributes") else []
    fields += [
        event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    return [json.loads(indexed["OrderState"].data) for indexed in fields if "OrderState" in indexed]


def test_reconcile_reads_open_orders_from_one_paged_visibility_query(
    api: Any, workers: Any, temporal: Any, queues: Any, monkeypatch: Any
) -> None:
    """Five waiting orders over three pages: one list call, no describe and no query per order."""
    from orders import reconciliation
    from orders.models import Order

    order_ids = [new_order_id() for _ in range(5)]
    for order_id in order_ids:
        assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    for order_id in order_ids:
        wait_for_state(order_id, "AWAITING_APPROVAL")
    wait_until_listed(
        temporal, f"OrderState = 'AWAITING_APPROVAL' AND TaskQueue = '{queues.order_task_queue}'", order_ids
    )
    monkeypatch.setattr(reconciliation, "LIST_PAGE_SIZE", 2)
    counting = CountingCalls()
    client = Client(**{**temporal.client.config(), "interceptors": [counting]})

    checked, drifts = temporal.run(reconciliation.reconcile(fix=False, settle=0.1, client=client))
    assert (checked, drifts) == (5, [])
    assert counting.calls == Counter(list=1)

    # A drifted order is asked (query, then a describe and a query after settling); the rest are not.
    Order.objects.filter(id=order_ids[0]).update(state="ORDER_RECEIVED")
    counting.calls.clear()
    checked, drifts = temporal.run(reconciliation.reconcile(fix=False, settle=0.1, client=client))
    assert checked == 5
    assert [(d.order_id, d.problem, d.workflow_state) for d in drifts] == [
        (order_ids[0], reconciliation.STATE_DIFFERS, "AWAITING_APPROVAL")
    ]
    assert counting.calls == Counter(list=1, query=2, describe=1)


def test_every_dev_server_the_stack_starts_registers_order_state(tmp_path: Any) -> None:
    from scripts.stack import TemporalServer

    args = TemporalServer(7999, tmp_path / "temporal.db").args()
    assert "--search-attribute" in args
    assert args[args.index("--search-attribute") + 1] == "OrderState=Keyword"
