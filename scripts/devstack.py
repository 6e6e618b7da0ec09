"""The whole development stack in one terminal: what `make run` executes.

It starts (or reuses) the Temporal dev server, its UI decoding payloads through the app's /codec
endpoint, applies migrations, makes sure a local `admin` login and an API token exist (kept in
.data/dev-credentials.json), runs the Temporal workers (`manage.py runworker`) and the web app
(uvicorn), prints where everything is, and on Ctrl-C stops what it started: the web app first,
then the workers, and the Temporal server last.

The app's database is the SQLite file .data/orders.sqlite3 (in --data-dir); the key that encrypts
what the app sends to Temporal is made once and kept in .data/payload-encryption-key. The app
sees the settings this script gives it (scripts/stack/environment.py) and the app settings
exported in your shell, which win and are named when it starts: `DATABASE_URL=postgres://...
make run` runs it on PostgreSQL, `APPROVAL_TIMEOUT_SECONDS=60 make run` with a one-minute review
window.

Run it from the repository root with the project's virtualenv:

    .venv/bin/python scripts/devstack.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `scripts.stack` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.stack import (
    REPO_ROOT,
    Process,
    Shutdown,
    Stack,
    StackError,
    TemporalServer,
    exported_settings,
    port_open,
    register_search_attributes,
    sqlite_url,
    uvicorn_answers,
    wait_for,
)

ADMIN_USERNAME = "admin"
# Exported settings whose values are not printed.
SECRETS = frozenset({"SECRET_KEY", "PAYLOAD_ENCRYPTION_KEY", "PAYLOAD_DECRYPTION_KEYS", "TEMPORAL_API_KEY"})
TOKEN_NAME = "make-run"
WEB_START_SECONDS = 30.0


@dataclass(frozen=True)
class Config:
    """What the command line chose: ports and where the state lives."""

    web_port: int = 8000
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    data_dir: Path = REPO_ROOT / ".data"

    @property
    def temporal(self) -> TemporalServer:
        return TemporalServer(
            self.temporal_port,
            self.data_dir / "temporal.db",
            ui_port=self.temporal_ui_port,
            ui_codec_endpoint=f"http://localhost:{self.web_port}/codec",
        )

    @property
    def temporal_log(self) -> Path:
        return self.data_dir / "temporal.log"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "dev-credentials.json"

    @property
    def payload_key_file(self) -> Path:
        return self.data_dir / "payload-encryption-key"

    def app_settings(self) -> dict[str, Any]:
        return {
            "DEBUG": True,
            "DATABASE_URL": sqlite_url(self.data_dir / "orders.sqlite3"),
            "TEMPORAL_ADDRESS": self.temporal.address,
            "TEMPORAL_UI_URL": f"http://localhost:{self.temporal_ui_port}",
        }


def say(message: str) -> None:
    print(f"devstack: {message}", flush=True)


# --- the steps -------------------------------------------------------------------------------
def check_web_port_free(config: Config) -> None:
    # Fail before starting anything rather than after Temporal and the workers are up.
    if port_open(config.web_port):
        raise StackError(f"port {config.web_port} is already in use (another `make run`?); stop that process first")


def ensure_temporal(config: Config, stack: Stack) -> bool:
    """Start the Temporal dev server unless one already listens; True if this script started it."""
    server = config.temporal
    if port_open(server.port):
        say(
            f"something already listens on {server.address}; reusing it as the Temporal server (it is left running on exit)"
        )
        added = asyncio.run(_register_search_attributes(server.address))
        if added:
            say(f"registered the search attribute(s) {', '.join(added)} on it")
        return False
    say(f"starting the Temporal dev server (log: {_rel(config.temporal_log)}) ...")
    server.start(stack, log=config.temporal_log)
    return True


async def _register_search_attributes(address: str) -> list[str]:
    # A server this script did not start may lack OrderState; the workflow cannot run without it.
    from temporalio.client import Client

    return await register_search_attributes(await Client.connect(address))


@dataclass
class Credentials:
    username: str
    password: str | None
    api_token: str


def ensure_credentials(config: Config, stack: Stack) -> Credentials:
    """The admin login and a working API token, created on first run and reused afterwards."""
    saved = load_saved_credentials(config)
    setup_django(stack.app_env())
    from django.db import connections

    stored = dict(saved)
    try:
        password = ensure_admin(config, saved.get("password"))
        # Written at once so a failure in the token step cannot lose a freshly made password.
        remember(config, stored, "password", password)
        token = ensure_api_token(saved.get("api_token"))
        remember(config, stored, "api_token", token)
    finally:
        # SQLite: do not hold a connection open next to the worker and web processes.
        connections.close_all()
    return Credentials(ADMIN_USERNAME, password, token)


def setup_django(env: dict[str, str]) -> None:
    """Load the app in this process on the same settings as the worker and the web app."""
    os.environ.clear()
    os.environ.update(env)
    # This file lives in scripts/, so the project packages are importable only with the root on the path.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def ensure_admin(config: Config, saved_password: Any) -> str | None:
    """The admin password if known; creates the superuser with a random one on first run."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: ADMIN_USERNAME}).first()
    if user is None:
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(**{User.USERNAME_FIELD: ADMIN_USERNAME}, password=password)
        say(f"created the superuser {ADMIN_USERNAME!r} (password saved in {_rel(config.credentials_file)})")
        return password
    if isinstance(saved_password, str) and user.check_password(saved_password):
        return saved_password
    return None


def ensure_api_token(saved_token: Any) -> str:
    """The saved token while it still authenticates, else a new one for admin."""
    from django.core.management import CommandError, call_command

    from orders.tokens import token_authenticate

    if isinstance(saved_token, str) and token_authenticate(saved_token) is not None:
        return saved_token
    if saved_token:
        say("the saved API token no longer authenticates (revoked?); creating a new one")
    out = io.StringIO()
    try:
        call_command("create_api_token", ADMIN_USERNAME, name=TOKEN_NAME, stdout=out)
    except CommandError as err:
        raise StackError(f"could not create an API token: {err}") from None
    # Only a hash is stored, so the printed token is the one chance to keep it.
    return out.getvalue().strip().splitlines()[-1]


def load_saved_credentials(config: Config) -> dict[str, Any]:
    try:
        data = json.loads(config.credentials_file.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        say(f"ignoring unreadable {_rel(config.credentials_file)} ({err})")
        return {}
    return data if isinstance(data, dict) else {}


def remember(config: Config, stored: dict[str, Any], key: str, value: str | None) -> None:
    """Set (or, for None, drop) `key` in the credentials file, rewriting it only on a change."""
    updated = {**stored, "username": ADMIN_USERNAME, key: value}
    if value is None:
        del updated[key]
    if updated != stored:
        save_credentials(config.credentials_file, updated)
        stored.clear()
        stored.update(updated)


def save_credentials(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start so the password and token are never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover file
    os.replace(tmp, path)


def ensure_payload_key(config: Config) -> str:
    """The PAYLOAD_ENCRYPTION_KEY of this data directory: made once, then kept (0600) so that the
    histories in .data/temporal.db stay readable to the app across restarts."""
    path = config.payload_key_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    say(f"made a payload encryption key (kept in {_rel(path)}): Temporal stores the orders encrypted")
    return path.read_text().strip()


def start_apps(config: Config, stack: Stack) -> Process:
    stack.start_worker(name="worker (manage.py runworker)")
    return stack.start_web(config.web_port, name="web (uvicorn)")


def banner(config: Config, credentials: Credentials, temporal_started: bool) -> str:
    base = f"http://localhost:{config.web_port}"
    token = credentials.api_token
    auth = f'-H "Authorization: Bearer {token}"'
    password = credentials.password or "(set earlier; reset it with: python manage.py changepassword admin)"
    temporal_note = "" if temporal_started else "  (already running before; left running on exit)"
    rule = "=" * 78
    return "\n".join(
        [
            "",
            rule,
            "  Order Lifecycle is running",
            "",
            f"  API docs        {base}/docs",
            f"  Review console  {base}/review/",
            f"  Admin           {base}/admin/",
            f"                  username: {credentials.username}",
            f"                  password: {password}",
            f"  Temporal UI     http://localhost:{config.temporal_ui_port}{temporal_note}",
            "                  payloads are encrypted; to read them there, sign in to Admin in the same",
            "                  browser and turn on the UI's codec setting 'Include cross-origin credentials'",
            f"  API token       {token}",
            f"                  (saved in {_rel(config.credentials_file)})",
            "",
            "  Try it (from the repository root):",
            f'    curl -X POST {base}/orders/order-123/start {auth} -H "Content-Type: application/json" -d @test_order.json',
            f"    curl -X POST {base}/orders/order-123/signals/approve {auth}",
            f"    curl {base}/orders/order-123/status {auth}",
            "",
            "  Press Ctrl-C to stop everything",
            rule,
            "",
        ]
    )


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --- main ------------------------------------------------------------------------------------
def run(config: Config, stack: Stack) -> int:
    check_web_port_free(config)
    temporal_started = ensure_temporal(config, stack)
    stack.manage("migrate", "--noinput", capture=False)
    credentials = ensure_credentials(config, stack)
    web = start_apps(config, stack)
    # The banner should come after uvicorn's startup lines, and the curl should work at once.
    try:
        wait_for(lambda: uvicorn_answers(config.web_port), seconds=WEB_START_SECONDS, what="the web app", process=web)
    except StackError:
        if web.alive():
            say(f"the web app is not answering on port {config.web_port} yet; the addresses below may take a moment")
    if stack.first_exited() is None:
        print(banner(config, credentials, temporal_started), flush=True)
    exited = stack.wait_for_any_exit()
    stack.begin_stopping()
    say(f"{exited.name} exited unexpectedly ({exited.describe_exit()}); stopping everything")
    return 1


def parse_args(argv: list[str] | None) -> Config:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="scripts/devstack.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--web-port", type=int, default=defaults.web_port, help="port of the web app [%(default)s]")
    parser.add_argument(
        "--temporal-port",
        type=int,
        default=defaults.temporal_port,
        help="port of the Temporal dev server [%(default)s]",
    )
    parser.add_argument(
        "--temporal-ui-port", type=int, default=defaults.temporal_ui_port, help="port of the Temporal UI [%(default)s]"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir,
        help="the app's SQLite database, Temporal's database and log, the saved login [.data]",
    )
    args = parser.parse_args(argv)
    return Config(args.web_port, args.temporal_port, args.temporal_ui_port, args.data_dir.resolve())


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    exported = exported_settings()
    if exported:
        shown = ", ".join(f"{k}={v}" if k not in SECRETS else k for k, v in exported.items())
        say(f"from your shell, the app also gets: {shown}")
    settings = {**config.app_settings(), "PAYLOAD_ENCRYPTION_KEY": ensure_payload_key(config)}
    stack = Stack(settings, exported=exported, say=say)
    stack.handle_stop_signals()
    try:
        return run(config, stack)
    except Shutdown as stop:
        say(f"{stop} received; stopping everything")
        return 0
    except StackError as err:
        stack.begin_stopping()
        say(f"error: {err}")
        return 1
    finally:
        stack.stop_all()
        if stack.processes:
            say("all stopped")


if __name__ == "__main__":
    sys.exit(main())
