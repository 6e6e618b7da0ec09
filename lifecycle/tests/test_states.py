"""The state machine's one source of truth."""

from __future__ import annotations

import pytest

from lifecycle.states import END_STATES, HAPPY_PATH, Action, State, allowed_actions, allows, refusal_reason


def test_approval_is_open_until_approved_and_only_before_payment() -> None:
    assert allows(Action.APPROVE, State.ORDER_RECEIVED)
    assert allows(Action.APPROVE, State.AWAITING_APPROVAL)
    assert not allows(Action.APPROVE, State.AWAITING_APPROVAL, approved=True)
    assert not allows(Action.APPROVE, State.PAYMENT_CHARGED)


@pytest.mark.parametrize("action", [Action.CANCEL, Action.UPDATE_ADDRESS])
def test_cancel_and_address_change_close_at_dispatch(action: Action) -> None:
    assert allows(action, State.SHIPPING)
    assert not allows(action, State.SHIPPING, dispatch_started=True)
    assert not allows(action, State.SHIPPED)
    assert "dispatched" in refusal_reason(action, State.SHIPPING, dispatch_started=True)


@pytest.mark.parametrize("state", sorted(END_STATES))
def test_nothing_is_allowed_once_an_order_has_ended(state: State) -> None:
    assert allowed_actions(state) == []
    assert "ended" in refusal_reason(Action.CANCEL, state)


def test_the_happy_path_ends_completed() -> None:
    assert HAPPY_PATH[0] is State.ORDER_RECEIVED
    assert HAPPY_PATH[-1] is State.COMPLETED
    assert refusal_reason(Action.APPROVE, State.AWAITING_APPROVAL) == ""
