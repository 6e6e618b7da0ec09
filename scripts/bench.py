"""Benchmark of the order lifecycle against a bare-Temporal floor, on a stack of its own.

    .venv/bin/python scripts/bench.py [--orders 200] [--concurrency 1,20] [--skip-flaky]
                                      [--completion result|poll] [--skip-scale-out] [--backlog 1000]
                                      [--scale] [--quick] [--json .data/bench-results.json]
                                      [--encrypt] [--trace]
    make bench BENCH_ARGS="--quick"

One run starts everything it measures on free ports and unique names, and stops it again (also
on Ctrl-C or SIGTERM): a Temporal dev server (its SQLite file on tmpfs, /dev/shm, unless
--temporal-db disk), a fresh PostgreSQL database `bench_<random>` on 127.0.0.1:5432 (user
postgres) that is dropped at the end, `manage.py migrate`, one `manage.py runworker` and the web
app under uvicorn. Then, on that same Temporal server and database:

1. the FLOOR: bare workflows of the issue's shape (6 no-op activities, a child with 2 on a second
   queue, approval signalled right after start; scripts/benchlib/floor.py, hosted by a worker
   process of its own configured like runworker), driven with the Temporal client: start, signal
   "approve" at once, await the result;
2. OUR ORDERS through the JSON API: POST /orders/{id}/start, POST .../signals/approve at once,
   then (--completion result, the default) await the order workflow's result with the Temporal
   client, or (--completion poll) GET /orders/{id}/status every 20 ms (concurrency 1) or 50 ms
   (higher) until COMPLETED; after each phase one SQL query checks that every order is COMPLETED
   in the database;
3. SCALE-OUT (full runs, or --scale-out): both systems again at the highest concurrency with two
   worker processes per task queue (two floor workers; two `runworker --queue order` and two
   `runworker --queue shipping`), with each worker process's peak memory;
4. APPROVAL BACKLOG (--backlog N, 1000 in full runs): N orders started and left waiting for
   approval, the worker's memory before, with the backlog and after cancelling them, once per
   WORKER_MAX_CACHED_WORKFLOWS in --backlog-cache (1000 and 100);
5. the same as 2 with FLAKY_CALL_FAILURE_RATE=0.67 (runworker restarted with it; web unchanged);
6. ratios ours/floor, CPU per order of each process (from /proc; with --encrypt or --trace, the
   cost of encrypted payloads or of tracing shows in ours' web and worker CPU per order), PostgreSQL sessions and
   transactions per order (pg_stat_database), peak memory (VmHWM), and a probe of how late the
   server's durable timers fire (activity retry backoffs wait on them);
7. with --scale: 100,000 orders and ~1,000,000 events bulk-inserted and vacuumed, then the review
   queue, an order page and the admin order list timed over HTTP, plus SQL queries per page
   (in-process).

Latency is "request/start sent -> completion observed" on the client; throughput is orders
completed / wall time of the phase. The targets printed with the figures are informational: the
script exits 0 when the run worked, whatever the figures, 1 when something broke, 130 on Ctrl-C.
This is a benchmark, not a test; it shares the machine with whatever else runs, and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `scripts.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.benchlib.phases import Bench
from scripts.benchlib.report import machine_facts, new_results, render
from scripts.benchlib.stack import FLAKY_RATE, BenchStack, say
from scripts.benchlib.targets import evaluate
from scripts.stack import LAYER_TEMPORAL, REPO_ROOT, Shutdown, StackError

DEFAULT_JSON = REPO_ROOT / ".data" / "bench-results.json"
BACKLOG_ORDERS = 1000  # --backlog in a full run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--orders", type=int, default=None, help="orders (and floor workflows) per phase [200; 20 with --quick]"
    )
    parser.add_argument("--concurrency", default=None, help="comma-separated concurrencies [1,20; 1,5 with --quick]")
    parser.add_argument(
        "--flaky-concurrency", default=None, help="concurrencies of the flaky phase [same as --concurrency]"
    )
    parser.add_argument(
        "--skip-flaky", action="store_true", help=f"skip the FLAKY_CALL_FAILURE_RATE={FLAKY_RATE} phase"
    )
    parser.add_argument(
        "--scale", action="store_true", help="also fill 100,000 orders / ~1,000,000 events and time the pages"
    )
    parser.add_argument("--scale-only", action="store_true", help="only the scale phase (implies --scale)")
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke test: 20 orders, concurrency 1 and 5; no scale, scale-out or backlog",
    )  # fmt: skip
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured orders before each system's first phase [5]")
    parser.add_argument(
        "--completion", choices=("result", "poll"), default="result",
        help="how the driver learns that an order completed: await the workflow's result with the Temporal client "
        "(like the floor's driver) or poll GET /orders/{id}/status through the web app [result]",
    )  # fmt: skip
    parser.add_argument("--poll-ms", type=float, default=None,
                        help="with --completion poll: status poll interval [20 at concurrency 1, else 50]")  # fmt: skip
    parser.add_argument("--floor-activities", type=int, default=6,
                        help="no-op activities in the floor's parent [6, the issue's shape; ours: 3 in the parent, 2 in the child]")  # fmt: skip
    parser.add_argument(
        "--scale-out", action="store_true",
        help="two worker processes per task queue, at the highest concurrency [on in full runs]",
    )  # fmt: skip
    parser.add_argument("--skip-scale-out", action="store_true", help="no scale-out phase")
    parser.add_argument("--rounds", type=int, default=None,
                        help="paired rounds at the highest concurrency: the floor and ours alternate, and the "
                        "throughput ratio is the median of the rounds' ratios (steadier on a machine whose "
                        "speed drifts) [3; 1 with --quick]")  # fmt: skip
    parser.add_argument("--backlog", type=int, default=None,
                        help="orders left waiting for approval to measure the worker's memory; 0: none "
                        f"[{BACKLOG_ORDERS}; 0 with --quick]")  # fmt: skip
    parser.add_argument("--backlog-cache", default="1000,100",
                        help="WORKER_MAX_CACHED_WORKFLOWS of the worker, one backlog run each [1000,100]")  # fmt: skip
    parser.add_argument(
        "--json", default=str(DEFAULT_JSON), help=f"where to write the results [{DEFAULT_JSON.relative_to(REPO_ROOT)}]"
    )
    parser.add_argument(
        "--temporal-db", choices=("tmpfs", "disk"), default="tmpfs",
        help="where the dev server's SQLite file lives: /dev/shm (no fsync cost) or the temp dir on disk [tmpfs]",
    )  # fmt: skip
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the processes' logs (printed path) after the run"
    )
    parser.add_argument(
        "--encrypt", action="store_true",
        help="our stack with PAYLOAD_ENCRYPTION_KEY set (every payload AES-GCM encrypted); the floor stays plain",
    )  # fmt: skip
    parser.add_argument(
        "--trace", action="store_true",
        help="our stack with OTEL_EXPORTER_OTLP_ENDPOINT set to a local port nothing listens on (tracing on, "
        "exporting to nowhere)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.scale_only:
        args.scale = True
    if args.quick and args.scale and not args.scale_only:
        parser.error("--quick runs no scale phase; use --scale-only for that alone")
    args.orders = args.orders or (20 if args.quick else 200)
    args.concurrency = [int(c) for c in (args.concurrency or ("1,5" if args.quick else "1,20")).split(",") if c.strip()]
    args.flaky_concurrency = (
        [int(c) for c in args.flaky_concurrency.split(",") if c.strip()] if args.flaky_concurrency
        else sorted(args.concurrency, reverse=True)
    )  # fmt: skip
    if args.orders < 1 or not args.concurrency or min(args.concurrency + args.flaky_concurrency) < 1:
        parser.error("--orders and every concurrency must be at least 1")
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick or args.scale_only else 3)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.scale_out and args.skip_scale_out:
        parser.error("--scale-out and --skip-scale-out contradict each other")
    args.scale_out = not args.scale_only and (args.scale_out or not (args.quick or args.skip_scale_out))
    if args.backlog is None:
        args.backlog = 0 if args.quick or args.scale_only else BACKLOG_ORDERS
    args.backlog_cache = [int(c) for c in args.backlog_cache.split(",") if c.strip()]
    if args.backlog < 0 or (args.backlog and (not args.backlog_cache or min(args.backlog_cache) < 1)):
        parser.error("--backlog must be at least 0 and every --backlog-cache at least 1")
    if args.scale_only:
        args.backlog = 0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    stack = BenchStack(args.temporal_db, encrypt=args.encrypt, trace=args.trace)
    stack.processes.handle_stop_signals()
    results = new_results(args, stack)
    bench = Bench(args, stack, results)
    exit_code = 0
    try:
        bench.run()
        exit_code = judge_errors(results)
    except Shutdown:
        say("interrupted; stopping everything")
        results["error"] = "interrupted"
        exit_code = 130
    except StackError as err:  # BenchError too
        results["error"] = str(err).splitlines()[0]
        say(f"error: {err}")
        exit_code = 1
    except Exception as err:  # a bug or an unexpected failure: still clean up and say what happened
        traceback.print_exc()
        results["error"] = f"{type(err).__name__}: {err}"
        exit_code = 1
    finally:
        exit_code = clean_up(stack, bench, exit_code, keep_logs=args.keep_logs)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results.setdefault("machine", machine_facts(None))
    results["ratios"], results["targets"] = evaluate(results, args.concurrency)
    print(render(results), flush=True)
    out_path = Path(args.json)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    say(f"results written to {out_path}")
    return exit_code


def judge_errors(results: dict[str, Any]) -> int:
    """1 (and why, in the results) when an order, a workflow or a backlog order failed."""
    exit_code = 0
    for b in results.get("backlog", []):
        if b["errors"]:
            exit_code = 1
            results["error"] = "some backlog orders could not be started or cancelled (see the JSON)"
    if any(p["errors"] for p in results["phases"]):
        exit_code = 1
        results["error"] = "some orders or workflows failed (see error_samples in the JSON)"
    return exit_code


def clean_up(stack: BenchStack, bench: Bench, exit_code: int, *, keep_logs: bool) -> int:
    """Stop everything and drop the database; the logs stay when asked for or when the run broke."""
    stack.processes.begin_stopping()  # a second Ctrl-C now only cuts the grace periods short
    broken = exit_code not in (0, 130)
    try:
        if broken:
            for proc in stack.processes.processes:
                if proc.alive() and proc.layer != LAYER_TEMPORAL and proc.tail():
                    say(f"last lines of {proc.name}'s log:\n{proc.tail()}")
        bench.close()
        stack.tear_down(keep_logs=keep_logs or broken)
    except Exception as err:
        say(f"cleanup problem: {err}")
        exit_code = exit_code or 1
    finally:
        stack.processes.restore_signals()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
