"""The review queue: orders awaiting approval (or any state), and bulk approve or cancel."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from lifecycle.states import Action, State
from lifecycle.validation import order_id_problem
from orders import selectors
from orders.actions import BULK_LIMIT, Verdict, order_act_many_sync
from orders.forms import CancelForm, QueueFilterForm
from orders.permissions import ACTION_PERMISSIONS, REASSIGN_ORDER
from orders.views.common import console_view, name_who_decided, outcome_dict, require, run_once, safe_next, unconfirmed

BULK_ACTIONS = {"approve": Action.APPROVE, "cancel": Action.CANCEL}


def queue_filters(params: Any, user: Any) -> tuple[dict[str, Any], str, QueueFilterForm]:
    """The queue's filters from a query string (or a bulk form's copy of it): what
    `selectors.review_queue` takes, the state tab ("all" included), and the form with any errors."""
    form = QueueFilterForm(params)
    form.is_valid()
    cleaned = {name: value for name, value in form.cleaned_data.items() if name not in form.errors}
    state_param = cleaned.get("state") or State.AWAITING_APPROVAL.value
    if state_param not in {s.value for s in State} and state_param != "all":
        form.add_error("state", f"Unknown state {state_param[:40]!r}; showing orders awaiting approval.")
        state_param = State.AWAITING_APPROVAL.value
    filters = {
        "state": None if state_param == "all" else state_param,
        "query": cleaned.get("q") or "",
        "min_total": cleaned.get("min_total"),
        "max_total": cleaned.get("max_total"),
        "sort": cleaned.get("sort") or "",
        "view": cleaned.get("view") or "",
        "user_id": user.pk,
    }
    return filters, state_param, form


@login_required
@console_view
def queue(request: HttpRequest) -> HttpResponse:
    filters, state_param, form = queue_filters(request.GET, request.user)
    state = filters["state"]
    counts = selectors.state_counts()
    # Without a search a tab's count is the list's count too, so the list needs no COUNT of its own.
    narrowed = any(filters[name] not in (None, "") for name in ("query", "min_total", "max_total", "view"))
    known = None if narrowed else (counts[state] if state else selectors.total_of(counts))
    paginator = selectors.CappedPaginator(selectors.review_queue(**filters), settings.REVIEW_PAGE_SIZE, known=known)
    page = paginator.get_page(request.GET.get("page"))
    keep = request.GET.copy()
    keep.pop("page", None)
    keep.pop("partial", None)
    context = {
        "page": page,
        "tabs": [(s, counts[s.value]) for s in State],
        "state": state_param,
        "query": filters["query"],
        "filters": filters,
        "filter_form": form,
        "kept": keep.urlencode(),
        "error": " ".join(" ".join(errors) for errors in form.errors.values()),
        "can_approve": request.user.has_perm(ACTION_PERMISSIONS[Action.APPROVE]),
        "can_cancel": request.user.has_perm(ACTION_PERMISSIONS[Action.CANCEL]),
        "can_reassign": request.user.has_perm(REASSIGN_ORDER),
        "results": request.session.pop("bulk_results", None),
        "nonce": uuid.uuid4().hex,
        "awaiting": state == State.AWAITING_APPROVAL,
        "bulk_limit": BULK_LIMIT,
        "window_seconds": settings.APPROVAL_TIMEOUT_SECONDS,
        "cancel_form": CancelForm(),
    }
    template = "review/_queue_live.html" if request.GET.get("partial") else "review/queue.html"
    return render(request, template, context, status=400 if form.errors else 200)


FIRST_OF_TWO = "first of two"  # how the workflow's answer to a four-eyes order's first approval begins


def bulk_summary(action: Action, rows: list[dict[str, Any]]) -> str:
    """One line for the results: "2 approved, 1 first of two approvals, 1 refused (of 4)"."""
    done = {Action.APPROVE: "approved", Action.CANCEL: "cancelled"}[action]
    first = sum(
        1 for row in rows if row["verdict"] == Verdict.APPLIED and str(row.get("detail", "")).startswith(FIRST_OF_TWO)
    )
    counts = {verdict: 0 for verdict in Verdict}
    for row in rows:
        counts[Verdict(str(row["verdict"]))] += 1
    words = [(counts[Verdict.APPLIED] - first, done), (first, "first of two approvals")]
    words += [(counts[Verdict.REFUSED], "refused"), (counts[Verdict.NOT_FOUND], "not found")]
    words += [(counts[Verdict.UNAVAILABLE], "not confirmed")]
    parts = [f"{n} {word}" for n, word in words if n or word == done]
    return f"{', '.join(parts)} (of {len(rows)})"


@require_POST
@login_required
@console_view
def bulk(request: HttpRequest) -> HttpResponse:
    action = BULK_ACTIONS.get(request.POST.get("action", ""))
    if action is None:
        messages.error(request, "Choose Approve or Cancel.")
        return redirect(safe_next(request, reverse("review:queue")))
    require(request, action)
    if request.POST.get("all_matching"):
        # "Select all N matching": the orders the queue's filters list, up to BULK_LIMIT.
        filters, _, form = queue_filters(QueryDict(request.POST.get("filters", "")), request.user)
        if form.errors:
            messages.error(request, "The queue's filters changed; select the orders again.")
            return redirect(safe_next(request, reverse("review:queue")))
        order_ids = selectors.queue_ids(limit=BULK_LIMIT, **filters)
    else:
        order_ids = [oid for oid in request.POST.getlist("order_ids") if not order_id_problem(oid)][:BULK_LIMIT]
    if not order_ids:
        messages.error(request, "Select at least one order.")
        return redirect(safe_next(request, reverse("review:queue")))
    reason = ""
    if action is Action.CANCEL:
        cancel = CancelForm(request.POST)
        if not cancel.is_valid():
            problems = " ".join(" ".join(errors) for errors in cancel.errors.values())
            messages.error(request, f"Not cancelled: give a reason. {problems}")
            return redirect(safe_next(request, reverse("review:queue")))
        reason = CancelForm.reason(cancel.cleaned_data)
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
                reason=reason,
            )
        ],
    )
    me = request.user.get_username()
    rows = [
        name_who_decided(row, me) if row["verdict"] == Verdict.REFUSED else row
        for row in results or []
        if isinstance(row, dict)
    ]
    request.session["bulk_results"] = {
        "action": action.value,
        "rows": rows,
        "summary": bulk_summary(action, rows),
        # What the results' "Ask again" button sends: this same submission, so the same Update ids.
        "again": {"nonce": nonce, "order_ids": order_ids} if results and unconfirmed(results) else None,
    }
    return redirect(safe_next(request, reverse("review:queue")))
