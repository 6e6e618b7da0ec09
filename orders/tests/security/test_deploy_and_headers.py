"""Production settings (`manage.py check --deploy`) and what every response carries: the security
headers and a content security policy that the pages keep to."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

from orders.tests.factories import make_order
from orders.tests.security.helpers import PASSWORD, sign_in, signed_in

ROOT = Path(__file__).resolve().parents[3]


def production_env(tmp_path: Path, **changes: str | None) -> dict[str, str]:
    """A production configuration, from environment variables only (see docs/security.md)."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "orders_site.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "orders.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://orders.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "SESSION_COOKIE_SECURE": "1",
        "CSRF_COOKIE_SECURE": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "BEHIND_TLS_PROXY": "1",
    }
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_the_production_environment(tmp_path: Path) -> None:
    result = check_deploy(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr.replace("WARNINGS:", "")


MISCONFIGURED: list[tuple[str, dict[str, str | None], list[str]]] = [
    ("no SECRET_KEY, so the development default", {"SECRET_KEY": None}, ["security.W009"]),
    ("a short SECRET_KEY", {"SECRET_KEY": "too-short"}, ["security.W009"]),
    ("DEBUG on", {"DEBUG": "1"}, ["security.W018"]),
    (
        "no TLS settings",
        {
            "SECURE_SSL_REDIRECT": None,
            "SESSION_COOKIE_SECURE": None,
            "CSRF_COOKIE_SECURE": None,
            "SECURE_HSTS_SECONDS": None,
        },
        ["security.W004", "security.W008", "security.W012", "security.W016"],
    ),
]


@pytest.mark.parametrize(("case", "changes", "codes"), MISCONFIGURED, ids=[case for case, _, _ in MISCONFIGURED])
def test_check_deploy_fails_when_a_production_setting_is_missing(
    tmp_path: Path, case: str, changes: dict[str, str | None], codes: list[str]
) -> None:
    result = check_deploy(production_env(tmp_path, **changes))
    assert result.returncode != 0
    for code in codes:
        assert code in result.stderr + result.stdout, result.stderr


EXPECTED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


CSP = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/review/",
        "/review/orders/{order}/",
        "/admin/",
        "/admin/orders/order/{order}/change/",
        "/docs",
        "/openapi.json",
        "/orders/{order}/status",
        "/no/such/path",
    ],
)
def test_every_response_carries_the_security_headers_and_the_csp(
    reviewer: User, token_client: Client, path: str
) -> None:
    order = make_order()
    if path.startswith(("/orders/", "/openapi", "/no/")):
        client = token_client
    else:
        client = Client() if path == "/accounts/login/" else signed_in(reviewer)
    response = client.get(path.format(order=order.id))
    assert response.status_code in (200, 404)
    for header, value in EXPECTED_HEADERS.items():
        assert response[header] == value, header
    assert response["Content-Security-Policy"] == CSP == django_settings.CONTENT_SECURITY_POLICY


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)


INLINE_STYLE = re.compile(r"<style\b|\sstyle=\"", re.I)


INLINE_HANDLER = re.compile(r"\son[a-z]+=\"", re.I)


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/login/",
        "/review/",
        "/review/?state=all",
        "/review/orders/{order}/",
        "/admin/",
        "/admin/orders/order/",
        "/admin/orders/order/{order}/change/",
        "/admin/orders/apitoken/",
        "/docs",
    ],
)
def test_pages_have_no_inline_script_style_or_handler_the_csp_would_block(reviewer: User, path: str) -> None:
    # A JSON data block (<script type="application/json">, Swagger UI's settings) is never run, so
    # the CSP allows it. What the browser actually does is checked by the browser test below.
    order = make_order()
    html = (
        signed_in(User.objects.create_superuser("root", password=PASSWORD))
        .get(path.format(order=order.id))
        .content.decode()
    )
    assert not INLINE_SCRIPT.search(html), INLINE_SCRIPT.search(html)
    assert not INLINE_STYLE.search(html), INLINE_STYLE.search(html)
    assert not INLINE_HANDLER.search(html), INLINE_HANDLER.search(html)


def test_the_lockout_page_has_the_headers_too(reviewer: User) -> None:
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        response = sign_in(Client(), "rita", "guess")
    assert response.status_code == 429
    assert response["Content-Security-Policy"] == CSP
    assert not INLINE_SCRIPT.search(response.content.decode())


@pytest.mark.browser
def test_console_admin_and_api_docs_run_in_chromium_without_a_csp_violation(
    live_server: Any, transactional_db: None
) -> None:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{chromium} is missing: CI must install Debian's chromium package")
        pytest.skip(f"{chromium} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    User.objects.create_superuser("root", password=PASSWORD)
    order = make_order()
    violations: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on(
            "console",
            lambda message: (
                violations.append(f"{page.url}: {message.text}") if "Content Security Policy" in message.text else None
            ),
        )
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/review/")
        for path in (
            "/review/",
            f"/review/orders/{order.id}/",
            "/admin/",
            f"/admin/orders/order/{order.id}/change/",
            "/docs",
        ):
            page.goto(live_server.url + path)
            page.wait_for_load_state("networkidle")
        assert page.locator(".opblock").count() == 8  # Swagger UI rendered every operation
        # The policy is live: an injected inline script is blocked and reported.
        page.evaluate(
            "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s); }"
        )
        assert page.evaluate("() => window.ran") is None
        browser.close()
    assert len(violations) == 1 and "inline script" in violations[0], violations
