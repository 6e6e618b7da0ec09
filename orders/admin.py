"""Admin for staff: orders with their payments and events, and API tokens.

Admin never writes an order itself. The address and the approve/cancel actions go through
`orders.actions` (the order's workflow has the last word and its activities do the writing);
everything else on an order, and every payment and event, is read-only here.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import router, transaction
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from lifecycle.states import END_STATES, Action, allows, refusal_reason
from lifecycle.validation import ADDRESS_FIELD_MAX, REASON_MAX, address_problems, reason_problem
from orders.actions import BULK_LIMIT, ActionOutcome, Verdict, order_act_many_sync, order_act_sync
from orders.models import ApiToken, Event, Note, Order, Payment
from orders.permissions import APPROVE_ORDER, CANCEL_ORDER, CHANGE_APITOKEN, CHANGE_ORDER, CHANGE_ORDER_ADDRESS
from orders.selectors import CappedPaginator
from orders.tokens import token_revoke

ADDRESS_FIELDS = ("street", "city", "zip")  # form fields named like the address keys
ORDER_FIELDS = (
    "id",
    "state",
    "total",
    "payment_id",
    "approval_deadline",
    "workflow_run_id",
    "created_at",
    "updated_at",
)
INLINE_EVENTS = 20  # the latest events on an order's change page; the event list has them all


def _current_address(order: Order) -> dict[str, Any]:
    return dict(order.address_json) if isinstance(order.address_json, dict) else {}


ASKED = {
    Action.APPROVE: "the approval of",
    Action.CANCEL: "the cancellation of",
    Action.UPDATE_ADDRESS: "the address change of",
    Action.CLAIM: "the claim of",
    Action.RELEASE: "the release of",
}
# What admin's buttons on an order's page may do, and the verb of their messages.
DECISIONS = {Action.APPROVE: "approved", Action.CANCEL: "cancelled"}


class CancelReasonForm(forms.Form):
    """A cancellation's reason, asked before admin cancels (it lands in ORDER_CANCELLED)."""

    reason = forms.CharField(
        max_length=REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=f"Shown on each order's timeline; at most {REASON_MAX} characters.",
    )

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        problem = reason_problem(reason)
        if problem:
            raise forms.ValidationError(f"The reason {problem}.")
        return reason


def _unconfirmed(outcome: ActionOutcome) -> SafeString:
    """The truth about an action Temporal did not answer in time: it may still be applied."""
    return format_html(
        'Not confirmed: {} <a href="{}">{}</a> — {}. It may still be applied.',
        ASKED[outcome.action],
        reverse("admin:orders_order_change", args=[quote(outcome.order_id)]),
        outcome.order_id,
        outcome.detail,
    )


@admin.display(description="order", ordering="order_id")
def order_link(row: Event | Payment) -> SafeString:
    # From the foreign key column: no join, no extra query per row. Quoted as admin expects: it reads
    # "_2F" in an id such as "order_2F1" as "/".
    url = reverse("admin:orders_order_change", args=[quote(row.order_id)])
    return format_html('<a href="{}">{}</a>', url, row.order_id)


@admin.display(description="who")
def event_who(event: Event) -> SafeString:
    payload = event.payload_json if isinstance(event.payload_json, dict) else {}
    actor, via = payload.get("actor") or "", payload.get("via") or ""
    if actor:  # a person's name, isolated so that its direction cannot reorder "via ..."
        return format_html("<bdi>{}</bdi> via {}", actor, via) if via else format_html("<bdi>{}</bdi>", actor)
    return format_html("{}", via or "workflow")


@admin.display(description="payload")
def event_payload(event: Event) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(event.payload_json, indent=2, sort_keys=True))


class ReadOnly:
    """Payments, events (and, below, orders and tokens) are the audit trail: no one, superusers
    included, adds, changes or deletes them here. Works for model admins and inlines alike."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)  # hidden by the permission anyway; removed to be explicit
        return actions


class IndexedChangeList(ChangeList):
    """Admin's changelist, sorting only by the columns in `sortable_by`. Admin hides the other
    columns' sort links but still obeys a hand-written `?o=`, which would sort the whole table."""

    def get_ordering_field(self, field_name: Any) -> Any:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class GrowingListAdmin:
    """Changelists of tables that only grow (orders, payments, events): every query a page makes
    stays bounded however many rows there are. Rows are counted up to COUNT_CAP (the templates in
    templates/admin/orders/ then say "10,000+" and page through that many), never counted again
    unfiltered, and filter facets, which count every choice over the whole table, are off.

    A list sorts only by columns that an index returns in order with few ties (`sortable_by`): a
    page then reads about 50 index entries. Sorting by a column of a few values (a state, a type,
    a status) would sort every row of the largest value, and one without an index every row."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return IndexedChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> CappedPaginator:
        return CappedPaginator(queryset, per_page, orphans, allow_empty_first_page)

    def action_checkbox(self, obj: Any) -> SafeString:
        """Admin's own checkbox, written out: rendering a widget template per row was a third of
        the list's time. The markup is the same."""
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )


class OrderPartInline(ReadOnly, admin.TabularInline):
    """Rows of an order, visible to whoever may view the order itself (Reviewers hold
    `view_order` but no view permission of their own on payments or events)."""

    extra = 0
    max_num = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.admin_site.get_model_admin(self.parent_model).has_view_permission(request, obj)


class PaymentInline(OrderPartInline):
    model = Payment
    fields = ("payment_id", "status", "amount", "created_at", "updated_at")
    readonly_fields = fields


class LatestEventsFormSet(BaseInlineFormSet):  # type: ignore[type-arg]
    """An order's latest INLINE_EVENTS events, oldest of them first, in one query."""

    def get_queryset(self) -> QuerySet[Event]:
        if not hasattr(self, "_queryset"):
            latest = self.queryset.order_by("-timestamp", "-id").values("pk")[:INLINE_EVENTS]
            self._queryset = self.queryset.filter(pk__in=latest).order_by("timestamp", "id")
        return self._queryset


class EventInline(OrderPartInline):
    model = Event
    formset = LatestEventsFormSet
    verbose_name_plural = "Latest events"
    fields = ("timestamp", "type", event_who, event_payload)
    readonly_fields = fields


class OrderAddressForm(forms.ModelForm):
    """The address as separate fields; `clean` builds the address the workflow will receive, keeping
    any further keys it has (the API accepts a few) so an edit here never silently drops them."""

    street = forms.CharField(max_length=ADDRESS_FIELD_MAX)
    city = forms.CharField(max_length=ADDRESS_FIELD_MAX)
    zip = forms.CharField(label="ZIP", max_length=ADDRESS_FIELD_MAX)

    class Meta:
        model = Order
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = _current_address(self.instance)
        for name in ADDRESS_FIELDS:
            self.initial.setdefault(name, current.get(name, ""))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if any(name in self.errors for name in ADDRESS_FIELDS):
            return cleaned
        address = _current_address(self.instance) | {name: cleaned[name] for name in ADDRESS_FIELDS}
        for where, problem in address_problems(address).items():
            name = where.removeprefix("address.")
            self.add_error(name if name in ADDRESS_FIELDS else None, f"{where} {problem}")
        cleaned["address"] = address
        return cleaned


def _address_part(key: str, label: str) -> Any:
    """A read-only display of one part of the address, named like the form field it stands in for."""

    @admin.display(description=label)
    def show(model_admin: admin.ModelAdmin, order: Order) -> SafeString:
        return format_html("<bdi>{}</bdi>", _current_address(order).get(key, ""))

    return show


@admin.register(Order)
class OrderAdmin(ReadOnly, GrowingListAdmin, admin.ModelAdmin):
    """Orders: read-only except the shipping address, which is sent to the order's workflow.

    Who may edit: Django admin only accepts a change-form POST from users passing
    `has_change_permission`. Reviewers hold `orders.change_order_address` but not
    `orders.change_order`, and the address is the only thing on an order anyone may change here,
    so either permission opens the form (staff status is still required by admin itself). The
    address fields exist only for users with `orders.change_order_address`; for anyone else they
    are read-only displays and the form has no such fields, so a forged POST carries nothing that
    is read. Orders are started through the API (which starts their workflow) and never deleted.
    """

    list_display = ("id", "state", "total", "created_at", "updated_at")
    # A date filter of fixed choices rather than date_hierarchy, whose year/month links need a
    # DISTINCT over every order's date on each page view.
    list_filter = ("state", ("created_at", admin.DateFieldListFilter))
    search_fields = ("id__exact",)  # exact match uses the primary key index
    search_help_text = "Search by the exact order id."
    ordering = ("-created_at", "-id")  # read backwards from idx_orders_created_id, never sorted
    sortable_by = ("id", "created_at", "updated_at")  # see GrowingListAdmin; the state has its filter
    # Every column is on the order row itself, so no join is needed (and none is made): the list
    # costs the same number of queries for any page size.
    list_select_related = ()
    inlines = (PaymentInline, EventInline)
    actions = ("approve_selected", "cancel_selected")
    fieldsets = (
        (None, {"fields": (*ORDER_FIELDS, "events_recorded")}),
        ("Items", {"fields": ("items",)}),
        ("Shipping address", {"fields": (*ADDRESS_FIELDS, "other_address_fields")}),
    )
    readonly_fields = (*ORDER_FIELDS, "events_recorded", "events_count", "items", "other_address_fields")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(CHANGE_ORDER) or request.user.has_perm(CHANGE_ORDER_ADDRESS)

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_ORDER)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_ORDER)

    def can_edit_address(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CHANGE_ORDER_ADDRESS)

    def address_editable(self, request: HttpRequest, obj: Order | None) -> bool:
        """With the permission, and while the order has not ended (an ended order's address is
        history: the fields become read-only displays)."""
        return self.can_edit_address(request) and not (obj is not None and obj.state in END_STATES)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        address = () if self.address_editable(request, obj) else ADDRESS_FIELDS
        return (*self.readonly_fields, *address)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = OrderAddressForm if self.address_editable(request, obj) else forms.ModelForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[tuple[str | None, dict[str, Any]]]:
        fieldsets = [(name, dict(options)) for name, options in self.fieldsets]
        if not self.admin_site.get_model_admin(Event).has_view_permission(request):
            # Reviewers see an order's events here (the inline) but may not open the event list.
            fieldsets[0][1]["fields"] = (*ORDER_FIELDS, "events_count")
        if obj is not None and self.address_editable(request, obj) and not allows(Action.UPDATE_ADDRESS, obj.state):
            # A hint only: the workflow has the last word, so the fields stay editable.
            reason = refusal_reason(Action.UPDATE_ADDRESS, obj.state)
            fieldsets[-1][1]["description"] = f"A change is likely to be refused: {reason}."
        return fieldsets

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Order | None = None,
    ) -> HttpResponse:
        # The address is all there is to save: without the right to change it, no Save button.
        context |= {"show_save": self.address_editable(request, obj), "show_save_and_continue": False}
        if obj is not None:
            context |= self._decision_context(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _decision_context(self, request: HttpRequest, obj: Order) -> dict[str, Any]:
        """The order page's way out (the console, the Temporal UI) and its buttons: approve and
        cancel, each offered when the user may and the stored state allows it (the workflow has
        the last word)."""
        can = {Action.APPROVE: self.has_approve_permission(request), Action.CANCEL: self.has_cancel_permission(request)}
        return {
            "console_url": reverse("review:order", args=[obj.id]),
            "temporal_url": f"{settings.TEMPORAL_UI_URL}/namespaces/{settings.TEMPORAL_NAMESPACE}/workflows/{obj.id}",
            "decisions": [
                {
                    "action": action.value,
                    "url": reverse("admin:orders_order_decide", args=[quote(obj.id), action.value]),
                }
                for action in DECISIONS
                if can[action] and allows(action, obj.state)
            ],
            "cancel_form": CancelReasonForm(),
        }

    def get_urls(self) -> list[URLPattern]:
        decide = self.admin_site.admin_view(require_POST(self.decide_view))
        return [path("<path:object_id>/decide/<str:action>/", decide, name="orders_order_decide"), *super().get_urls()]

    def decide_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """A button of the order's page: approve, or cancel with a reason, through the workflow."""
        order_id = unquote(object_id)
        back = HttpResponseRedirect(reverse("admin:orders_order_change", args=[quote(order_id)]))
        try:
            decision = Action(action)
        except ValueError:
            decision = None
        if decision not in DECISIONS:
            raise PermissionDenied
        allowed = (
            self.has_approve_permission(request) if decision is Action.APPROVE else self.has_cancel_permission(request)
        )
        if not allowed:
            raise PermissionDenied
        reason = ""
        if decision is Action.CANCEL:
            form = CancelReasonForm(request.POST)
            if not form.is_valid():
                self.message_user(request, f"Nothing was sent: {' '.join(form.errors['reason'])}", messages.ERROR)
                return back
            reason = form.cleaned_data["reason"]
        outcome = order_act_sync(
            order_id=order_id, action=decision, actor=request.user.get_username(), via="admin", reason=reason
        )
        if outcome.applied:
            self.message_user(request, f"{order_id}: {DECISIONS[decision]}.", messages.SUCCESS)
        elif outcome.verdict is Verdict.UNAVAILABLE:
            self.message_user(request, _unconfirmed(outcome), messages.WARNING)
        else:
            self.message_user(request, f"{order_id}: not {DECISIONS[decision]}: {outcome.detail}", messages.ERROR)
        return back

    def save_model(self, request: HttpRequest, obj: Order, form: forms.ModelForm, change: bool) -> None:
        """Send a changed address to the workflow instead of saving: its activity is the only writer.

        Admin runs the change form in a transaction, and the activity writes in its own (on SQLite
        admin's open transaction would even block it), so the address is sent once admin's commits.
        """
        address = form.cleaned_data.get("address")
        if address is None or not self.can_edit_address(request):
            return
        if address == _current_address(obj):
            self.message_user(request, "The address is unchanged; nothing was sent.", messages.INFO)
            return
        transaction.on_commit(lambda: self._send_address(request, obj, address), router.db_for_write(Order))

    def _send_address(self, request: HttpRequest, obj: Order, address: dict[str, Any]) -> None:
        outcome = order_act_sync(
            order_id=obj.id,
            action=Action.UPDATE_ADDRESS,
            actor=request.user.get_username(),
            via="admin",
            address=address,
        )
        if outcome.applied:
            super().log_change(request, obj, "Changed the address through the workflow.")
            self.message_user(request, f"The address of {obj.id} was updated.", messages.SUCCESS)
        elif outcome.verdict is Verdict.UNAVAILABLE:
            self.message_user(request, _unconfirmed(outcome), messages.WARNING)
        else:
            self.message_user(request, f"The address of {obj.id} was not changed: {outcome.detail}", messages.ERROR)

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        """Nothing related is written: payments and events are the workflow's to record."""

    def construct_change_message(self, request: HttpRequest, form: Any, formsets: Any, add: bool = False) -> list[Any]:
        return []  # the formsets were never saved; _send_address logs what the workflow applied

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> None:
        """Admin's history records only what the workflow applied (see `_send_address`)."""

    def response_change(self, request: HttpRequest, obj: Order) -> HttpResponse:
        # Back to the order, without admin's "changed successfully": save_model said what happened.
        return HttpResponseRedirect(request.get_full_path())

    @admin.display(description="Items")
    def items(self, order: Order) -> SafeString:
        rows = ((item.get("quantity"), item.get("name"), item.get("price")) for item in order.items_json or [])
        # The name is isolated: a right-to-left override in it must not turn the price around.
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} × <bdi>{}</bdi> at {}</li>", rows))

    street = _address_part("street", "Street")
    city = _address_part("city", "City")
    zip = _address_part("zip", "ZIP")

    @admin.display(description="Events")
    def events_count(self, order: Order) -> str:
        total = order.events.count()
        return f"{total} (the latest {INLINE_EVENTS} are listed below)" if total > INLINE_EVENTS else f"{total}"

    @admin.display(description="Events")
    def events_recorded(self, order: Order) -> SafeString:
        url = f"{reverse('admin:orders_event_changelist')}?q={quote_plus(order.id)}"
        return format_html('{} · <a href="{}">all in the event list</a>', self.events_count(order), url)

    @admin.display(description="Other address fields")
    def other_address_fields(self, order: Order) -> SafeString:
        extra = [(k, v) for k, v in _current_address(order).items() if k not in ADDRESS_FIELDS]
        return format_html_join(", ", "<bdi>{}</bdi>: <bdi>{}</bdi>", extra) or SafeString("—")

    @admin.action(description="Approve selected orders", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        self._act_on_selected(request, queryset, Action.APPROVE, "Approved")

    @admin.action(description="Cancel selected orders…", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Order]) -> TemplateResponse | None:
        """First a page asking for the reason (posted back to this action), then the cancellations."""
        form = CancelReasonForm(request.POST if "reason" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._act_on_selected(request, queryset, Action.CANCEL, "Cancelled", reason=form.cleaned_data["reason"])
            return None
        order_ids = list(queryset.order_by("created_at", "id").values_list("id", flat=True)[: BULK_LIMIT + 1])
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel orders: why?",
            "opts": self.model._meta,
            "form": form,
            "order_ids": order_ids[:BULK_LIMIT],
            "too_many": len(order_ids) > BULK_LIMIT,
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        }
        return TemplateResponse(request, "admin/orders/order/cancel_reason.html", context)

    def _act_on_selected(
        self, request: HttpRequest, queryset: QuerySet[Order], action: Action, done: str, reason: str = ""
    ) -> None:
        """One summary, then one message per order the workflow did not act on, with its reason."""
        order_ids = list(queryset.order_by("created_at", "id").values_list("id", flat=True)[: BULK_LIMIT + 1])
        if len(order_ids) > BULK_LIMIT:
            self.message_user(request, f"Select at most {BULK_LIMIT} orders; nothing was sent.", messages.ERROR)
            return
        outcomes = order_act_many_sync(
            order_ids=order_ids, action=action, actor=request.user.get_username(), via="admin", reason=reason
        )
        applied = [o.order_id for o in outcomes if o.applied]
        unknown = sum(1 for o in outcomes if o.verdict is Verdict.UNAVAILABLE)
        summary = f"{done} {len(applied)} of {len(outcomes)} orders" + (f": {', '.join(applied)}" if applied else "")
        summary += f"; {unknown} not confirmed." if unknown else "."
        self.message_user(request, summary, messages.SUCCESS if applied else messages.WARNING)
        for outcome in outcomes:
            if outcome.verdict is Verdict.UNAVAILABLE:
                self.message_user(request, _unconfirmed(outcome), messages.WARNING)
            elif not outcome.applied:
                state = f" (state {outcome.state})" if outcome.state else ""
                message = f"{outcome.order_id}: not {done.lower()}{state}: {outcome.detail}"
                self.message_user(request, message, messages.ERROR)


@admin.register(Event)
class EventAdmin(ReadOnly, GrowingListAdmin, admin.ModelAdmin):
    list_display = ("timestamp", order_link, "type", event_who)
    ordering = ("-timestamp", "-id")  # the latest first, read backwards from idx_events_timestamp
    sortable_by = ("timestamp", order_link)  # see GrowingListAdmin; the type has its filter
    list_filter = ("type", ("timestamp", admin.DateFieldListFilter))
    search_fields = ("order__id__exact",)
    search_help_text = "Search by the exact order id."
    fields = ("id", order_link, "type", "timestamp", event_who, event_payload)
    readonly_fields = fields


@admin.register(Note)
class NoteAdmin(ReadOnly, admin.ModelAdmin):
    """Reviewers' notes: written in the console, never edited or deleted, here only read."""

    list_display = ("created_at", "order", "author", "text")
    list_select_related = ("order", "author")
    ordering = ("-created_at", "-id")
    search_fields = ("order__id__exact",)
    search_help_text = "Search by the exact order id."
    fields = ("order", "author", "created_at", "text")
    readonly_fields = fields


@admin.register(Payment)
class PaymentAdmin(ReadOnly, GrowingListAdmin, admin.ModelAdmin):
    list_display = ("payment_id", order_link, "status", "amount", "created_at", "updated_at")
    ordering = ("-payment_id",)  # the primary key's index; payments have no time index
    sortable_by = ("payment_id", order_link)  # see GrowingListAdmin; the status has its filter
    list_filter = ("status",)
    search_fields = ("payment_id__exact", "order__id__exact")
    search_help_text = "Search by the exact payment id or order id."
    fields = ("payment_id", order_link, "status", "amount", "created_at", "updated_at")
    readonly_fields = fields


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnly, admin.ModelAdmin):
    """Tokens are created by `manage.py create_api_token` and ended only by revoking them (the row
    stays as the record of who had access and when it was last used). The digest is never shown."""

    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_select_related = ("user",)
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("prefix", "name", "user__username")
    fields = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke_selected",)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CHANGE_APITOKEN)

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = token_revoke(tokens=queryset)
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
