"""The JSON API as the chaos run's client sees it: retried through outages, every attempt noted."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any

# Above the app's wait for a workflow's verdict: TEMPORAL_UPDATE_TIMEOUT_SECONDS (30 s) bounds each
# of the SDK's calls, and an Update can take two (admission, then the result): 503s come at ~45 s.
HTTP_TIMEOUT_SECONDS = 75.0
REQUEST_BUDGET_SECONDS = 240.0  # how long one API call is retried through outages


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    uncertain: bool  # an earlier attempt of this call may have been applied

    @property
    def detail(self) -> str:
        return str(self.body.get("detail", ""))


class ApiGaveUp(Exception):
    pass


class Api:
    """Bearer-token JSON client that retries through outages (503, 500, lost connections)."""

    RETRYABLE = frozenset({500, 502, 503, 504})

    def __init__(self, base_url: str, token: str, halt: threading.Event) -> None:
        self.base_url = base_url
        self.token = token
        self.halt = halt
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.longest_retry = 0.0  # seconds one call was retried before it got a real answer

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        trail: list[str] | None = None,
        key: str | None = None,
        token: str | None = None,
    ) -> Reply:
        """The answer to one request, retried through outages; every attempt is noted in `trail`.

        With `key`, every attempt carries it as Idempotency-Key, so a retry of an action whose first
        attempt was applied (but answered 503 or got lost) gets that first outcome, not a second action.
        `token`: another user's (a reviewer's) instead of the client's own.
        """
        began = time.monotonic()
        deadline = began + REQUEST_BUDGET_SECONDS
        uncertain = False
        delay = 0.2
        while True:
            if self.halt.is_set():
                raise ApiGaveUp("interrupted")
            self._count("requests")
            outcome = self._once(method, path, body, key, token or self.token)
            if trail is not None:
                trail.append(_trail_line(path, outcome))
            if isinstance(outcome, Reply) and outcome.status not in self.RETRYABLE:
                outcome.uncertain = uncertain
                with self.lock:
                    self.longest_retry = max(self.longest_retry, time.monotonic() - began)
                return outcome
            # Lost connection, timeout or 5xx: the request may or may not have been applied.
            self._count(f"retried after {outcome.status}" if isinstance(outcome, Reply) else f"retried after {outcome}")
            uncertain = True
            if time.monotonic() + delay > deadline:
                last = f"{outcome.status} {outcome.detail}" if isinstance(outcome, Reply) else outcome
                raise ApiGaveUp(f"{method} {path}: no answer within {REQUEST_BUDGET_SECONDS:.0f} s (last: {last})")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _once(self, method: str, path: str, body: dict[str, Any] | None, key: str | None, token: str) -> Reply | str:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                return Reply(response.status, _json(response.read()), False)
        except urllib.error.HTTPError as err:
            return Reply(err.code, _json(err.read()), False)
        except (urllib.error.URLError, OSError) as err:
            return type(getattr(err, "reason", err)).__name__


def _trail_line(path: str, outcome: Reply | str) -> str:
    clock = time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}"
    action = path.rsplit("/", 1)[-1]
    if isinstance(outcome, Reply):
        return f"{clock} {action} -> {outcome.status} {outcome.detail[:120]}".rstrip()
    return f"{clock} {action} -> {outcome}"


def compress_trail(trail: list[str]) -> list[str]:
    """Runs of the same answer folded into one line: `... -> 503 ... (x41 until 01:06:34.120)`."""
    folded: list[tuple[str, str, int, str]] = []  # first clock, answer, count, last clock
    for line in trail:
        clock, _, answer = line.partition(" ")
        if folded and folded[-1][1] == answer:
            first, _, count, _ = folded[-1]
            folded[-1] = (first, answer, count + 1, clock)
        else:
            folded.append((clock, answer, 1, clock))
    return [
        f"{first} {answer}" + (f" (x{count} until {last})" if count > 1 else "")
        for first, answer, count, last in folded
    ]


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"detail": raw[:200].decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}
