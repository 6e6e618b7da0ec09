"""Torture test: many orders through the real stack while workers, Temporal and the database fail.

It starts a stack of its own, shared with nothing (a Temporal dev server on free ports with its
state in a temporary directory, a fresh PostgreSQL database `chaos_<random>` on 127.0.0.1:5432,
one `manage.py runworker` process and the web app under uvicorn, all run from a snapshot of the
working tree), drives N orders through the JSON API with a seeded mix of scenarios, each with
the end state it must reach, and meanwhile:

- SIGKILLs the worker every few seconds (at least --kills times), preferably at a moment when a
  charge has moved money but is not recorded yet, and starts a new one;
- lets the worker crash right after the payment provider moved money, before the charge is
  recorded (CHAOS_CRASH_AFTER_CHARGE_RATE, the app's test-only hook in lifecycle/providers.py);
- kills and restarts the Temporal dev server (same database file, same port);
- terminates every PostgreSQL connection of the chaos database a few times.

Then it drains (one calm worker, no more faults), checks money, payments, events and workflow
histories with SQL and the Temporal client, prints a table with PASS/FAIL per line and exits
1 on any violation (2 if the stack could not be started). Everything it started is stopped and
the database dropped, also on Ctrl-C; the logs are kept when a check failed. The parts are in
scripts/chaoslib/, the stack in scripts/stack/. See docs/reliability.md. Run it from anywhere
with the project's virtualenv:

    .venv/bin/python scripts/chaos.py [--orders N] [--kills K] [--concurrency C] [--seed S] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `scripts.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.chaoslib.run import execute
from scripts.chaoslib.scenarios import MIX, SCENARIOS
from scripts.chaoslib.stack import ChaosStack, say
from scripts.stack import Shutdown, StackError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=300, help="how many orders to drive [300]")
    parser.add_argument("--kills", type=int, default=10, help="at least this many worker SIGKILLs [10]")
    parser.add_argument("--concurrency", type=int, default=20, help="orders driven at a time [20]")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed for the order mix and fault timing [random]")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--kill-every", type=float, default=3.5, help="mean seconds a worker lives before its SIGKILL [3.5]"
    )
    parser.add_argument("--temporal-restarts", type=int, default=1, help="Temporal dev server restarts [1]")
    parser.add_argument("--db-drops", type=int, default=3, help="times all database connections are terminated [3]")
    parser.add_argument(
        "--crash-rate", type=float, default=0.05, help="CHAOS_CRASH_AFTER_CHARGE_RATE of the worker [0.05]"
    )
    parser.add_argument("--flaky-rate", type=float, default=0.5, help="FLAKY_CALL_FAILURE_RATE [0.5]")
    parser.add_argument("--hang-share", type=float, default=0.1, help="FLAKY_CALL_TIMEOUT_SHARE [0.1]")
    parser.add_argument("--approval-timeout", type=float, default=600.0, help="APPROVAL_TIMEOUT_SECONDS [600]")
    parser.add_argument(
        "--four-eyes-min-total",
        default="250",
        help="FOUR_EYES_MIN_TOTAL: orders of at least this total (about a third) need two reviewers [250]",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds to wait for every order to end [300]"
    )
    parser.add_argument("--mix", type=parse_mix, default=dict(MIX), metavar="KIND=W,...",
                        help=f"scenario weights [{','.join(f'{k}={w}' for k, w in MIX)}]")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the log directory even when every check passes")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(1_000_000)
    if args.orders < 1 or args.concurrency < 1:
        parser.error("--orders and --concurrency must be at least 1")
    return args


def parse_mix(text: str) -> dict[str, int]:
    """`approve=3,cancel_before_approval=1`: only these scenarios, in these proportions."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in SCENARIOS:
            raise argparse.ArgumentTypeError(f"unknown scenario {kind!r}; known: {', '.join(SCENARIOS)}")
        mix[kind.strip()] = int(weight or 1)
    return mix


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([_display_python(), "scripts/chaos.py", *(sys.argv[1:] if argv is None else argv)])
    stack = ChaosStack(args)
    stack.processes.handle_stop_signals()
    code = 1
    try:
        code = execute(args, stack, command)
    except StackError as err:
        say(f"error: {err}")
        code = 2
    except (Shutdown, KeyboardInterrupt) as err:
        say(f"interrupted ({err or 'SIGINT'}); stopping everything")
        code = 130
    finally:
        stack.processes.begin_stopping()  # a second Ctrl-C now only cuts the grace periods short
        stack.tear_down()
        if code == 0 and not args.keep:
            shutil.rmtree(stack.tmp, ignore_errors=True)
        else:
            say(f"logs kept in {stack.tmp}")
        stack.processes.restore_signals()
    return code


def _display_python() -> str:
    try:
        return os.path.relpath(sys.executable, Path.cwd())
    except ValueError:
        return sys.executable


if __name__ == "__main__":
    sys.exit(main())
