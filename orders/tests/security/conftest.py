"""Fixtures of the security tests."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from orders.permissions import API_CLIENTS, REVIEWERS, ensure_groups
from orders.tests.security.helpers import CLOSED_PORT, PASSWORD, with_token


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    # Sign-ins are most of what these tests do; the production hasher makes each cost ~0.3 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def no_temporal(settings: Any) -> None:
    """Temporal unreachable: a request that got past the checks would end in a fast 503."""
    settings.TEMPORAL_ADDRESS = CLOSED_PORT


@pytest.fixture
def token_client(db: None, no_temporal: None) -> Client:
    """An API client in the API clients group (every API permission), on the test transaction."""
    ensure_groups()
    user = User.objects.create_user("api-sec")
    user.groups.add(Group.objects.get(name=API_CLIENTS))
    return with_token(user)


@pytest.fixture
def reviewer(db: None) -> User:
    ensure_groups()
    user = User.objects.create_user("rita", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=REVIEWERS))
    return user
