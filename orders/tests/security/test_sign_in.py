"""Signing in: the login and logout forms (errors shown, CSRF, no redirect to another site) and
login throttling by django-axes."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, User
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone

from orders.permissions import REVIEWERS
from orders.tests.security.helpers import PASSWORD, sign_in, signed_in


def test_the_login_page_says_why_a_sign_in_failed(reviewer: User) -> None:
    response = Client().post("/accounts/login/", {"username": "rita", "password": "wrong"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="form-error" role="alert"' in html
    assert "Please enter a correct username and password" in html
    assert 'value="rita"' in html  # the username is kept, the password is not
    assert "wrong" not in html


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/review/", "javascript:alert(1)"])
def test_neither_the_login_page_nor_the_console_redirects_to_another_site(reviewer: User, target: str) -> None:
    response = Client().post("/accounts/login/", {"username": "rita", "password": PASSWORD, "next": target})
    assert response.status_code == 302 and response["Location"] == "/review/"
    bulk = signed_in(reviewer).post("/review/bulk/", {"action": "approve", "next": target})  # no orders chosen
    assert bulk.status_code == 302 and bulk["Location"] == "/review/"


def test_the_login_page_shows_a_missing_field_next_to_it(reviewer: User) -> None:
    html = Client().post("/accounts/login/", {"username": "rita", "password": ""}).content.decode()
    assert 'id="id_password-error"' in html and "This field is required." in html
    assert 'aria-invalid="true"' in html


def test_the_login_form_needs_its_csrf_token(reviewer: User) -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.post("/accounts/login/", {"username": "rita", "password": PASSWORD}).status_code == 403
    page = client.get("/accounts/login/")
    token = page.context["csrf_token"]
    response = client.post(
        "/accounts/login/", {"username": "rita", "password": PASSWORD, "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302 and response["Location"] == "/review/"


def test_the_logout_form_needs_its_csrf_token(reviewer: User) -> None:
    client = signed_in(reviewer, enforce_csrf_checks=True)
    assert client.post("/accounts/logout/").status_code == 403
    assert client.get("/review/").status_code == 200  # still signed in


def test_axes_is_configured_to_lock_by_username_and_address() -> None:
    assert django_settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert django_settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert django_settings.AXES_RESET_ON_SUCCESS is True
    assert django_settings.AXES_FAILURE_LIMIT == int(os.environ.get("AXES_FAILURE_LIMIT", 5))


def test_after_five_wrong_passwords_even_the_right_one_is_refused_with_429(reviewer: User) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    client = Client()
    for _ in range(limit - 1):
        assert sign_in(client, "rita", "guess").status_code == 200
    locked = sign_in(client, "rita", "guess")
    assert locked.status_code == 429
    assert sign_in(client, "rita", PASSWORD).status_code == 429
    text = " ".join(sign_in(client, "rita", PASSWORD).content.decode().split())
    minutes = round(django_settings.AXES_COOLOFF_TIME.total_seconds() / 60)
    assert "Too many sign-in attempts" in text
    assert (
        f"Signing in as <strong><bdi>rita</bdi></strong> from this address is paused after {limit} failed attempts."
        in text
    )
    assert f"Try again in {minutes} minutes." in text
    assert client.get("/review/").status_code == 302  # not signed in


def test_a_lockout_leaves_other_users_and_other_addresses_alone(reviewer: User) -> None:
    User.objects.create_user("sam", password=PASSWORD).groups.add(Group.objects.get(name=REVIEWERS))
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "rita", "guess")
    assert sign_in(Client(), "rita", PASSWORD).status_code == 429
    assert sign_in(Client(), "sam", PASSWORD).status_code == 302  # another user, same address
    assert sign_in(Client(), "rita", PASSWORD, REMOTE_ADDR="10.1.2.3").status_code == 302  # same user, elsewhere


def test_a_successful_sign_in_resets_the_count(reviewer: User) -> None:
    limit = django_settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        sign_in(Client(), "rita", "guess")
    assert sign_in(Client(), "rita", PASSWORD).status_code == 302
    for _ in range(limit - 1):
        assert sign_in(Client(), "rita", "guess").status_code == 200
    assert sign_in(Client(), "rita", PASSWORD).status_code == 302


def test_the_lockout_ends_after_the_cool_off(reviewer: User) -> None:
    from axes.models import AccessAttempt

    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "rita", "guess")
    assert sign_in(Client(), "rita", PASSWORD).status_code == 429
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - django_settings.AXES_COOLOFF_TIME - timezone.timedelta(seconds=1)
    )
    assert sign_in(Client(), "rita", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(reviewer: User) -> None:
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        Client().post("/admin/login/", {"username": "rita", "password": "guess"})
    assert Client().post("/admin/login/", {"username": "rita", "password": PASSWORD}).status_code == 429


def test_tests_can_still_sign_in_with_force_login_or_login_given_a_request(reviewer: User) -> None:
    # AxesStandaloneBackend needs the request; Client.login() passes none unless given one.
    assert signed_in(reviewer).get("/review/").status_code == 200
    client = Client()
    assert client.login(request=HttpRequest(), username="rita", password=PASSWORD)
    assert client.get("/review/").status_code == 200


PROXY = "10.0.0.2"  # every request behind the TLS proxy arrives from its address


def via_proxy(username: str, password: str, client_address: str, sent: str = "") -> Any:
    """A sign-in through the proxy, which appends the address it saw to X-Forwarded-For
    (after anything the client sent itself)."""
    forwarded = f"{sent}, {client_address}" if sent else client_address
    return sign_in(Client(), username, password, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded)


def test_behind_the_tls_proxy_a_lockout_is_per_client_not_per_proxy(reviewer: User, settings: Any) -> None:
    settings.BEHIND_TLS_PROXY = True
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        via_proxy("rita", "guess", "203.0.113.7")
    assert via_proxy("rita", PASSWORD, "203.0.113.7").status_code == 429
    # Rita herself, from her own address through the same proxy, is not locked out ...
    assert via_proxy("rita", PASSWORD, "198.51.100.20").status_code == 302
    # ... and the attacker cannot escape the lockout by sending an X-Forwarded-For of its own.
    assert via_proxy("rita", PASSWORD, "203.0.113.7", sent="198.51.100.99").status_code == 429


def test_without_the_proxy_setting_x_forwarded_for_is_ignored(reviewer: User, settings: Any) -> None:
    settings.BEHIND_TLS_PROXY = False
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        via_proxy("rita", "guess", "203.0.113.7")
    # Counted by the connecting address: a forged header changes nothing.
    assert via_proxy("rita", PASSWORD, "198.51.100.20").status_code == 429
