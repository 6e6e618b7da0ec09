"""What the console's pages share: who may act, one action per submitted form, what an outcome says."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from lifecycle.states import Action
from orders import selectors
from orders.actions import ActionOutcome, Verdict
from orders.models import ConsoleSubmission
from orders.permissions import ACTION_PERMISSIONS, VIEW_ORDER

# Words for an action whose outcome is not confirmed: (what was asked, the button that asks again).
UNCONFIRMED_WORDS = {
    Action.APPROVE: ("the approval of", "Approve"),
    Action.CANCEL: ("the cancellation of", "Yes, cancel the order"),
    Action.UPDATE_ADDRESS: ("the address change of", "Save address"),
    Action.CLAIM: ("the claim of", "Claim"),
    Action.RELEASE: ("the release of", "Release"),
}

console_view = permission_required(VIEW_ORDER, raise_exception=True)


def require(request: HttpRequest, action: Action) -> None:
    if not request.user.has_perm(ACTION_PERMISSIONS[action]):
        raise PermissionDenied(f"you may not {action.value.replace('_', ' ')} orders")


def outcome_dict(outcome: ActionOutcome) -> dict[str, Any]:
    return {
        "order_id": outcome.order_id,
        "action": outcome.action.value,
        "verdict": outcome.verdict.value,
        "applied": outcome.applied,
        "detail": outcome.detail,
        "state": outcome.state,
    }


DECIDED_WORDS = {
    "ORDER_APPROVED": "approved",
    "FIRST_APPROVAL": "given the first approval",
    "ORDER_CANCELLED": "cancelled",
    "ORDER_CLAIMED": "claimed",
}


def name_who_decided(outcome: dict[str, Any], me: str) -> dict[str, Any]:
    """A refusal that says who acted first, when the workflow's words do not name them already."""
    found = selectors.last_decision(order_id=outcome["order_id"])
    if found is None:
        return outcome
    kind, actor, at = found
    if not actor or kind not in DECIDED_WORDS or actor in outcome["detail"]:
        return outcome
    who = "you" if actor == me else actor
    when = timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S %Z")
    return {**outcome, "detail": f"{outcome['detail']} ({DECIDED_WORDS[kind]} by {who} at {when})"}


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


def safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


def report(request: HttpRequest, outcome: dict[str, Any] | None) -> None:
    if outcome is None:
        messages.warning(
            request, "This form was already submitted; its result is not known yet. Reload to see the order."
        )
    elif outcome["applied"]:
        done = {
            "approve": "Approved",
            "cancel": "Cancellation accepted",
            "update_address": "Address updated",
            "claim": "Claimed",
            "release": "Released",
        }
        if outcome["action"] == "approve" and outcome["detail"].startswith("first of two"):
            messages.success(request, f"First of two approvals given: {outcome['order_id']} needs a second reviewer.")
        else:
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
