"""Simulations of the outside world: the network (`flaky_call`), the payment provider, the carrier.

They stand for services the order system does not own. The payment provider keeps its own ledger
(`provider_charges`) and honours idempotency keys the way a real provider does: a key it has seen
returns the earlier result and moves no money.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from lifecycle.validation import UNDELIVERABLE_ZIP
from orders.models import ProviderCharge

logger = logging.getLogger(__name__)


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
    flaky_call()  # the request may be lost before it reaches the provider
    try:
        with transaction.atomic():
            row, created = ProviderCharge.objects.get_or_create(
                idempotency_key=idempotency_key, kind=kind, defaults={"amount": amount}
            )
    except IntegrityError:  # a concurrent attempt with the same key won the race
        row, created = ProviderCharge.objects.get(idempotency_key=idempotency_key, kind=kind), False
    flaky_call()  # ... or the provider's answer may be lost after the money moved
    if kind == ProviderCharge.KIND_CHARGE:
        crash_point("after_charge", settings.CHAOS_CRASH_AFTER_CHARGE_RATE)
    return Movement(idempotency_key, kind, row.amount, replayed=not created)


def charge(*, idempotency_key: str, amount: Decimal) -> Movement:
    return _move_money(idempotency_key=idempotency_key, kind=ProviderCharge.KIND_CHARGE, amount=amount)


def refund(*, idempotency_key: str, amount: Decimal) -> Movement:
    return _move_money(idempotency_key=idempotency_key, kind=ProviderCharge.KIND_REFUND, amount=amount)


def dispatch_to_carrier(*, order_id: str, address: dict[str, str]) -> str:
    """Hand a package to the simulated carrier; returns a tracking number."""
    flaky_call()
    if str(address.get("zip", "")).strip() == UNDELIVERABLE_ZIP:
        raise CarrierRefused(f"the carrier does not deliver to zip {UNDELIVERABLE_ZIP}")
    return f"TRK-{order_id}"
