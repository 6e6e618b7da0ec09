"""The order lifecycle end to end: JSON API, real Temporal dev server, real workers, real database."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError

from lifecycle.states import Action
from lifecycle.types import OrderInput, Tuning
from lifecycle.workflows import OrderWorkflow
from orders.actions import update_id_for
from orders.models import Event, Order, Payment, ProviderCharge
from orders.tests.factories import new_order_id, order_body, wait_for_state, wait_until

HISTORIES = Path(__file__).parent / "histories"
HAPPY_EVENTS = [
    "ORDER_RECEIVED",
    "ORDER_VALIDATED",
    "ORDER_APPROVED",
    "PAYMENT_CHARGED",
    "PACKAGE_PREPARED",
    "CARRIER_DISPATCHED",
    "ORDER_SHIPPED",
    "ORDER_COMPLETED",
]


def start(api: Client, order_id: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(f"/orders/{order_id}/start", body or order_body(), content_type="application/json")


def act(api: Client, order_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(f"/orders/{order_id}/signals/{action}", body or {}, content_type="application/json")


def event_types(order_id: str) -> list[str]:
    return list(Event.objects.filter(order_id=order_id).order_by("timestamp", "id").values_list("type", flat=True))


def record_history(temporal: Any, order_id: str, name: str) -> None:
    """With RECORD_HISTORIES=1, keep this run's history for the replay test."""
    if not os.environ.get("RECORD_HISTORIES"):
        return
    for workflow_id, suffix in ((order_id, ""), (f"shipping-{order_id}", "_shipping")):
        try:
            history = temporal.run(temporal.client.get_workflow_handle(workflow_id).fetch_history())
        except Exception:  # no shipping child for this order
            continue
        (HISTORIES / f"{name}{suffix}.json").write_text(history.to_json())


def test_seed_order_completes_with_one_row_per_fact_in_every_table(api: Client, workers: Any, temporal: Any) -> None:
    order_id = new_order_id()
    body = order_body()

    response = start(api, order_id, body)
    assert response.status_code == 201, response.json()
    assert response.json()["workflow_id"] == order_id
    assert response.json()["run_id"]
    wait_for_state(order_id, "AWAITING_APPROVAL")
    assert act(api, order_id, "approve").status_code == 202
    wait_for_state(order_id, "COMPLETED")

    order = Order.objects.get(id=order_id)
    assert order.items_json == [{"name": "Widget", "price": "29.99", "quantity": 2}]
    assert order.address_json == body["address"]
    assert order.total == Decimal("59.98")
    assert order.workflow_run_id == response.json()["run_id"]  # stored by order_received
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.payment_id, payment.status, payment.amount) == (body["payment_id"], "COMPLETED", Decimal("59.98"))
    assert event_types(order_id) == HAPPY_EVENTS
    charged = Event.objects.get(order_id=order_id, type="PAYMENT_CHARGED").payload_json
    assert charged == {"payment_id": body["payment_id"], "amount": "59.98", "previous_status": "PENDING"}
    assert Event.objects.get(order_id=order_id, type="ORDER_APPROVED").payload_json["actor"] == "api-client"
    assert list(ProviderCharge.objects.filter(idempotency_key=body["payment_id"]).values_list("kind", "amount")) == [
        ("charge", Decimal("59.98"))
    ]
    status = api.get(f"/orders/{order_id}/status").json()
    assert status["state"] == "COMPLETED"
    assert status["total"] == "59.98"
    assert status["payment"]["status"] == "COMPLETED"
    assert [e["type"] for e in status["events"]] == HAPPY_EVENTS
    result = temporal.run(temporal.client.get_workflow_handle(order_id).result())
    assert result == "COMPLETED"
    record_history(temporal, order_id, "happy_path")


def history_steps(temporal: Any, workflow_id: str) -> tuple[list[str], int]:
    """The activity tasks a workflow scheduled, by name, and how many local activities it ran."""
    history = temporal.run(temporal.client.get_workflow_handle(workflow_id).fetch_history())
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    local = sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    return scheduled, local


def test_only_the_steps_after_a_decision_are_activity_tasks(api: Client, workers: Any, temporal: Any) -> None:
    """The charge follows an Update, so it is scheduled by the task that made the Update durable;
    the dispatch is scheduled by the task that closes the cut-off; every other step runs as a local
    activity (lifecycle.workflows.local_step). No signal passes between the order and its shipping
    child, and there is one version of the workflow: no patch marker."""
    order_id = new_order_id()
    start(api, order_id)
    assert act(api, order_id, "approve").status_code == 202
    assert temporal.run(temporal.client.get_workflow_handle(order_id).result()) == "COMPLETED"

    assert history_steps(temporal, order_id) == (["payment_charged"], 3)  # received, validated, shipped
    assert history_steps(temporal, f"shipping-{order_id}") == (["carrier_dispatched"], 1)  # prepared
    for workflow_id in (order_id, f"shipping-{order_id}"):
        events = temporal.run(temporal.client.get_workflow_handle(workflow_id).fetch_history()).events
        kinds = [event.event_type for event in events]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in kinds
        assert EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED not in kinds
        markers = [
            event.marker_recorded_event_attributes.marker_name
            for event in events
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        ]
        assert "core_patch" not in markers
    assert event_types(order_id) == HAPPY_EVENTS


def test_approval_sent_before_review_is_remembered(api: Client, workers: Any) -> None:
    order_id = new_order_id()
    start(api, order_id)
    response = act(api, order_id, "approve")
    assert response.status_code == 202, response.json()
    wait_for_state(order_id, "COMPLETED")
    assert event_types(order_id).count("ORDER_APPROVED") == 1


def test_second_approval_is_refused_and_changes_nothing(api: Client, workers: Any) -> None:
    order_id = new_order_id()
    start(api, order_id)
    wait_for_state(order_id, "AWAITING_APPROVAL")
    assert act(api, order_id, "approve").status_code == 202
    second = act(api, order_id, "approve")
    assert second.status_code == 409
    assert "already approved" in second.json()["detail"]
    wait_for_state(order_id, "COMPLETED")
    assert event_types(order_id) == HAPPY_EVENTS
    assert ProviderCharge.objects.filter(idempotency_key=Order.objects.get(id=order_id).payment_id).count() == 1


def test_cancel_before_payment_moves_no_money(api: Client, workers: Any, temporal: Any) -> None:
    order_id = new_order_id()
    start(api, order_id)
    wait_for_state(order_id, "AWAITING_APPROVAL")
    assert act(api, order_id, "cancel").status_code == 202
    wait_for_state(order_id, "CANCELLED")
    assert event_types(order_id) == ["ORDER_RECEIVED", "ORDER_VALIDATED", "ORDER_CANCELLED"]
    assert not Payment.objects.filter(order_id=order_id).exists()
    assert Event.objects.get(order_id=order_id, type="ORDER_CANCELLED").payload_json["actor"] == "api-client"
    assert act(api, order_id, "approve").status_code == 409
    record_history(temporal, order_id, "cancel_before_payment")


def update_admitted(temporal: Any, workflow_id: str, update_id: str) -> bool:
    """Whether Temporal holds the Update `update_id` for `workflow_id` (admitted, maybe not yet seen)."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
    from temporalio.api.update.v1 import UpdateRef, WaitPolicy
    from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest

    request = PollWorkflowExecutionUpdateRequest(
        namespace=temporal.client.namespace,
        update_ref=UpdateRef(workflow_execution=WorkflowExecution(workflow_id=workflow_id), update_id=update_id),
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )
    try:
        temporal.run(temporal.client.workflow_service.poll_workflow_execution_update(request))
    except RPCError:
        return False
    return True


def act_while_shipping_worker_is_late(
    api: Client, temporal: Any, queues: Any, order_id: str, action: Action, body: dict[str, Any]
) -> Any:
    """Send `action` once the order waits for a shipping worker after payment (its child started,
    not yet run), wait until Temporal holds it for the child, then start a shipping worker: the
    child's first task takes the action, before the cut-off. The API's response."""
    from concurrent.futures import ThreadPoolExecutor

    from conftest import RunningWorkers

    wait_for_state(order_id, "PAYMENT_CHARGED")
    key = f"{action.value}-while-no-shipping-worker"
    path = {Action.CANCEL: "cancel", Action.UPDATE_ADDRESS: "update-address"}[action]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            lambda: api.post(
                f"/orders/{order_id}/signals/{path}",
                body,
                content_type="application/json",
                headers={"Idempotency-Key": key},
            )
        )
        update_id = update_id_for(action=action, actor="api-client", key=key, address=body.get("address"))
        wait_until(lambda: update_admitted(temporal, f"shipping-{order_id}", update_id), what="the action at the child")
        with RunningWorkers(temporal, queues, ("shipping",)):
            response = pending.result(timeout=30)
            wait_for_state(order_id, "CANCELLED" if action is Action.CANCEL else "COMPLETED")
    return response


def test_cancel_after_payment_refunds_exactly_once(api: Client, queues: Any, temporal: Any) -> None:
    """Only the order worker runs, so the order waits after payment for a shipping worker. The
    shipping child decides a cancel while the order ships; it takes it and never dispatches."""
    from conftest import RunningWorkers

    with RunningWorkers(temporal, queues, ("order",)):
        order_id = new_order_id()
        body = order_body()
        start(api, order_id, body)
        act(api, order_id, "approve")
        response = act_while_shipping_worker_is_late(api, temporal, queues, order_id, Action.CANCEL, {})
        assert response.status_code == 202, response.json()
    assert Payment.objects.get(order_id=order_id).status == "REFUNDED"
    ledger = ProviderCharge.objects.filter(idempotency_key=body["payment_id"]).order_by("kind")
    assert list(ledger.values_list("kind", "amount")) == [("charge", Decimal("59.98")), ("refund", Decimal("59.98"))]
    types = event_types(order_id)
    assert types[-2:] == ["PAYMENT_REFUNDED", "ORDER_CANCELLED"]
    assert "CARRIER_DISPATCHED" not in types
    assert Event.objects.get(order_id=order_id, type="ORDER_CANCELLED").payload_json["actor"] == "api-client"
    record_history(temporal, order_id, "cancel_while_shipping")


def test_address_change_while_shipping_reaches_the_carrier(api: Client, queues: Any, temporal: Any) -> None:
    """The order takes the first change, its shipping child the second; events are numbered on."""
    from conftest import RunningWorkers

    first = {"street": "1 First St", "city": "LA", "zip": "90001"}
    second = {"street": "2 Second St", "city": "SF", "zip": "94105"}
    with RunningWorkers(temporal, queues, ("order",)):
        order_id = new_order_id()
        start(api, order_id)
        wait_for_state(order_id, "AWAITING_APPROVAL")
        assert act(api, order_id, "update-address", {"address": first}).status_code == 202
        act(api, order_id, "approve")
        response = act_while_shipping_worker_is_late(
            api, temporal, queues, order_id, Action.UPDATE_ADDRESS, {"address": second}
        )
        assert response.status_code == 202, response.json()
        # The order learns the child's final address from its result.
        status = temporal.run(temporal.client.get_workflow_handle(order_id).query(OrderWorkflow.status))
        assert status.address == second
    assert Order.objects.get(id=order_id).address_json == second
    changes = Event.objects.filter(order_id=order_id, type="ADDRESS_UPDATED").order_by("id")
    assert [(e.id.rsplit(":", 1)[-1], e.payload_json["new"]) for e in changes] == [("1", first), ("2", second)]
    assert changes[1].payload_json["old"] == first
    assert Event.objects.get(order_id=order_id, type="CARRIER_DISPATCHED").payload_json["address"] == second


def test_address_change_before_dispatch_reaches_the_carrier(api: Client, workers: Any) -> None:
    order_id = new_order_id()
    start(api, order_id)
    wait_for_state(order_id, "AWAITING_APPROVAL")
    new_address = {"street": "456 New Ave", "city": "LA", "zip": "90001"}
    response = act(api, order_id, "update-address", {"address": new_address})
    assert response.status_code == 202, response.json()
    # Written at once, before the order moves on.
    assert Order.objects.get(id=order_id).address_json == new_address
    updated = Event.objects.get(order_id=order_id, type="ADDRESS_UPDATED").payload_json
    assert updated["old"]["street"] == "123 Main St"
    assert updated["new"] == new_address
    assert updated["actor"] == "api-client"
    act(api, order_id, "approve")
    wait_for_state(order_id, "COMPLETED")
    dispatched = Event.objects.get(order_id=order_id, type="CARRIER_DISPATCHED").payload_json
    assert dispatched["address"] == new_address


def test_cancel_and_address_change_are_refused_once_the_carrier_has_the_package(
    api: Client, queues: Any, temporal: Any
) -> None:
    """A shipping worker that cannot dispatch holds the order right after the cut-off: the child
    has scheduled the dispatch, so it refuses both, and the order passes them on to it."""
    from concurrent.futures import ThreadPoolExecutor

    from temporalio.worker import Worker

    from conftest import RunningWorkers
    from lifecycle.activities import package_prepared
    from lifecycle.workflows import ShippingWorkflow

    order_worker = RunningWorkers(temporal, queues, ("order",))
    order_worker.start()
    executor = ThreadPoolExecutor(4)
    holder: dict[str, Any] = {}

    async def run_stalled() -> Any:
        import asyncio

        holder["worker"] = Worker(
            temporal.client,
            task_queue=queues.shipping_task_queue,
            workflows=[ShippingWorkflow],
            activities=[package_prepared],
            activity_executor=executor,
        )
        return asyncio.create_task(holder["worker"].run())

    task = temporal.run(run_stalled())
    try:
        order_id = new_order_id()
        start(api, order_id)
        act(api, order_id, "approve")

        def dispatch_started() -> bool:
            shipping = temporal.client.get_workflow_handle(f"shipping-{order_id}")
            try:
                return bool(temporal.run(shipping.query(ShippingWorkflow.dispatch_started)))
            except RPCError:  # the child is not started yet
                return False

        wait_until(dispatch_started, what="the dispatch cut-off")
        cancel = act(api, order_id, "cancel")
        assert cancel.status_code == 409
        assert "dispatched" in cancel.json()["detail"]
        assert cancel.json()["state"] == "SHIPPING"
        moved = act(api, order_id, "update-address", {"address": {"street": "1 Late St", "city": "LA", "zip": "90001"}})
        assert moved.status_code == 409
        assert not Event.objects.filter(order_id=order_id, type="ADDRESS_UPDATED").exists()
    finally:
        temporal.run(holder["worker"].shutdown())
        task.cancel()
        executor.shutdown(wait=False)
    try:
        with RunningWorkers(temporal, queues, ("shipping",)):
            wait_for_state(order_id, "COMPLETED")
    finally:
        order_worker.stop()
    assert "ORDER_CANCELLED" not in event_types(order_id)


def test_undeliverable_address_refunds_and_fails_the_order(api: Client, workers: Any, temporal: Any) -> None:
    order_id = new_order_id()
    body = order_body(zip_code="00000")
    start(api, order_id, body)
    act(api, order_id, "approve")
    wait_for_state(order_id, "FAILED")
    types = event_types(order_id)
    assert types[-2:] == ["PAYMENT_REFUNDED", "DISPATCH_FAILED"]
    assert "00000" in Event.objects.get(order_id=order_id, type="DISPATCH_FAILED").payload_json["reason"]
    assert Payment.objects.get(order_id=order_id).status == "REFUNDED"
    assert ProviderCharge.objects.filter(idempotency_key=body["payment_id"], kind="refund").count() == 1
    record_history(temporal, order_id, "dispatch_failure")


def test_an_unacceptable_order_fails_validation_without_retries(queues: Any, workers: Any, temporal: Any) -> None:
    """Started straight on Temporal (the API would refuse this body): validation rejects it."""
    order_id = new_order_id()
    order = OrderInput(
        order_id=order_id,
        payment_id=f"pay-{order_id}",
        items=[{"name": "Widget", "price": "0.00", "quantity": 1}],
        address={"street": "1", "city": "NYC", "zip": "10001"},
        tuning=Tuning(activity_timeout_seconds=2, activity_max_attempts=1000),
        shipping_task_queue=queues.shipping_task_queue,
    )
    handle = temporal.run(
        temporal.client.start_workflow(OrderWorkflow.run, order, id=order_id, task_queue=queues.order_task_queue)
    )
    assert temporal.run(handle.result()) == "FAILED"
    assert event_types(order_id) == ["ORDER_RECEIVED", "ORDER_FAILED"]
    assert "positive price" in Event.objects.get(order_id=order_id, type="ORDER_FAILED").payload_json["reason"]
    assert Order.objects.get(id=order_id).state == "FAILED"


def test_the_seeds_signals_work_without_payload(api: Client, workers: Any, temporal: Any) -> None:
    """What `temporal workflow signal --name approve_order` sends: a signal with no input."""
    order_id = new_order_id()
    start(api, order_id)
    handle = temporal.client.get_workflow_handle(order_id)
    wait_for_state(order_id, "AWAITING_APPROVAL")
    temporal.run(handle.signal("update_address", {"address": {"street": "9 Signal Rd", "city": "SF", "zip": "94105"}}))
    temporal.run(handle.signal("approve_order"))
    wait_for_state(order_id, "COMPLETED")
    assert Order.objects.get(id=order_id).address_json["street"] == "9 Signal Rd"
    assert Event.objects.get(order_id=order_id, type="ORDER_APPROVED").payload_json["actor"] == "temporal-signal"


def test_a_seed_cancel_signal_while_shipping_goes_on_to_the_shipping_child(
    api: Client, queues: Any, temporal: Any
) -> None:
    """`temporal workflow signal --name cancel_order` on the order, while its child decides."""
    from conftest import RunningWorkers

    with RunningWorkers(temporal, queues, ("order",)):
        order_id = new_order_id()
        start(api, order_id)
        act(api, order_id, "approve")
        wait_for_state(order_id, "PAYMENT_CHARGED")
        child = temporal.client.get_workflow_handle(f"shipping-{order_id}")

        def child_signalled() -> bool:
            try:
                events = temporal.run(child.fetch_history()).events
            except RPCError:  # not started yet
                return False
            return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in events)

        wait_until(lambda: child_exists(temporal, child), what="the shipping child to start")
        temporal.run(temporal.client.get_workflow_handle(order_id).signal("cancel_order"))
        wait_until(child_signalled, what="the cancel passed on to the child")
        with RunningWorkers(temporal, queues, ("shipping",)):
            wait_for_state(order_id, "CANCELLED")
    assert "CARRIER_DISPATCHED" not in event_types(order_id)
    assert Payment.objects.get(order_id=order_id).status == "REFUNDED"
    assert Event.objects.get(order_id=order_id, type="ORDER_CANCELLED").payload_json["actor"] == "temporal-signal"


def child_exists(temporal: Any, handle: Any) -> bool:
    try:
        temporal.run(handle.describe())
    except RPCError:
        return False
    return True


@pytest.mark.slow
def test_flaky_calls_still_charge_once_and_record_each_event_once(api: Client, workers: Any, settings: Any) -> None:
    settings.FLAKY_CALL_FAILURE_RATE = 0.6
    order_ids = [new_order_id() for _ in range(5)]
    for order_id in order_ids:
        assert start(api, order_id).status_code == 201
        assert act(api, order_id, "approve").status_code == 202
    for order_id in order_ids:
        wait_for_state(order_id, "COMPLETED", timeout=90)
        payment_id = Order.objects.get(id=order_id).payment_id
        assert Payment.objects.filter(order_id=order_id).count() == 1
        assert ProviderCharge.objects.filter(idempotency_key=payment_id).count() == 1
        assert event_types(order_id) == HAPPY_EVENTS
