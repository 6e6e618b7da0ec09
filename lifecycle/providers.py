"""Simulations of the outside world: the network (`flaky_call`, `network`), the payment provider, the carrier.

They stand for services the order system does not own. The payment provider keeps its own ledger
(`provider_charges`) and honours idempotency keys the way a real provider does: a key it has seen
returns the earlier result and moves no money.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.conf import settings

from lifecycle.metrics import provider_call
from lifecycle.validation import UNDELIVERABLE_ZIP
from orders.db import get_or_insert
from orders.models import ProviderCharge

logger = logging.getLogger(__name__)
T = TypeVar("T")


class TransientCallError(Exception):
    """A simulated network failure: retrying the call may succeed."""


class CarrierRefused(Exception):
    """The carrier will never take this package (a permanent error)."""


def flaky_call() -> None:
    """Fail like a network call would, at the configured rate.

    Of the failures, FLAKY_CALL_TIMEOUT_SHARE hang past the activity timeout before giving up
    (the worker sees a timeout), the rest raise at once.
    """
    rate = settings.FLAKY_CALL_FAILURE_RATE
    if rate <= 0 or random.random() >= rate:
        return
    if random.random() < settings.FLAKY_CALL_TIMEOUT_SHARE:
        time.sleep(settings.ACTIVITY_TIMEOUT_SECONDS + 0.5)
        raise TransientCallError("simulated call hung past the activity timeout")
    raise TransientCallError("simulated transient failure")


def with_quick_retries(call: Callable[[], T]) -> T:
    """Run a call to an outside service, retrying a transient failure at once, as HTTP clients do.

    Retries start 5 ms apart, doubling up to 25 ms, for at most QUICK_RETRY_BUDGET_SECONDS; then
    the failure is raised and Temporal retries the whole activity (durably, at its own pace). The
    quick retries are what keep a flaky network from costing a durable retry each time: on the dev
    server a durable retry waits on a timer that fires about a second late. Every call passed here
    must be safe to repeat (the provider's idempotency key, deterministic event ids). A call that
    hangs past the activity timeout is not retried here: the attempt is already lost.
    """
    deadline = time.monotonic() + settings.QUICK_RETRY_BUDGET_SECONDS
    delay = 0.005
    while True:
        try:
            return call()
        except TransientCallError:
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.025)


def network() -> None:
    """One round trip over the simulated network, retried quickly when it fails transiently."""
    with_quick_retries(flaky_call)


def crash_point(name: str, rate: float) -> None:
    """Test-only fault injection: die here, as a power cut would, with probability `rate`."""
    if rate > 0 and random.random() < rate:
        logger.warning("chaos: crashing the worker process at %s", name)
        logging.shutdown()
        os._exit(137)


@dataclass(frozen=True)
class Movement:
    idempotency_key: str
    kind: str
    amount: Decimal
    replayed: bool


def _move_money(*, idempotency_key: str, kind: str, amount: Decimal) -> Movement:
    with provider_call("payment", kind):
        flaky_call()  # the request may be lost before it reaches the provider
        # A concurrent attempt on the same key collides on the unique key: this one reads its row.
        row, created = get_or_insert(
            ProviderCharge, idempotency_key=idempotency_key, kind=kind, defaults=lambda: {"amount": amount}
        )
        flaky_call()  # ... or the provider's answer may be lost after the money moved
    if kind == ProviderCharge.KIND_CHARGE:
        crash_point("after_charge", settings.CHAOS_CRASH_AFTER_CHARGE_RATE)
    return Movement(idempotency_key, kind, row.amount, replayed=not created)


def charge(*, idempotency_key: str, amount: Decimal) -> Movement:
    # A retry resends the whole request with the same key: the provider replays, moving nothing.
    return with_quick_retries(
        lambda: _move_money(idempotency_key=idempotency_key, kind=ProviderCharge.KIND_CHARGE, amount=amount)
    )


def refund(*, idempotency_key: str, amount: Decimal) -> Movement:
    return with_quick_retries(
        lambda: _move_money(idempotency_key=idempotency_key, kind=ProviderCharge.KIND_REFUND, amount=amount)
    )


def dispatch_to_carrier(*, order_id: str, address: dict[str, str]) -> str:
    """Hand a package to the simulated carrier; returns a tracking number."""

    def once() -> str:
        with provider_call("carrier", "dispatch"):
            flaky_call()
            if str(address.get("zip", "")).strip() == UNDELIVERABLE_ZIP:
                raise CarrierRefused(f"the carrier does not deliver to zip {UNDELIVERABLE_ZIP}")
            return f"TRK-{order_id}"

    return with_quick_retries(once)
