"""The chaos run's report: a table of checks with PASS/FAIL, and the same as JSON figures."""

from __future__ import annotations

import argparse
import functools
import platform
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Any

from scripts.chaoslib.api import Api
from scripts.chaoslib.checks import Check
from scripts.chaoslib.histories import History
from scripts.chaoslib.poller import query
from scripts.chaoslib.scenarios import Driver, Plan
from scripts.chaoslib.stack import ChaosStack
from scripts.stack import temporal_cli_version

ACTIVITY_TIMEOUT_SECONDS = 2.0  # the app's default, which the chaos run keeps


def machine_facts(stack: ChaosStack) -> dict[str, str]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    pg = query(stack.database.name, "SHOW server_version")[0][0] if stack.database.created else "?"
    return {
        "machine": run("uname", "-m"),
        "cpus": run("nproc"),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporal": temporal_cli_version(),
        "postgresql": str(pg),
    }


@dataclass
class Report:
    args: argparse.Namespace
    stack: ChaosStack
    command: str
    timings: dict[str, float]
    checks: list[Check]
    api: Api
    plans: list[Plan]
    driver: Driver
    histories: dict[str, History]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @functools.cached_property
    def header(self) -> dict[str, str]:
        t, args = self.timings, self.args
        return {
            **machine_facts(self.stack),
            "command": self.command,
            "seed": str(args.seed),
            "duration": f"{t['total']} s (setup {t['setup']}, drive {t['drive']}, drain {t['drain']}, check {t['check']})",
            "faults": (
                f"flaky calls {args.flaky_rate:.0%} ({args.hang_share:.0%} of them hang past the "
                f"{ACTIVITY_TIMEOUT_SECONDS:g} s activity timeout), crash after charge {args.crash_rate:.0%}, "
                f"a worker SIGKILL every ~{args.kill_every:g} s"
            ),
        }

    def kinds(self) -> Counter[str]:
        return Counter(plan.kind for plan in self.plans)

    def notes(self) -> Counter[str]:
        return Counter(note for outcome in self.driver.outcomes.values() for note in outcome.notes)

    def render(self) -> str:
        lines = ["", "=" * 100, "Order Lifecycle chaos run", ""]
        lines += [f"  {key:<10} {value}" for key, value in self.header.items()]
        lines += ["", f"  scenario mix: {', '.join(f'{k} {n}' for k, n in sorted(self.kinds().items()))}"]
        lines += [f"  driver notes: {', '.join(f'{k}: {n}' for k, n in sorted(self.notes().items()))}"]
        calls = ", ".join(f"{k} {n}" for k, n in sorted(self.api.counts.items()))
        lines += [f"  API calls:    {calls}; longest a call was retried: {self.api.longest_retry:.0f} s", ""]
        width = max(len(c.name) for c in self.checks)
        lines.append(f"  {'check':<{width}}  {'value':>22}  {'expected':<14} result")
        lines.append(f"  {'-' * width}  {'-' * 22}  {'-' * 14} ------")
        for check in self.checks:
            result = "info" if check.expected == "info" else "PASS" if check.ok else "FAIL"
            lines.append(f"  {check.name:<{width}}  {check.value!s:>22}  {check.expected:<14} {result}")
            lines += [f"      {line}" for line in check.evidence if not check.ok]
        failed = [c for c in self.checks if not c.ok]
        lines += ["", f"  RESULT: {'PASS' if not failed else f'FAIL ({len(failed)} checks)'}", "=" * 100, ""]
        return "\n".join(lines)

    def figures(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "header": self.header,
            "timings": self.timings,
            "faults": vars(self.stack.faults),
            "api": {**self.api.counts, "longest_retry_seconds": round(self.api.longest_retry, 1)},
            "scenarios": dict(self.kinds()),
            "notes": dict(self.notes()),
            "payment_attempts": dict(Counter(h.attempts for h in self.histories.values())),
            "checks": [
                {"name": c.name, "value": str(c.value), "expected": c.expected, "ok": c.ok, "evidence": c.evidence}
                for c in self.checks
            ],
        }
