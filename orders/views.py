"""The review console: a live queue of orders awaiting approval and a page per order.

Views are thin: they check who asks, then call selectors to read and `orders.actions` to act.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from lifecycle.states import END_STATES, Action, EventType, State, allows
from lifecycle.validation import order_id_problem
from orders import selectors
from orders.actions import BULK_LIMIT, ActionOutcome, Verdict, order_act_many_sync, order_act_sync
from orders.forms import AddressForm
from orders.models import ConsoleSubmission
from orders.permissions import ACTION_PERMISSIONS, VIEW_ORDER

BULK_ACTIONS = {"approve": Action.APPROVE, "cancel": Action.CANCEL}
ORDER_FORMS = {"approve": Action.APPROVE, "cancel": Action.CANCEL, "address": Action.UPDATE_ADDRESS}
# Words for an action whose outcome is not confirmed: (what was asked, the button that asks again).
UNCONFIRMED_WORDS = {
    Action.APPROVE: ("the approval of", "Approve"),
    Action.CANCEL: ("the cancellation of", "Yes, cancel the order"),
    Action.UPDATE_ADDRESS: ("the address change of", "Save address"),
}
SHIPPING_STEPS = [
    (EventType.PAYMENT_CHARGED, "Payment charged"),
    (EventType.PACKAGE_PREPARED, "Package prepared"),
    (EventType.CARRIER_DISPATCHED, "Carrier dispatched"),
    (EventType.ORDER_SHIPPED, "Shipped"),
    (EventType.ORDER_COMPLETED, "Completed"),
]

console_view = permission_required(VIEW_ORDER, raise_exception=True)
UNCONFIRMED_FORMS = "unconfirmed_forms"  # session key: "<order id>/<form>" -> the nonce it was sent with


def _require(request: HttpRequest, action: Action) -> None:
    if not request.user.has_perm(ACTION_PERMISSIONS[action]):
        raise PermissionDenied(f"you may not {action.value.replace('_', ' ')} orders")


def _outcome_dict(outcome: ActionOutcome) -> dict[str, Any]:
    return {
        "order_id": outcome.order_id,
        "action": outcome.action.value,
        "verdict": outcome.verdict.value,
        "applied": outcome.applied,
        "detail": outcome.detail,
        "state": outcome.state,
    }


def unconfirmed(outcome: Any) -> bool:
    """Whether an outcome (one action's, or a list of them) holds one that Temporal did not confirm."""
    rows = outcome if isinstance(outcome, list) else [outcome]
    return any(isinstance(row, dict) and row.get("verdict") == Verdict.UNAVAILABLE for row in rows)


def usable_nonce(nonce: str) -> bool:
    return 0 < len(nonce) <= 64  # the column's width; a form without one acts without run_once


def run_once(request: HttpRequest, nonce: str, act: Callable[[str], Any]) -> Any:
    """Run a console action once per rendered form: a double click gets the first result.

    The form's nonce also names the action for Temporal, as the API's Idempotency-Key does: `act`
    gets a key made from it, so every attempt of one submission sends the same Update id. When an
    attempt was not confirmed (Temporal did not answer in time, though it may apply the action
    later), the same submission sent again asks once more, and Temporal answers with that Update's
    outcome instead of applying it twice.
    """
    if not usable_nonce(nonce):
        return act("")
    mine = ConsoleSubmission.objects.filter(nonce=nonce, user=request.user)
    try:
        ConsoleSubmission.objects.create(nonce=nonce, user=request.user)
    except IntegrityError:
        row = mine.first()
        if row is None:  # another user's nonce
            return None
        if row.outcome is None:  # a double click: the first click's attempt is still running
            return _outcome_when_known(mine)
        if not unconfirmed(row.outcome):
            return row.outcome
        # Sent again after an unconfirmed outcome: ask again, under the same Update id.
    outcome = act(f"console:{nonce}")
    mine.update(outcome=outcome)
    return outcome


def _outcome_when_known(submission: QuerySet[ConsoleSubmission]) -> Any:
    deadline = time.monotonic() + settings.TEMPORAL_UPDATE_TIMEOUT_SECONDS + 5
    while time.monotonic() < deadline:
        row = submission.first()
        if row is None or row.outcome is not None:
            return row.outcome if row else None
        time.sleep(0.1)
    return None


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


@login_required
@console_view
def queue(request: HttpRequest) -> HttpResponse:
    state_param = request.GET.get("state", State.AWAITING_APPROVAL.value)
    error = ""
    if state_param not in {s.value for s in State} and state_param != "all":
        error = f"Unknown state {state_param[:40]!r}; showing orders awaiting approval."
        state_param = State.AWAITING_APPROVAL.value
    query = request.GET.get("q", "").strip()[:100]
    state = None if state_param == "all" else state_param
    counts = selectors.state_counts()
    # Without a search a tab's count is the list's count too, so the list needs no COUNT of its own.
    known = None if query else (counts[state] if state else selectors.total_of(counts))
    paginator = selectors.CappedPaginator(
        selectors.review_queue(state=state, query=query), settings.REVIEW_PAGE_SIZE, known=known
    )
    page = paginator.get_page(request.GET.get("page"))
    context = {
        "page": page,
        "tabs": [(s, counts[s.value]) for s in State],
        "state": state_param,
        "query": query,
        "error": error,
        "can_approve": request.user.has_perm(ACTION_PERMISSIONS[Action.APPROVE]),
        "can_cancel": request.user.has_perm(ACTION_PERMISSIONS[Action.CANCEL]),
        "results": request.session.pop("bulk_results", None),
        "nonce": uuid.uuid4().hex,
        "awaiting": state == State.AWAITING_APPROVAL,
    }
    template = "review/_queue_live.html" if request.GET.get("partial") else "review/queue.html"
    return render(request, template, context, status=400 if error else 200)


@require_POST
@login_required
@console_view
def bulk(request: HttpRequest) -> HttpResponse:
    action = BULK_ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        messages.error(request, "Choose Approve or Cancel.")
        return redirect(_safe_next(request, reverse("review:queue")))
    _require(request, action)
    order_ids = [oid for oid in request.POST.getlist("order_ids") if not order_id_problem(oid)][:BULK_LIMIT]
    if not order_ids:
        messages.error(request, "Select at least one order.")
        return redirect(_safe_next(request, reverse("review:queue")))
    nonce = request.POST.get("nonce", "")
    results = run_once(
        request,
        nonce,
        lambda key: [
            _outcome_dict(o)
            for o in order_act_many_sync(
                order_ids=order_ids,
                action=action,
                actor=request.user.get_username(),
                via="console",
                idempotency_key=key,
            )
        ],
    )
    request.session["bulk_results"] = {
        "action": action.value,
        "rows": results or [],
        # What the results' "Ask again" button sends: this same submission, so the same Update ids.
        "again": {"nonce": nonce, "order_ids": order_ids} if results and unconfirmed(results) else None,
    }
    return redirect(_safe_next(request, reverse("review:queue")))


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
    return {
        "order": order,
        "payment": payment,
        "events": timeline.events,
        "timeline": timeline,
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
    template = "review/_order_live.html" if request.GET.get("partial") else "review/order.html"
    return render(request, template, context)


@require_POST
@login_required
@console_view
def order_action(request: HttpRequest, order_id: str, action: str) -> HttpResponse:
    chosen = ORDER_FORMS.get(action)
    if chosen is None:
        raise Http404("No such action")
    _require(request, chosen)
    order = selectors.order_get(order_id=order_id)
    if order is None:
        raise Http404(f"No order {order_id!r}")
    kwargs: dict[str, Any] = {}
    if chosen is Action.UPDATE_ADDRESS:
        form = AddressForm(request.POST)
        if not form.is_valid():
            context = _order_context(request, order_id)
            context["address_form"] = form
            context["open_address"] = True
            return render(request, "review/order.html", context, status=400)
        kwargs["address"] = {**order.address_json, **AddressForm.address(form.cleaned_data)}
    nonce = request.POST.get("nonce", "")
    outcome = run_once(
        request,
        nonce,
        lambda key: _outcome_dict(
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
    _report(request, outcome)
    return HttpResponseRedirect(reverse("review:order", args=[order_id]))


def _report(request: HttpRequest, outcome: dict[str, Any] | None) -> None:
    if outcome is None:
        messages.warning(
            request, "This form was already submitted; its result is not known yet. Reload to see the order."
        )
    elif outcome["applied"]:
        done = {"approve": "Approved", "cancel": "Cancellation accepted", "update_address": "Address updated"}
        messages.success(request, f"{done[outcome['action']]}: {outcome['order_id']}.")
    elif unconfirmed(outcome):
        asked, button = UNCONFIRMED_WORDS[Action(outcome["action"])]
        messages.warning(
            request,
            format_html(
                'Not confirmed: {} <a href="{}">{}</a> — {}. It may still be applied; “{}” asks again and never '
                "applies it twice.",
                asked,
                reverse("review:order", args=[outcome["order_id"]]),
                outcome["order_id"],
                outcome["detail"],
                button,
            ),
        )
    else:
        messages.error(request, f"Not done — {outcome['detail']}")
