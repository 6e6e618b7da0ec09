"""The benchmark's report: the results' header, a line per phase while it runs, and the tables."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scripts.benchlib.floor import split_activities
from scripts.benchlib.stack import APPROVAL_TIMEOUT_S, FLAKY_RATE, WORKER_THREADS, BenchStack
from scripts.stack import temporal_cli_version

Phase = dict[str, Any]


def new_results(args: argparse.Namespace, stack: BenchStack) -> dict[str, Any]:
    """The results' header: the command, when, and the run's settings in words."""
    before, between, after = split_activities(args.floor_activities)
    if args.completion == "result":
        completion = "then await the order workflow's result with the temporalio client (workflow id = order id)"
    else:
        completion = "then GET /orders/{id}/status every " + (
            f"{args.poll_ms:.0f} ms" if args.poll_ms else "20 ms (c1) / 50 ms (c>1)"
        )
    return {
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "orders_per_phase": args.orders,
            "concurrency": args.concurrency,
            "flaky_concurrency": [] if args.skip_flaky else args.flaky_concurrency,
            "flaky_call_failure_rate": FLAKY_RATE,
            "warmup_orders": args.warmup,
            "completion": args.completion,
            "scale_out": args.scale_out,
            "backlog_orders": args.backlog,
            "backlog_max_cached_workflows": args.backlog_cache if args.backlog else [],
            "approval_timeout_s": APPROVAL_TIMEOUT_S,
            "ours_payloads": "AES-GCM encrypted (--encrypt)" if stack.payload_key else "plain",
            "ours_tracing": f"on, OTLP to {stack.trace_endpoint} where nothing listens (--trace)"
            if stack.trace_endpoint
            else "off",
            "temporal_persistence": f"SQLite file {stack.temporal.db_file}"
            + (" (tmpfs: no fsync cost)" if stack.on_tmpfs else " (on disk)"),
            "floor_shape": (
                f"parent {args.floor_activities} no-op activities ({before} before approve, {between} after it, "
                f"{after} after the child), 'approve' signalled right after start, child on a second queue with "
                f"2 no-op activities; sync activities on a {WORKER_THREADS}-thread ThreadPoolExecutor, "
                f"max_concurrent_activities {WORKER_THREADS}, one process for both queues"
            ),
            "client": (
                f"completion={args.completion}. floor: temporalio client, start + signal + await result; ours: "
                f"http.client keep-alive per thread, POST start, POST approve, {completion}"
            ),
        },
        "phases": [],
    }


def machine_facts(pg_version: str | None) -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        import temporalio

        sdk = temporalio.__version__  # type: ignore[attr-defined]
    except Exception:
        sdk = "unknown"
    return {
        "arch": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporal_cli": temporal_cli_version(),
        "temporalio_sdk": sdk,
        "postgresql": pg_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def describe_phase(rec: Phase) -> str:
    lat = rec["latency_ms"]
    return (
        f"{rec['system']:<5} {rec['faults']:<10} c={rec['concurrency']:<3} {workers_label(rec):<9} "
        f"{rec['completed']}/{rec['orders']} ok, "
        f"{rec['throughput_per_s']:.2f}/s, p50 {fmt_ms(lat['p50'])} p95 {fmt_ms(lat['p95'])} p99 {fmt_ms(lat['p99'])}"
        f"{', ERRORS ' + str(rec['errors']) if rec['errors'] else ''} (machine CPU {rec['machine_cpu_busy_pct']}% busy)"
    )


def workers_label(rec: Phase) -> str:
    n = rec.get("workers_per_queue", 1)
    label = "1 worker" if n == 1 else f"x{n} workers"
    return f"{label} r{rec['round']}" if rec.get("round") else label


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def dash(v: Any) -> Any:
    return "-" if v is None else v


def table(rows: list[list[Any]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join("-" * w for w in widths)

    def fmt(r: list[Any]) -> str:
        return "  ".join(
            str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths, strict=False))
        )

    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


def render(results: dict[str, Any]) -> str:
    out = _header(results)
    if results["phases"]:
        out += _phases(results["phases"])
        out += _requests(results["phases"])
    out += _probe_and_memory(results)
    out += _scale_out(results.get("ratios", {}))
    if results.get("backlog"):
        out += _backlog(results["backlog"])
    if results.get("scale"):
        out += _scale(results["scale"])
    if results.get("targets"):
        out += ["", "targets (informational; the exit code ignores them):"]
        out.append(table([[t["target"], "-" if t["value"] is None else t["value"], t["goal"], t["result"]] for t in results["targets"]],
                         ["target", "value", "goal", "result"]))  # fmt: skip
    if results.get("error"):
        out += ["", f"BROKEN: {results['error']}"]
    out.append("=" * 100)
    return "\n".join(out)


def _header(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    return [
        "",
        "=" * 100,
        "Order Lifecycle benchmark",
        f"command:  {results['command']}",
        f"when:     {results['started_at']} (UTC), {results['duration_s']:.0f} s",
        f"machine:  {m['arch']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"load average at start {m['load_average_at_start']}",
        f"software: Python {m['python']}, {m['temporal_cli']}, temporalio {m['temporalio_sdk']}, PostgreSQL {m['postgresql']}",
        f"temporal: dev server, {results['settings']['temporal_persistence']}",
        f"floor:    {results['settings']['floor_shape']}",
        f"client:   {results['settings']['client']}",
        f"ours:     payloads {results['settings'].get('ours_payloads', 'plain')}, "
        f"tracing {results['settings'].get('ours_tracing', 'off')}",
        "",
    ]


def _phases(phases: list[Phase]) -> list[str]:
    rows = []
    for p in phases:
        lat = p["latency_ms"]
        cpu = p["cpu_ms_per_order"]
        worker_cpu = p.get("worker_cpu_ms_per_order")
        if worker_cpu is None:  # results written before the scale-out phase existed
            worker_cpu = cpu.get("worker") if p["system"] == "ours" else cpu.get("floor worker")
        rows.append([
            p["system"], p["faults"], p["concurrency"], workers_label(p), f"{p['completed']}/{p['orders']}",
            p["errors"],
            f"{p['throughput_per_s']:.2f}", fmt_ms(lat["p50"]), fmt_ms(lat["p95"]), fmt_ms(lat["p99"]),
            "-" if worker_cpu is None else f"{worker_cpu:.0f}",
            "-" if p["system"] != "ours" else f"{cpu.get('web', 0):.0f}",
            f"{cpu.get('temporal', 0):.0f}",
            "-" if p["system"] != "ours" or "postgresql" not in cpu else f"{cpu['postgresql']:.0f}",
            f"{cpu.get('driver (bench.py)', 0):.0f}", f"{p['machine_cpu_busy_pct']:.0f}%",
        ])  # fmt: skip
    out = [table(rows, ["system", "faults", "conc", "workers", "done", "err", "per s", "p50", "p95", "p99",
                        "worker CPU ms/ord", "web", "temporal", "postgres", "driver", "machine busy"])]  # fmt: skip
    if any(p.get("workers_per_queue", 1) > 1 for p in phases):
        out.append("x2 workers: two worker processes per task queue (floor: two processes, each on both queues; "
                   "ours: two `runworker --queue order` and two `runworker --queue shipping`); "
                   "worker CPU is their sum")  # fmt: skip
    return out


def _requests(phases: list[Phase]) -> list[str]:
    out = ["", "per request, client side (floor: start_workflow RPC, approve signal RPC; ours: POST start, POST approve"
           " = Update round trip through the workflow):"]  # fmt: skip
    out.append(table(
        [[p["system"], p["faults"], p["concurrency"], workers_label(p), fmt_ms(p.get("start_request_ms_p50")),
          fmt_ms(p.get("approve_request_ms_p50")), fmt_ms(p.get("approve_request_ms_p95")),
          p.get("completion", "result" if p["system"] == "floor" else "poll"),
          dash(p.get("status_polls_per_order")), dash(p.get("poll_interval_ms")),
          dash(p.get("database_completed")) if p["system"] == "ours" else "-",
          dash(p.get("postgres_per_order", {}).get("sessions")),
          dash(p.get("postgres_per_order", {}).get("transactions"))]
         for p in phases],
        ["system", "faults", "conc", "workers", "start p50", "approve p50", "approve p95", "completion",
         "status polls/order", "poll ms", "COMPLETED in DB", "PG sessions/order", "PG xacts/order"],
    ))  # fmt: skip
    return out


def _probe_and_memory(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    probe = results.get("temporal_timer_probe")
    if probe:
        out += ["", f"Temporal timer probe: {probe['timers']} durable timers of {probe['requested_ms']:.0f} ms took "
                f"{probe['observed_ms_per_timer']:.0f} ms each (a regular activity's retry backoff waits on such a timer)"]  # fmt: skip
    if results.get("memory_mb"):
        out += ["", "peak memory (VmHWM): " + ", ".join(f"{k} {v} MiB" for k, v in results["memory_mb"].items())]
    for p in results["phases"]:
        if p.get("worker_peak_rss_mib"):
            out.append(f"peak memory (VmHWM), {p['system']} with 2 worker processes per queue: "
                       + ", ".join(f"{k} {v} MiB" for k, v in p["worker_peak_rss_mib"].items()))  # fmt: skip
    return out


def _scale_out(ratios: dict[str, Any]) -> list[str]:
    found_ratios = []
    for key, value in ratios.items():
        found = re.fullmatch(r"throughput_c(\d+)_(floor_x2_over_x1|ours_x2_over_x1|x2)_workers(_ours_over_floor)?", key)
        if found:
            what = {"floor_x2_over_x1": "floor x2/x1 workers", "ours_x2_over_x1": "ours x2/x1 workers",
                    "x2": "ours/floor with x2 workers"}[found.group(2)]  # fmt: skip
            found_ratios.append((found.group(1), f"{what} {value}"))
    if not found_ratios:
        return []
    return [f"scale-out, throughput at c{found_ratios[0][0]}: " + ", ".join(text for _, text in found_ratios)]


def _backlog(backlog: list[dict[str, Any]]) -> list[str]:
    out = ["", "approval backlog: orders started and left waiting for approval, then cancelled through the API "
           "(worker = runworker, both queues; RSS = VmRSS, peak = VmHWM):"]  # fmt: skip
    out.append(table(
        [[b["orders"], b["max_cached_workflows"], b["errors"], f"{b['post_s']:.1f} s", f"{b['start_s']:.1f} s",
          f"{b['rss_before']['rss']} MiB", f"{b['rss_with_backlog']['rss']} MiB", f"{b['rss_after']['rss']} MiB",
          f"{b['rss_with_backlog']['hwm']} MiB", f"{b['rss_after']['hwm']} MiB", f"{b['cancel_s']:.1f} s",
          " ".join(f"{k} {v}" for k, v in sorted(b["end_states"].items()))]
         for b in backlog],
        ["backlog", "cache", "err", "POSTs", "to all awaiting", "RSS before", "RSS with backlog", "RSS after",
         "peak with backlog", "peak after", "cancel to all ended", "end states"],
    ))  # fmt: skip
    return out


def _scale(scale: dict[str, Any]) -> list[str]:
    out = ["", f"scale: {scale['rows']['orders']:,} orders, {scale['rows']['events']:,} events, "
           f"{scale['rows']['payments']:,} payments, {scale['awaiting_approval']:,} awaiting approval; "
           f"database {scale['database_size']}; filled in {scale['fill_s']} s"]  # fmt: skip
    out.append(table(
        [[p["label"], fmt_ms(p["p50_ms"]), fmt_ms(p["p95_ms"]), fmt_ms(p["max_ms"]),
          fmt_ms(p.get("in_process_ms_median")), p.get("sql_queries", "-"), fmt_ms(p.get("sql_ms")),
          fmt_ms(p.get("slowest_sql_ms")), f"{p['bytes']:,}"] for p in scale["pages"]],
        ["page (HTTP wall time on loopback, 20 requests)", "p50", "p95", "max", "in-process", "SQL queries", "SQL time",
         "slowest SQL", "bytes"],
    ))  # fmt: skip
    out.append("slowest query per page (in-process run):")
    out += [
        f"  {p['key']}: {fmt_ms(p.get('slowest_sql_ms'))}  {p.get('slowest_sql', '')[:160]}" for p in scale["pages"]
    ]
    return out
