"""Fixtures of the lifecycle tests (the session-wide Temporal servers are in the root conftest.py)."""

from __future__ import annotations

import pytest

from lifecycle.tests.workflow_doubles import Doubles


@pytest.fixture
def doubles() -> Doubles:
    """Fresh activity doubles for one workflow test."""
    return Doubles()
