"""Starting an order's workflow from its recorded row (the API's start, reconcile's repair)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model

from lifecycle.client import start_order_workflow, tuning_from_settings
from lifecycle.types import OrderInput
from orders.models import Order


async def order_workflow_start(order: Order, *, started_by: str | None = None) -> str:
    """Start (or find) the workflow of a recorded order; its run id. The workflow's first step,
    `order_received`, stores the run id on the order. `started_by`: the starter's username, when
    the caller has it (else it is read from the row: a four-eyes order excludes its starter)."""
    if started_by is None:
        started_by = ""
        if order.started_by_id is not None:
            users = get_user_model().objects.filter(id=order.started_by_id)
            started_by = await users.values_list("username", flat=True).afirst() or ""
    run_id = await start_order_workflow(
        OrderInput(
            order_id=order.id,
            payment_id=order.payment_id,
            items=order.items_json,
            address=order.address_json,
            tuning=tuning_from_settings(),
            shipping_task_queue=settings.SHIPPING_TASK_QUEUE,
            started_by=started_by,
        )
    )
    return run_id
