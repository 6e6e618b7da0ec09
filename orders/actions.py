"""Human actions on an order (approve, cancel, change address), for every surface.

The API, the review console and admin all come through `order_act`: the workflow has the last
word, and the outcome says truthfully whether the action was applied and, if not, why.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async

from lifecycle.client import ActionRefused, TemporalUnavailable, send_action
from lifecycle.states import END_STATES, Action, refusal_message, refusal_reason
from lifecycle.validation import order_id_problem
from orders.db import release_connections
from orders.metrics import counted_action
from orders.selectors import order_state_async

BULK_CONCURRENCY = 10
# The most orders one bulk action (the console's or admin's) may name: each is one workflow round trip.
BULK_LIMIT = 200

# A client's name for one intended action (the API's Idempotency-Key header).
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def idempotency_key_problem(key: str) -> str:
    if IDEMPOTENCY_KEY.fullmatch(key):
        return ""
    return "must be 1 to 200 printable ASCII characters without spaces"


def update_id_for(
    *, action: Action, actor: str, key: str, address: dict[str, Any] | None = None, reason: str = ""
) -> str:
    """The Update id for a keyed request: the same caller, key and request give the same id.

    The id includes the request itself, so a key reused for a different request (another action,
    another address) is a new action, not a replay of the first one.
    """
    request = json.dumps([actor, key, action.value, address, reason], sort_keys=True, ensure_ascii=True)
    return f"{action.value}-{hashlib.sha256(request.encode()).hexdigest()[:40]}"


class Verdict(enum.StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class ActionOutcome:
    order_id: str
    action: Action
    verdict: Verdict
    detail: str
    state: str | None = None

    @property
    def applied(self) -> bool:
        return self.verdict is Verdict.APPLIED


@counted_action
async def order_act(
    *,
    order_id: str,
    action: Action,
    actor: str,
    via: str,
    address: dict[str, Any] | None = None,
    reason: str = "",
    idempotency_key: str = "",
    may_reassign: bool = False,
) -> ActionOutcome:
    """Apply one action through the workflow. With an `idempotency_key`, repeating the same request
    (after a 503 or a lost answer) gets the first request's outcome and applies nothing twice.
    `may_reassign`: the actor holds orders.reassign_order (the caller checks), so a claim by them
    takes over another reviewer's claim.
    The caller holds no database connection while the workflow decides (orders.db)."""
    # An id no order can have is not looked up at all (PostgreSQL refuses NUL in a query).
    if order_id_problem(order_id):
        return ActionOutcome(order_id, action, Verdict.NOT_FOUND, f"no order {order_id!r}")
    update_id = (
        update_id_for(action=action, actor=actor, key=idempotency_key, address=address, reason=reason)
        if idempotency_key
        else None
    )
    # The workflow is asked first: it knows the order's state for certain, and the usual action
    # needs no database read. The row is read only to explain a refusal or an unknown order.
    try:
        result = await send_action(
            order_id,
            action,
            actor=actor,
            via=via,
            address=address,
            reason=reason,
            update_id=update_id,
            may_reassign=may_reassign,
        )
    except ActionRefused as err:
        if err.state:
            return ActionOutcome(order_id, action, Verdict.REFUSED, err.detail, err.state)
        # No such workflow, or it has closed: explained below from the stored row.
        verdict, detail = Verdict.REFUSED, err.detail
    except TemporalUnavailable as err:
        verdict, detail = Verdict.UNAVAILABLE, f"temporal: {err}"
    else:
        return ActionOutcome(order_id, action, Verdict.APPLIED, result.detail, result.state)
    current = await order_state_async(order_id=order_id)
    # Other actions of the same request (a bulk one) may still be waiting for their workflows.
    await sync_to_async(release_connections)()
    if current is None:
        return ActionOutcome(order_id, action, Verdict.NOT_FOUND, f"no order {order_id!r}")
    # An ended order refuses, naming its state; a keyed retry while Temporal is away is told to
    # retry instead, because its first attempt may be the action that ended the order.
    if current in END_STATES and not (verdict is Verdict.UNAVAILABLE and idempotency_key):
        return ActionOutcome(
            order_id, action, Verdict.REFUSED, refusal_message(action, refusal_reason(action, current)), current
        )
    return ActionOutcome(order_id, action, verdict, detail, current)


async def order_act_many(
    *,
    order_ids: list[str],
    action: Action,
    actor: str,
    via: str,
    idempotency_key: str = "",
    reason: str = "",
    may_reassign: bool = False,
) -> list[ActionOutcome]:
    """The same action on several orders, a few at a time; one outcome per order, in order.
    Callers keep to BULK_LIMIT orders. One `idempotency_key` serves them all (an Update id
    names an Update within its workflow only)."""
    limit = asyncio.Semaphore(BULK_CONCURRENCY)
    request: dict[str, Any] = dict(
        action=action, actor=actor, via=via, idempotency_key=idempotency_key, reason=reason, may_reassign=may_reassign
    )

    async def one(order_id: str) -> ActionOutcome:
        async with limit:
            return await order_act(order_id=order_id, **request)

    return list(await asyncio.gather(*(one(order_id) for order_id in dict.fromkeys(order_ids))))


# The console's and admin's sync views: their thread's connection (session, user, the order) goes
# back before the workflows are asked, and is borrowed again for whatever the view does next.
def order_act_sync(**kwargs: Any) -> ActionOutcome:
    release_connections()
    return async_to_sync(order_act)(**kwargs)


def order_act_many_sync(**kwargs: Any) -> list[ActionOutcome]:
    release_connections()
    return async_to_sync(order_act_many)(**kwargs)
