"""Claim expiry and escalation with the database and real activities, on the time-skipping test
server: minutes pass in a moment (compare test_approval_timeout.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from django.contrib.auth.models import Group, User
from django.core import mail

from lifecycle import activities
from lifecycle.tests.test_approval_timeout import unreviewed_order
from lifecycle.types import ActorRequest, StatusView, StepInput, Tuning
from lifecycle.worker import QUEUES, run_workers
from lifecycle.workflows import OrderWorkflow
from orders.models import Event, Notification, Order
from orders.permissions import SUPERVISORS, ensure_groups


def test_a_lapsed_claim_is_released_and_the_order_escalates_with_one_email(
    time_skipping: Any, transactional_db: None
) -> None:
    ensure_groups()
    User.objects.create_user("rita")
    sue = User.objects.create_user("sue", email="sue@example.com")
    sue.groups.add(Group.objects.get(name=SUPERVISORS))
    config, order = unreviewed_order(
        Tuning(approval_timeout_seconds=300, claim_ttl_seconds=60, escalate_after_seconds=120)
    )
    order_id = order.order_id

    async def scenario() -> str:
        stop = asyncio.Event()
        workers = asyncio.create_task(run_workers(time_skipping.client, QUEUES, config, stop=stop))
        try:
            handle = await time_skipping.client.start_workflow(
                OrderWorkflow.run, order, id=order_id, task_queue=config.order_task_queue
            )
            while (await handle.query(OrderWorkflow.status, result_type=StatusView)).state != "AWAITING_APPROVAL":
                await asyncio.sleep(0.02)
            await handle.execute_update("claim", ActorRequest(actor="rita", via="api"))
            return await handle.result()  # the test server skips the claim's 60 s, then 120 s, then 300 s
        finally:
            stop.set()
            await workers

    assert time_skipping.run(scenario()) == "APPROVAL_TIMEOUT"
    recorded = [(e.type, e.payload_json) for e in Event.objects.filter(order_id=order_id).order_by("timestamp", "id")]
    assert [t for t, _ in recorded] == [
        "ORDER_RECEIVED",
        "ORDER_VALIDATED",
        "ORDER_CLAIMED",
        "ORDER_RELEASED",
        "ORDER_ESCALATED",
        "APPROVAL_TIMEOUT",
    ]
    released = recorded[3][1]
    assert (released["actor"], released["reason"]) == ("rita", "expired")
    stored = Order.objects.get(id=order_id)
    assert (stored.claimed_by_id, stored.escalated_at is not None) == (None, True)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["sue@example.com"]
    assert order_id in mail.outbox[0].subject

    # The email activity run again (a retry after a lost answer) sends nothing more.
    activities.escalation_notified(StepInput(order_id, f"{order_id}:ORDER_ESCALATED"))
    assert len(mail.outbox) == 1
    assert Notification.objects.filter(order_id=order_id).count() == 1
