"""The app's processes on one set of settings: manage.py commands, runworker, the web app (uvicorn)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from scripts.stack.environment import Setting, app_environment
from scripts.stack.ports import HOST
from scripts.stack.processes import (
    LAYER_WEB,
    LAYER_WORKER,
    POLL_SECONDS,
    Process,
    StackError,
    Supervisor,
    describe_exit,
    die_with_parent,
    wait_for,
)

START_SECONDS = 60.0
WORKER_READY_MARK = "runworker ready"  # logged (at INFO) once the workers poll their queues


class Stack(Supervisor):
    """A Supervisor that runs the app: every app process gets `settings` (see environment.py),
    and a start may override some of them for that one process."""

    def __init__(
        self, settings: dict[str, Setting], *, exported: dict[str, str] | None = None, **supervisor: Any
    ) -> None:
        super().__init__(**supervisor)
        self.settings = dict(settings)
        self.exported = dict(exported or {})
        app_environment(self.settings)  # refuses an unknown setting now, not at the first start

    def app_env(self, **overrides: Setting) -> dict[str, str]:
        return app_environment({**self.settings, **overrides}, exported=self.exported)

    def manage(
        self, *args: str, check: bool = True, capture: bool = True, timeout: float = 300.0, **overrides: Setting
    ) -> subprocess.CompletedProcess[str]:
        """`manage.py *args` run to its end; with `check`, StackError (with its output) when it fails.

        `capture=False` lets its output through to the terminal.
        """
        pipe = subprocess.PIPE if capture else None
        command = [sys.executable, "manage.py", *args]
        # Its own session, like the supervised processes: a Ctrl-C reaches only this process, which kills it.
        process = subprocess.Popen(
            command, cwd=self.cwd, env=self.app_env(**overrides), stdin=subprocess.DEVNULL, stdout=pipe, stderr=pipe,
            text=True, start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    stdout, stderr = process.communicate(timeout=0.2)  # short waits keep Ctrl-C responsive
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise StackError(f"`manage.py {args[0]}` did not finish in {timeout:.0f} s") from None
        except BaseException:
            process.kill()
            process.communicate()
            raise
        result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
        if check and result.returncode != 0:
            output = (stderr or stdout or "").strip()[-3000:]
            raise StackError(
                f"`manage.py {args[0]}` failed ({describe_exit(result.returncode)})"
                + (f":\n{output}" if output else "")
            )
        return result

    def start_worker(
        self,
        *,
        name: str = "worker",
        queue: str | None = None,
        options: tuple[str, ...] = (),
        log: Path | None = None,
        **overrides: Setting,
    ) -> Process:
        """`manage.py runworker`: both task queues, or only `queue` ("order" or "shipping")."""
        args = [sys.executable, "manage.py", "runworker", *(["--queue", queue] if queue else []), *options]
        return self.start(name, args, env=self.app_env(**overrides), layer=LAYER_WORKER, log=log)

    def start_web(
        self, port: int, *, name: str = "web", options: tuple[str, ...] = (), log: Path | None = None
    ) -> Process:
        """The web app (HTTP and websockets) under uvicorn on HOST:`port`."""
        args = [
            sys.executable, "-m", "uvicorn", "orders_site.asgi:application",
            "--host", HOST, "--port", str(port), *options,
        ]  # fmt: skip
        return self.start(name, args, env=self.app_env(), layer=LAYER_WEB, log=log)


def web_health(port: int) -> int:
    """The status of GET /health on the web app (0: no answer)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def uvicorn_answers(port: int) -> bool:
    """Whether our web server (uvicorn names itself in every answer) answers HTTP on `port`; a port
    that is merely open may belong to another server while uvicorn has failed to bind it."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/static/", timeout=5) as response:
            server = response.headers.get("server", "")
    except urllib.error.HTTPError as err:
        server = err.headers.get("server", "")
    except OSError:
        return False
    return "uvicorn" in server


def wait_for_web(process: Process, port: int, seconds: float = START_SECONDS) -> None:
    """Until the web app answers /health with 200 (its database and Temporal are reachable)."""
    wait_for(
        lambda: web_health(port) == 200,
        seconds=seconds,
        what=f"{process.name} to answer /health with 200 on port {port}",
        process=process,
        interval=POLL_SECONDS * 2,
    )


def wait_for_worker(process: Process, seconds: float = START_SECONDS) -> None:
    """Until the worker says it polls its queues (it logs that at INFO: LOG_LEVEL must allow it)."""
    wait_for(
        lambda: WORKER_READY_MARK in process.output(),
        seconds=seconds,
        what=f"{process.name} to be ready",
        process=process,
    )
