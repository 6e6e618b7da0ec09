"""The environment the app's processes see: one allow-list, and every app setting said out loud.

Nothing of the caller's environment reaches the app unless it is in PASSED_THROUGH: a variable
exported in the shell (WORKFLOW_SANDBOX, DB_POOL_MAX_SIZE, ...) must not silently change what
`make run`, the benchmark, the chaos run or the tests start. Each setting that
orders_site/settings.py reads is either in SETTABLE (a command of the stack sets it, explicitly)
or in LEFT_AT_DEFAULT (never set: the app's own default applies); lifecycle/tests/test_stack.py
fails when settings.py reads one that is in neither.
"""

from __future__ import annotations

import os

# What a process needs to run at all, whoever starts it: where programs are, whose home, which
# language and temporary directory. Plus every locale variable (LC_ALL, LC_CTYPE, ...).
PASSED_THROUGH = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TMPDIR", "TERM"})
PASSED_THROUGH_PREFIXES = ("LC_",)

# Settings a command of the stack sets (each caller passes those it needs).
SETTABLE = frozenset(
    {
        "DATABASE_URL",
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "LOG_LEVEL",
        "TEMPORAL_ADDRESS",
        "TEMPORAL_NAMESPACE",
        "TEMPORAL_UI_URL",
        "ORDER_TASK_QUEUE",
        "SHIPPING_TASK_QUEUE",
        "APPROVAL_TIMEOUT_SECONDS",
        "FOUR_EYES_MIN_TOTAL",
        "CLAIM_TTL_SECONDS",
        "ESCALATE_AFTER_SECONDS",
        "FLAKY_CALL_FAILURE_RATE",
        "FLAKY_CALL_TIMEOUT_SHARE",
        "CHAOS_CRASH_AFTER_CHARGE_RATE",
        "WORKER_ACTIVITY_THREADS",
        "WORKER_GRACE_SECONDS",
        "WORKER_MAX_CACHED_WORKFLOWS",
        "REVIEW_FEED_INTERVAL_SECONDS",
    }
)

# Settings no command of the stack sets: the app's default applies, whatever the shell exports.
LEFT_AT_DEFAULT = frozenset(
    {
        "CSRF_TRUSTED_ORIGINS",
        "EMAIL_URL",
        "SQLITE_TEST_PATH",
        "DB_POOL_MAX_SIZE",
        "DB_POOL_TIMEOUT_SECONDS",
        "CONN_MAX_AGE",
        "WORKFLOW_RUN_TIMEOUT_SECONDS",
        "ACTIVITY_TIMEOUT_SECONDS",
        "ACTIVITY_MAX_ATTEMPTS",
        "QUICK_RETRY_BUDGET_SECONDS",
        "TEMPORAL_UPDATE_TIMEOUT_SECONDS",
        "WORKFLOW_SANDBOX",
        "ACTIVITY_ERROR_LOG_ATTEMPT",
        "LOG_FORMAT",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "BEHIND_TLS_PROXY",
        "AXES_FAILURE_LIMIT",
        "AXES_COOLOFF_MINUTES",
    }
)

Setting = str | int | float | bool


def base_environment() -> dict[str, str]:
    """The allowed part of this process's environment: for a process that is not the app (Temporal)."""
    return {
        name: value
        for name, value in os.environ.items()
        if name in PASSED_THROUGH or name.startswith(PASSED_THROUGH_PREFIXES)
    }


def exported_settings() -> dict[str, str]:
    """The app settings exported in this shell. Only `make run` passes them on, and it names them;
    the benchmark, the chaos run and the tests never do, so no shell changes their figures."""
    known = SETTABLE | LEFT_AT_DEFAULT
    return {name: value for name, value in sorted(os.environ.items()) if name in known}


def app_environment(settings: dict[str, Setting], *, exported: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an app process (manage.py, runworker, uvicorn): the allowed part of this
    process's environment, and `settings`, then the `exported` ones the user chose (which win);
    every other setting takes the app's default."""
    unknown = sorted(set(settings) - SETTABLE)
    if unknown:
        raise ValueError(f"not settable by the stack (see scripts/stack/environment.py): {', '.join(unknown)}")
    return {
        **base_environment(),
        "DJANGO_SETTINGS_MODULE": "orders_site.settings",
        # Logs should show up as they happen even when the output goes to a file or a pipe.
        "PYTHONUNBUFFERED": "1",
        **{name: _text(value) for name, value in settings.items()},
        **(exported or {}),
    }


def _text(value: Setting) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
