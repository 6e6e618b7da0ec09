"""Starting an order's workflow from its recorded row (the API's start, reconcile's repair)."""

from __future__ import annotations

from django.conf import settings

from lifecycle.client import start_order_workflow, tuning_from_settings
from lifecycle.types import OrderInput
from orders.models import Order


async def order_workflow_start(order: Order) -> str:
    """Start (or find) the workflow of a recorded order; its run id. The workflow's first step,
    `order_received`, stores the run id on the order."""
    run_id = await start_order_workflow(
        OrderInput(
            order_id=order.id,
            payment_id=order.payment_id,
            items=order.items_json,
            address=order.address_json,
            tuning=tuning_from_settings(),
            shipping_task_queue=settings.SHIPPING_TASK_QUEUE,
        )
    )
    return run_id
