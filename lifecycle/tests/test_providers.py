"""The simulated outside world: quick retries inside an attempt, never a second movement of money."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from lifecycle import providers
from orders.models import ProviderCharge


def test_a_flaky_charge_is_retried_inside_the_attempt_and_moves_money_once(
    transactional_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.FLAKY_CALL_FAILURE_RATE = 0.67
    settings.QUICK_RETRY_BUDGET_SECONDS = 30.0  # enough for any run of bad luck
    random.seed(7)
    calls = 0
    real_flaky_call = providers.flaky_call

    def counted() -> None:
        nonlocal calls
        calls += 1
        real_flaky_call()

    monkeypatch.setattr(providers, "flaky_call", counted)
    movement = providers.charge(idempotency_key="pay-quick", amount=Decimal("59.98"))
    assert movement.amount == Decimal("59.98")
    assert calls > 2  # it did fail on the way (two calls per try) ...
    assert ProviderCharge.objects.filter(idempotency_key="pay-quick").count() == 1  # ... and charged once


def test_without_a_budget_a_transient_failure_fails_the_attempt(settings: Any) -> None:
    settings.FLAKY_CALL_FAILURE_RATE = 1.0
    settings.QUICK_RETRY_BUDGET_SECONDS = 0.0
    with pytest.raises(providers.TransientCallError):
        providers.network()


def test_the_budget_bounds_the_quick_retries(settings: Any) -> None:
    settings.FLAKY_CALL_FAILURE_RATE = 1.0
    settings.QUICK_RETRY_BUDGET_SECONDS = 0.2
    tries = 0

    def failing() -> None:
        nonlocal tries
        tries += 1
        raise providers.TransientCallError("down")

    with pytest.raises(providers.TransientCallError):
        providers.with_quick_retries(failing)
    assert 3 <= tries <= 15  # 5, 10, 20, 25, 25, ... ms apart within 0.2 s
