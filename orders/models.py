"""Tables of the order lifecycle, mirroring the seed's schema (names, columns, index names)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from lifecycle.states import STATE_LABELS, EventType, PaymentStatus, State
from lifecycle.validation import order_total


class Order(models.Model):
    id = models.CharField(max_length=255, primary_key=True)
    state = models.CharField(
        max_length=255, choices=[(s.value, STATE_LABELS[s]) for s in State], default=State.ORDER_RECEIVED
    )
    items_json = models.JSONField()
    address_json = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Beyond the seed: what the start request carried, so a repeated start can be recognised.
    payment_id = models.CharField(max_length=255, unique=True)
    total = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    workflow_run_id = models.CharField(max_length=64, blank=True, default="")
    approval_deadline = models.DateTimeField(null=True, blank=True)
    request_digest = models.CharField(max_length=64, blank=True, default="")
    # Reviewer teams (docs/decisions/0007-reviewer-teams.md): copies of what the workflow decided,
    # written by its activities with the event that records each decision. No index of their own:
    # every order writes them, and the lists that filter by them read the state index first.
    # `claimed_by` means something only while the order awaits approval (the API shows it then).
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    first_approver = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    first_approved_at = models.DateTimeField(null=True, blank=True)
    approvals_required = models.PositiveSmallIntegerField(default=1, db_default=1)  # raw inserts too (bench)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "orders"
        indexes = [
            models.Index(fields=["state"], name="idx_orders_state"),
            models.Index(fields=["state", "created_at"], name="idx_orders_state_created"),
            models.Index(fields=["updated_at"], name="idx_orders_updated_at"),
            # Newest first across all states (admin's list, the console's "All" tab): the order
            # these pages sort by, id included, so a page is read from the index, not sorted.
            models.Index(fields=["created_at", "id"], name="idx_orders_created_id"),
        ]
        permissions = [
            ("approve_order", "Can approve an order awaiting review"),
            ("cancel_order", "Can cancel an order"),
            ("change_order_address", "Can change an order's shipping address"),
            ("reassign_order", "Can take over another reviewer's claim on an order"),
            ("view_metrics", "Can read the web app's Prometheus metrics"),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def workflow_id(self) -> str:
        return self.id

    def computed_total(self) -> Decimal:
        return order_total(self.items_json)


class Payment(models.Model):
    payment_id = models.CharField(max_length=255, primary_key=True)
    order = models.ForeignKey(
        Order,
        on_delete=models.PROTECT,
        db_column="order_id",
        related_name="payments",
        db_constraint=True,
        db_index=False,  # idx_payments_order_id below is the index (the seed's name)
    )
    status = models.CharField(
        max_length=255, choices=[(s.value, s.value) for s in PaymentStatus], default=PaymentStatus.PENDING
    )
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "payments"
        indexes = [models.Index(fields=["order"], name="idx_payments_order_id")]

    def __str__(self) -> str:
        return f"{self.payment_id} ({self.status})"


class Event(models.Model):
    """Immutable audit log: rows are only ever inserted, never updated or deleted."""

    id = models.CharField(max_length=255, primary_key=True)
    # idx_events_order_id below is the index (the seed's name); a second, automatic one only cost writes.
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, db_column="order_id", related_name="events", db_index=False
    )
    type = models.CharField(max_length=255, choices=[(t.value, t.value) for t in EventType])
    payload_json = models.JSONField(default=dict)
    timestamp = models.DateTimeField()

    class Meta:
        db_table = "events"
        ordering = ["timestamp", "id"]
        indexes = [
            models.Index(fields=["order"], name="idx_events_order_id"),
            models.Index(fields=["timestamp"], name="idx_events_timestamp"),
            models.Index(fields=["type"], name="idx_events_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.order_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise PermissionError("events are immutable")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionError("events are immutable")


class ProviderCharge(models.Model):
    """The simulated payment provider's own ledger: one row per movement of money it made."""

    KIND_CHARGE = "charge"
    KIND_REFUND = "refund"

    idempotency_key = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=[(KIND_CHARGE, KIND_CHARGE), (KIND_REFUND, KIND_REFUND)])
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "provider_charges"
        constraints = [models.UniqueConstraint(fields=["idempotency_key", "kind"], name="uniq_provider_key_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key} {self.amount}"


class ApiToken(models.Model):
    """A bearer token for the JSON API; only its SHA-256 digest is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_tokens"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class Notification(models.Model):
    """One row per message the app sends about an order (an escalation's email): the unique key
    makes a retried activity find the message already sent."""

    key = models.CharField(max_length=255, unique=True)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32)
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notifications"

    def __str__(self) -> str:
        return self.key


class ConsoleSubmission(models.Model):
    """One row per submitted console form: a second submission of the same form acts no more."""

    nonce = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    outcome = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "console_submissions"

    def __str__(self) -> str:
        return self.nonce


class Note(models.Model):
    """A reviewer's note on an order: written once, never edited or deleted."""

    TEXT_MAX = 2000

    # idx_notes_order_created below serves lookups by order; a second index would only cost writes.
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="notes", db_index=False)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(max_length=TEXT_MAX)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "order_notes"
        indexes = [models.Index(fields=["order", "created_at"], name="idx_notes_order_created")]

    def __str__(self) -> str:
        return f"note {self.pk} on {self.order_id}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise PermissionError("notes are never edited")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionError("notes are never deleted")
