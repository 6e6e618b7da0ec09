"""Ratios of ours to the floor, and the targets judged on them (informational: printed as
PASS/MISS, they never change the exit code)."""

from __future__ import annotations

import statistics
from typing import Any

from scripts.benchlib.stack import FLAKY_RATE

TARGET_THROUGHPUT_RATIO = 1.0  # ours / floor, at the highest concurrency
TARGET_P50_RATIO = 1.0  # ours / floor, at concurrency 1
TARGET_FLAKY_P50_MS = 2000.0
TARGET_FLAKY_P95_MS = 4000.0
TARGET_PAGE_P95_MS = 150.0

Phase = dict[str, Any]


def find_phase(phases: list[Phase], system: str, faults: str, c: int, workers: int = 1) -> Phase | None:
    """The phase of the standard run (round 1); `--rounds` adds later rounds, marked with `round`."""
    return next((p for p in phases if p["system"] == system and p["faults"] == faults and p["concurrency"] == c
                 and p.get("workers_per_queue", 1) == workers and not p.get("round")), None)  # fmt: skip


def evaluate(results: dict[str, Any], concurrencies: list[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(ratios, targets) of a run's results."""
    evaluation = Evaluation(results["phases"], max(concurrencies), min(concurrencies))
    evaluation.throughput()
    evaluation.latency()
    evaluation.scale_out()
    evaluation.flaky()
    evaluation.pages((results.get("scale") or {}).get("pages", []))
    return evaluation.ratios, evaluation.targets


class Evaluation:
    def __init__(self, phases: list[Phase], cmax: int, cmin: int) -> None:
        self.phases = phases
        self.cmax, self.cmin = cmax, cmin
        self.ratios: dict[str, Any] = {}
        self.targets: list[dict[str, Any]] = []

    def target(self, name: str, value: float | None, goal: str, ok: bool | None) -> None:
        self.targets.append({"target": name, "value": value, "goal": goal,
                             "result": "n/a" if ok is None else ("PASS" if ok else "MISS")})  # fmt: skip

    def throughput(self) -> None:
        """Ours over the floor at the highest concurrency; the median over paired rounds if any."""
        cmax = self.cmax
        floor_hi, ours_hi = (
            find_phase(self.phases, "floor", "none", cmax),
            find_phase(self.phases, "ours", "none", cmax),
        )
        if not (floor_hi and ours_hi and floor_hi["throughput_per_s"]):
            return
        r = round(ours_hi["throughput_per_s"] / floor_hi["throughput_per_s"], 3)
        self.ratios[f"throughput_c{cmax}_ours_over_floor"] = r
        name = f"throughput at c{cmax}: ours / floor"
        per_round = [r]
        for n in sorted({p["round"] for p in self.phases if p.get("round")}):
            pair = {p["system"]: p for p in self.phases if p.get("round") == n}
            if "floor" in pair and "ours" in pair and pair["floor"]["throughput_per_s"]:
                per_round.append(round(pair["ours"]["throughput_per_s"] / pair["floor"]["throughput_per_s"], 3))
        if len(per_round) > 1:
            self.ratios[f"throughput_c{cmax}_ours_over_floor_rounds"] = per_round
            r = round(statistics.median(per_round), 3)
            self.ratios[f"throughput_c{cmax}_ours_over_floor_median"] = r
            name += f", median of {len(per_round)} rounds"
        self.target(name, r, f">= {TARGET_THROUGHPUT_RATIO}", r >= TARGET_THROUGHPUT_RATIO)

    def latency(self) -> None:
        cmin = self.cmin
        floor_lo, ours_lo = (
            find_phase(self.phases, "floor", "none", cmin),
            find_phase(self.phases, "ours", "none", cmin),
        )
        if floor_lo and ours_lo and floor_lo["latency_ms"]["p50"] and ours_lo["latency_ms"]["p50"] is not None:
            r = round(ours_lo["latency_ms"]["p50"] / floor_lo["latency_ms"]["p50"], 3)
            self.ratios[f"p50_c{cmin}_ours_over_floor"] = r
            self.target(f"p50 latency at c{cmin}: ours / floor", r, f"<= {TARGET_P50_RATIO}", r <= TARGET_P50_RATIO)

    def scale_out(self) -> None:
        """Two worker processes per queue against one, and ours against the floor with two."""
        cmax = self.cmax
        one = {s: find_phase(self.phases, s, "none", cmax) for s in ("floor", "ours")}
        two = {s: find_phase(self.phases, s, "none", cmax, 2) for s in ("floor", "ours")}
        if two["floor"] and two["ours"] and two["floor"]["throughput_per_s"]:
            self.ratios[f"throughput_c{cmax}_x2_workers_ours_over_floor"] = round(
                two["ours"]["throughput_per_s"] / two["floor"]["throughput_per_s"], 3
            )
        for system in ("floor", "ours"):
            x1, x2 = one[system], two[system]
            if x1 and x2 and x1["throughput_per_s"]:
                self.ratios[f"throughput_c{cmax}_{system}_x2_over_x1_workers"] = round(
                    x2["throughput_per_s"] / x1["throughput_per_s"], 3
                )

    def flaky(self) -> None:
        """The flaky targets are per-order latency (the issue sets them against the earlier system's
        18-22 s per order), judged at the lowest concurrency. Higher up, latency is bound by
        throughput (Little's law: p50 ~ concurrency / rate), and the floor's own fault-free p50 on
        these 2 cores is above 2 s at c20, so those rows are reported beside the floor's, not judged."""
        concurrencies = {p["concurrency"] for p in self.phases if p["faults"] != "none"}
        for c in sorted(concurrencies, reverse=True):
            flaky = find_phase(self.phases, "ours", f"flaky {FLAKY_RATE}", c)
            if flaky is None:
                continue
            p50, p95 = flaky["latency_ms"]["p50"], flaky["latency_ms"]["p95"]
            judged = c == min(concurrencies)
            floor_c = find_phase(self.phases, "floor", "none", c)
            floor_p50 = floor_c["latency_ms"]["p50"] if floor_c else None
            info = f"info (floor's fault-free p50 here: {floor_p50:.0f})" if floor_p50 else "info"
            self.target(
                f"flaky {FLAKY_RATE} at c{c}: p50 ms",
                p50,
                f"< {TARGET_FLAKY_P50_MS:.0f}" if judged else info,
                None if p50 is None or not judged else p50 < TARGET_FLAKY_P50_MS,
            )
            self.target(
                f"flaky {FLAKY_RATE} at c{c}: p95 ms",
                p95,
                f"< {TARGET_FLAKY_P95_MS:.0f}" if judged else "info",
                None if p95 is None or not judged else p95 < TARGET_FLAKY_P95_MS,
            )

    def pages(self, pages: list[dict[str, Any]]) -> None:
        for page in pages:
            if page["target"]:
                self.target(
                    f"scale: {page['key']} p95 ms",
                    page["p95_ms"],
                    f"< {TARGET_PAGE_P95_MS:.0f}",
                    page["p95_ms"] < TARGET_PAGE_P95_MS,
                )
