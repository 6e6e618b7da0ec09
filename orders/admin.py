"""Admin for staff (kept minimal here; the console issue grows it)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from orders.models import ApiToken, Event, Order, Payment


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EventInline(ReadOnlyInline):
    model = Event
    fields = ("timestamp", "type", "payload_json")
    readonly_fields = fields
    ordering = ("timestamp",)


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ("payment_id", "status", "amount", "created_at")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "state", "total", "created_at", "updated_at")
    list_filter = ("state",)
    search_fields = ("=id",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "state", "items_json", "address_json", "payment_id", "total", "workflow_run_id", "approval_deadline", "created_at", "updated_at")
    exclude = ("request_digest",)
    inlines = [PaymentInline, EventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "order", "type")
    list_filter = ("type",)
    search_fields = ("=order__id",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(EventAdmin):
    list_display = ("payment_id", "order", "status", "amount", "created_at")
    list_filter = ("status",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "user", "key_hash", "created_at", "last_used_at")
    fields = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
