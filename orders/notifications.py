"""Messages to people about an order: the Supervisors' email when an order is escalated.

Sent through Django's email framework (EMAIL_URL). Each message has a key (the escalation's event
id) and a `notifications` row: a retried activity finds the row and sends nothing again.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.models import Notification, Order
from orders.permissions import SUPERVISORS

ESCALATION = "escalation"


def supervisor_emails() -> list[str]:
    """The addresses of the active Supervisors who have one."""
    users = get_user_model().objects.filter(groups__name=SUPERVISORS, is_active=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def escalation_notify(*, order_id: str, key: str) -> Notification:
    """Email the Supervisors that `order_id` waits too long for review, once per `key`.

    1. The row is claimed first (unique key): a second run finds it.
    2. The email goes out, then the row is marked sent. A run that died between the two sends
       again on its retry; a run that finds the row marked sends nothing.
    """
    order = Order.objects.get(id=order_id)
    recipients = supervisor_emails()
    subject = f"Order {order.id} is waiting for review"
    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                key=key, order=order, kind=ESCALATION, recipients=recipients, subject=subject
            )
    except IntegrityError:
        notification = Notification.objects.get(key=key)
    if notification.sent_at is not None:
        return notification
    if notification.recipients:
        send_mail(
            notification.subject,
            _escalation_body(order),
            settings.DEFAULT_FROM_EMAIL,
            notification.recipients,
        )
    notification.sent_at = timezone.now()
    notification.save(update_fields=["sent_at"])
    return notification


def _escalation_body(order: Order) -> str:
    deadline = order.approval_deadline.isoformat() if order.approval_deadline else "none"
    return (
        f"Order {order.id} (total {order.total}) has not been approved yet.\n"
        f"It arrived at {order.created_at.isoformat()}; its review times out at {deadline}.\n"
        f"Review console: /review/orders/{order.id}/\n"
    )
