"""Approval timeout on the time-skipping test server: five minutes pass in a moment."""

from __future__ import annotations

import uuid
from typing import Any

from lifecycle.types import OrderInput, Tuning
from lifecycle.worker import QUEUES, WorkerConfig, run_workers
from lifecycle.workflows import OrderWorkflow
from orders.models import Event, Order, Payment
from orders.tests.factories import new_order_id


def unreviewed_order(tuning: Tuning) -> tuple[WorkerConfig, OrderInput]:
    """Workers of this test's own queues, and an order for them that nobody will approve."""
    suffix = uuid.uuid4().hex[:8]
    config = WorkerConfig(
        order_task_queue=f"order-tq-{suffix}",
        shipping_task_queue=f"shipping-tq-{suffix}",
        activity_threads=4,
        grace_seconds=1,
    )
    order_id = new_order_id()
    order = OrderInput(
        order_id=order_id,
        payment_id=f"pay-{order_id}",
        items=[{"name": "Widget", "price": "29.99", "quantity": 2}],
        address={"street": "123 Main St", "city": "NYC", "zip": "10001"},
        tuning=tuning,
        shipping_task_queue=config.shipping_task_queue,
    )
    return config, order


def test_an_order_nobody_reviews_times_out_after_the_approval_window(
    time_skipping: Any, transactional_db: None
) -> None:
    import asyncio

    config, order = unreviewed_order(Tuning(approval_timeout_seconds=300))
    order_id = order.order_id

    async def scenario() -> str:
        stop = asyncio.Event()
        workers = asyncio.create_task(run_workers(time_skipping.client, QUEUES, config, stop=stop))
        try:
            handle = await time_skipping.client.start_workflow(
                OrderWorkflow.run, order, id=order_id, task_queue=config.order_task_queue
            )
            return await handle.result()  # the test server skips the 300 s wait
        finally:
            stop.set()
            await workers

    assert time_skipping.run(scenario()) == "APPROVAL_TIMEOUT"
    stored = Order.objects.get(id=order_id)
    assert stored.state == "APPROVAL_TIMEOUT"
    assert stored.approval_deadline is not None
    types = list(Event.objects.filter(order_id=order_id).order_by("timestamp").values_list("type", flat=True))
    assert types == ["ORDER_RECEIVED", "ORDER_VALIDATED", "APPROVAL_TIMEOUT"]
    assert not Payment.objects.filter(order_id=order_id).exists()
