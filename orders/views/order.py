"""An order's page: its facts, its timeline, and the actions a reviewer may take on it."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from lifecycle.states import END_STATES, Action, EventType, allows
from orders import selectors, services
from orders.actions import order_act_sync
from orders.forms import AddressForm, CancelForm, NoteForm
from orders.permissions import ACTION_PERMISSIONS, ADD_NOTE, REASSIGN_ORDER
from orders.views.common import (
    console_view,
    name_who_decided,
    outcome_dict,
    report,
    require,
    run_once,
    safe_next,
    unconfirmed,
    usable_nonce,
)

ORDER_FORMS = {
    "approve": Action.APPROVE,
    "cancel": Action.CANCEL,
    "address": Action.UPDATE_ADDRESS,
    "claim": Action.CLAIM,
    "release": Action.RELEASE,
}
SHIPPING_STEPS = [
    (EventType.PAYMENT_CHARGED, "Payment charged"),
    (EventType.PACKAGE_PREPARED, "Package prepared"),
    (EventType.CARRIER_DISPATCHED, "Carrier dispatched"),
    (EventType.ORDER_SHIPPED, "Shipped"),
    (EventType.ORDER_COMPLETED, "Completed"),
]
UNCONFIRMED_FORMS = "unconfirmed_forms"  # session key: "<order id>/<form>" -> the nonce it was sent with


def _order_context(request: HttpRequest, order_id: str) -> dict[str, Any]:
    all_events = request.GET.get("events") == "all"
    found = selectors.order_page(order_id=order_id, all_events=all_events)
    if found is None:
        raise Http404(f"No order {order_id!r}")
    order, payment, timeline = found
    allowed = {
        action.value: request.user.has_perm(ACTION_PERMISSIONS[action]) and allows(action, order.state)
        for action in Action
    }
    # A form whose last submission was not confirmed keeps its nonce: sending it again asks about
    # the same action (the same Update id) instead of starting a second one.
    fresh = uuid.uuid4().hex
    pending = request.session.get(UNCONFIRMED_FORMS, {})
    notes = selectors.order_notes(order_id=order.id)
    return {
        "order": order,
        "payment": payment,
        "events": timeline.events,
        "entries": selectors.timeline_entries(events=timeline.events, notes=notes, partial=timeline.partial),
        "timeline": timeline,
        "can_note": request.user.has_perm(ADD_NOTE),
        "can_reassign": request.user.has_perm(REASSIGN_ORDER),
        "window_seconds": settings.APPROVAL_TIMEOUT_SECONDS,
        "note_form": NoteForm(),
        "cancel_form": CancelForm(),
        "all_events": all_events,
        "timeline_latest": selectors.TIMELINE_LATEST,
        "steps": [(label, event_type in timeline.types) for event_type, label in SHIPPING_STEPS],
        "allowed": allowed,
        "ended": order.state in END_STATES,
        "temporal_url": f"{settings.TEMPORAL_UI_URL}/namespaces/{settings.TEMPORAL_NAMESPACE}/workflows/{order.id}",
        "nonces": {form: pending.get(f"{order.id}/{form}", f"{fresh}-{form}") for form in ORDER_FORMS},
    }


@login_required
@console_view
def order_detail(request: HttpRequest, order_id: str) -> HttpResponse:
    context = _order_context(request, order_id)
    context["address_form"] = AddressForm(initial=context["order"].address_json)
    context["open_cancel"] = request.GET.get("cancel") == "1"
    template = "review/_order_live.html" if request.GET.get("partial") else "review/order.html"
    return render(request, template, context)


@require_POST
@login_required
@console_view
def order_action(request: HttpRequest, order_id: str, action: str) -> HttpResponse:
    chosen = ORDER_FORMS.get(action)
    if chosen is None:
        raise Http404("No such action")
    require(request, chosen)
    order = selectors.order_get(order_id=order_id)
    if order is None:
        raise Http404(f"No order {order_id!r}")
    kwargs: dict[str, Any] = {}
    if chosen is Action.CANCEL:
        cancel = CancelForm(request.POST)
        if not cancel.is_valid():
            context = _order_context(request, order_id)
            context["address_form"] = AddressForm(initial=order.address_json)
            context["cancel_form"] = cancel
            context["open_cancel"] = True
            return render(request, "review/order.html", context, status=400)
        kwargs["reason"] = CancelForm.reason(cancel.cleaned_data)
    if chosen is Action.UPDATE_ADDRESS:
        form = AddressForm(request.POST)
        if not form.is_valid():
            context = _order_context(request, order_id)
            context["address_form"] = form
            context["open_address"] = True
            return render(request, "review/order.html", context, status=400)
        kwargs["address"] = {**order.address_json, **AddressForm.address(form.cleaned_data)}
    if chosen in (Action.CLAIM, Action.RELEASE):
        kwargs["may_reassign"] = request.user.has_perm(REASSIGN_ORDER)
    # A queue row's button sends the bulk form with a nonce of its own.
    nonce = request.POST.get("row_nonce") or request.POST.get("nonce", "")
    outcome = run_once(
        request,
        nonce,
        lambda key: outcome_dict(
            order_act_sync(
                order_id=order_id,
                action=chosen,
                actor=request.user.get_username(),
                via="console",
                idempotency_key=key,
                **kwargs,
            )
        ),
    )
    pending = request.session.get(UNCONFIRMED_FORMS, {})
    if outcome is not None and unconfirmed(outcome) and usable_nonce(nonce):
        pending[f"{order_id}/{action}"] = nonce
    else:
        pending.pop(f"{order_id}/{action}", None)
    request.session[UNCONFIRMED_FORMS] = pending
    if outcome is not None and not outcome["applied"] and not unconfirmed(outcome):
        outcome = name_who_decided(outcome, request.user.get_username())
    report(request, outcome)
    if chosen is Action.APPROVE and request.POST.get("then") == "next" and outcome and outcome["applied"]:
        following = selectors.next_waiting(after=order_id, user_id=request.user.pk)
        if following is not None:
            return HttpResponseRedirect(reverse("review:order", args=[following]))
        return HttpResponseRedirect(reverse("review:queue"))
    return HttpResponseRedirect(safe_next(request, reverse("review:order", args=[order_id])))


@require_POST
@login_required
@console_view
def order_note(request: HttpRequest, order_id: str) -> HttpResponse:
    if not request.user.has_perm(ADD_NOTE):
        raise PermissionDenied("you may not add notes")
    order = selectors.order_get(order_id=order_id)
    if order is None:
        raise Http404(f"No order {order_id!r}")
    form = NoteForm(request.POST)
    if not form.is_valid():
        context = _order_context(request, order_id)
        context["address_form"] = AddressForm(initial=order.address_json)
        context["note_form"] = form
        return render(request, "review/order.html", context, status=400)
    services.note_add(order_id=order.id, author=request.user, text=form.cleaned_data["text"])
    messages.success(request, "Note added.")
    return HttpResponseRedirect(reverse("review:order", args=[order_id]) + "#timeline")
