"""Child processes: started in a session of their own with a log, stopped in layers, never orphaned."""

from __future__ import annotations

import ctypes
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 15.0

# Stop order: the highest layer goes first, so nothing loses what it depends on while draining.
LAYER_TEMPORAL, LAYER_WORKER, LAYER_WEB = 0, 1, 2

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1
# What the kernel sends a child when the process that started it dies without stopping it (it was
# SIGKILLed, or crashed). SIGKILL, not SIGTERM: nobody is left to escalate after a grace period,
# so a child that lingers on SIGTERM (uvicorn waiting for an open websocket, a worker draining its
# activities) would never go. Every part of the stack survives being killed: the chaos run kills
# the worker and the Temporal server on purpose, and the next start carries on from their state.
DEATH_SIGNAL = signal.SIGKILL

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


class StackError(Exception):
    """A part of the stack could not be brought up; the message says which and why."""


class Shutdown(BaseException):
    """A stop signal arrived; raised from the handler so every wait unwinds to the cleanup.

    A BaseException, like KeyboardInterrupt, so library code that wraps `except Exception`
    (logging.config, Django's app loading) cannot turn it into an unrelated error.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


@dataclass(eq=False)
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    layer: int
    log: Path | None = None  # None: its output goes to this process's terminal
    log_offset: int = 0  # where this run's output starts: a restart appends to the same log
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.returncode is None

    def describe_exit(self) -> str:
        return describe_exit(self.returncode)

    def send(self, signum: int) -> None:
        try:
            self.popen.send_signal(signum)
        except ProcessLookupError:
            pass

    def output(self) -> str:
        """What this run of the process has written to its log so far."""
        if self.log is None:
            return ""
        try:
            with self.log.open("rb") as fh:
                fh.seek(self.log_offset)
                return fh.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def log_hint(self) -> str:
        """`; see <log>:` and its last lines, for an error message ("" without a log)."""
        if self.log is None:
            return ""
        tail = self.tail()
        return f"; see {self.log}" + (f":\n{tail}" if tail else "")


def wait_for(
    check: Callable[[], bool],
    *,
    seconds: float,
    what: str,
    process: Process | None = None,
    interval: float = POLL_SECONDS,
) -> None:
    """Until `check()` is true; StackError after `seconds`, or at once when `process` exits.

    The waits are short so that a stop signal is handled at once even when another thread
    received it (Python runs signal handlers on the main thread, between two instructions).
    """
    deadline = time.monotonic() + seconds
    while not check():
        if process is not None and not process.alive():
            raise StackError(f"{process.name} exited ({process.describe_exit()}) before {what}{process.log_hint()}")
        if time.monotonic() > deadline:
            hint = process.log_hint() if process is not None else ""
            raise StackError(f"timed out after {seconds:.0f} s waiting for {what}{hint}")
        time.sleep(interval)


class Supervisor:
    """The processes one command started, and the signal handling that stops them in order.

    Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only the command,
    which then stops the children layer by layer (the web app, then the workers, then Temporal):
    SIGTERM, a grace period, then SIGKILL. A second stop signal while stopping skips the grace.
    """

    def __init__(
        self,
        *,
        cwd: Path = REPO_ROOT,
        log_dir: Path | None = None,
        grace: float = STOP_GRACE_SECONDS,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """`log_dir`: where each child's log goes (`<name>.log`) unless `start` names one; without
        it, children write to this process's terminal. `say`: where to report slow stops."""
        self.cwd = cwd
        self.log_dir = log_dir
        self.grace = grace
        self.say = say or (lambda message: None)
        self.processes: list[Process] = []
        self._held = 0
        self._pending: int | None = None
        self._stopping = False
        self._hurry = False
        self._previous_handlers: dict[int, Any] = {}

    # --- signals ------------------------------------------------------------------------------
    def handle_stop_signals(self) -> None:
        """SIGINT, SIGTERM and SIGHUP raise Shutdown (on the main thread); while stopping, they
        only cut the grace period short. SIGINT too: a shell starts background jobs with it ignored."""
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def restore_signals(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def begin_stopping(self) -> None:
        """From now on a stop signal only hurries the stop instead of raising Shutdown."""
        self._stopping = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
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
            self._stopping = True
            raise Shutdown(self._pending)

    # --- starting -----------------------------------------------------------------------------
    def start(
        self,
        name: str,
        args: list[str],
        *,
        env: dict[str, str],
        layer: int,
        log: Path | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start `args` with its output appended to `log` (see __init__ for the default).

        Call it from the main thread: the kernel sends DEATH_SIGNAL when the *thread* that
        started the child ends, not only the process.
        """
        if log is None and self.log_dir is not None:
            log = self.log_dir / f"{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.log"
        with self._signals_held(), _appending(log, args) as (out, offset):
            popen = subprocess.Popen(
                args,
                cwd=cwd or self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            process = Process(name, popen, layer, log, offset)
            self.processes.append(process)
        return process

    # --- watching -----------------------------------------------------------------------------
    def first_exited(self) -> Process | None:
        return next((process for process in self.processes if not process.alive()), None)

    def wait_for_any_exit(self) -> Process:
        while (exited := self.first_exited()) is None:
            time.sleep(POLL_SECONDS)
        return exited

    # --- stopping -----------------------------------------------------------------------------
    def stop(self, process: Process, *, grace: float | None = None) -> None:
        """SIGTERM, then SIGKILL if it has not exited after `grace` seconds [the supervisor's]."""
        self._stop([process], self.grace if grace is None else grace)

    def kill(self, process: Process) -> None:
        """SIGKILL, and wait until it is gone."""
        process.send(signal.SIGKILL)
        process.popen.wait()

    def stop_all(self) -> None:
        """Every process still running, the highest layer first; each layer's processes together."""
        self._stopping = True
        for layer in sorted({process.layer for process in self.processes}, reverse=True):
            running = [p for p in self.processes if p.layer == layer and p.alive()]
            if running:
                self.say(f"stopping {', '.join(p.name for p in running)} ...")
                self._stop(running, self.grace)

    def _stop(self, processes: list[Process], grace: float) -> None:
        running = [process for process in processes if process.alive()]
        for process in running:
            process.send(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(p.alive() for p in running) and time.monotonic() < deadline and not self._hurry:
            time.sleep(POLL_SECONDS)
        for process in running:
            if process.alive():
                why = "asked to hurry" if self._hurry else f"did not stop in {grace:.0f} s"
                self.say(f"{process.name}: {why}; killing it")
                self.kill(process)


@contextmanager
def _appending(log: Path | None, args: list[str]) -> Iterator[tuple[IO[bytes] | None, int]]:
    """The log opened for appending, after a line that says what starts; its offset after that line."""
    if log is None:
        yield None, 0
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"--- {datetime.now().isoformat(timespec='seconds')} {shlex.join(args)}\n".encode())
        out.flush()  # before the child appends to the same file
        yield out, out.tell()


def die_with_parent() -> None:
    """A Popen `preexec_fn` (it runs in the child, between fork and exec): DEATH_SIGNAL when the
    starting thread ends."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, int(DEATH_SIGNAL))
