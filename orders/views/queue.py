"""The review queue: orders awaiting approval (or any state), and bulk approve or cancel."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from lifecycle.states import Action, State
from lifecycle.validation import order_id_problem
from orders import selectors
from orders.actions import BULK_LIMIT, order_act_many_sync
from orders.permissions import ACTION_PERMISSIONS
from orders.views.common import console_view, outcome_dict, require, run_once, safe_next, unconfirmed

BULK_ACTIONS = {"approve": Action.APPROVE, "cancel": Action.CANCEL}


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
        return redirect(safe_next(request, reverse("review:queue")))
    require(request, action)
    order_ids = [oid for oid in request.POST.getlist("order_ids") if not order_id_problem(oid)][:BULK_LIMIT]
    if not order_ids:
        messages.error(request, "Select at least one order.")
        return redirect(safe_next(request, reverse("review:queue")))
    nonce = request.POST.get("nonce", "")
    results = run_once(
        request,
        nonce,
        lambda key: [
            outcome_dict(o)
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
    return redirect(safe_next(request, reverse("review:queue")))
