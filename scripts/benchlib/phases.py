"""One benchmark run, phase by phase (see scripts/bench.py's docstring for what each measures)."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from scripts.benchlib.clients import ResultWaiter, TemporalSide
from scripts.benchlib.driver import END_STATES, OrderDriver, check_in_database, wait_for_states
from scripts.benchlib.measure import CpuMeter, peak_rss_kb, phase_record, rss_mib
from scripts.benchlib.report import describe_phase, machine_facts
from scripts.benchlib.scale import run_scale
from scripts.benchlib.stack import FLAKY_RATE, BenchError, BenchStack, say
from scripts.stack import Process

BACKLOG_CONCURRENCY = 20  # driver threads that start (and cancel) the backlog


class Bench:
    """The run: the stack's parts it started, the clients it drives them with, the results so far."""

    def __init__(self, args: argparse.Namespace, stack: BenchStack, results: dict[str, Any]) -> None:
        self.args = args
        self.stack = stack
        self.results = results
        self.stop = threading.Event()  # tells the driver's threads to give up
        self.cmax = max(args.concurrency)
        self.floor_spec = {"parent_activities": args.floor_activities}
        self.token = ""  # the API token of the driver's user, made by set_up
        self.temporal_side: TemporalSide | None = None
        self.waiter: ResultWaiter | None = None
        self.temporal: Process | None = None
        self.worker: Process | None = None  # the one runworker for both queues, while it runs
        self.web: Process | None = None
        self.worker_peaks: list[int] = []

    @property
    def run_id(self) -> str:
        return self.stack.run_id

    def run(self) -> None:
        self.set_up()
        if not self.args.scale_only:
            self.floor_phases()
        self.start_ours()
        if not self.args.scale_only:
            self.ours_phases()
        if self.args.scale:
            self.results["scale"] = run_scale(self.stack)
        self.record_memory()

    # --- the stack ----------------------------------------------------------------------------
    def set_up(self) -> None:
        stack = self.stack
        say(f"run {self.run_id}: work dir {stack.workdir}")
        pg_version = stack.database.create()
        self.results["machine"] = machine_facts(pg_version)
        say(
            f"database {stack.database.name} created; starting the Temporal dev server on port {stack.temporal.port} ..."
        )
        self.temporal = stack.start_temporal()
        self.temporal_side = TemporalSide(stack.temporal.address, stack.floor_order_queue, stack.floor_shipping_queue)
        self.temporal_side.connect()
        if self.args.completion == "result" and not self.args.scale_only:
            self.waiter = ResultWaiter(stack.temporal.address, payload_key=stack.payload_key)
            self.waiter.start()
        say("migrating ...")
        stack.processes.manage("migrate", "--noinput")
        self.token = (
            stack.processes.manage("create_api_token", "bench", "--create-user").stdout.strip().splitlines()[-1]
        )

    def start_ours(self) -> None:
        self.worker = self.stack.start_worker()
        self.web = self.stack.start_web()
        self.side.wait_for_pollers(self.worker, self.stack.worker_queues())
        self.driver = OrderDriver(self.stack.web_port, self.token, self.stop, self.waiter)

    @property
    def side(self) -> TemporalSide:
        assert self.temporal_side is not None
        return self.temporal_side

    def start_floor_worker(self, name: str = "floor worker") -> Process:
        floor = self.stack.start_floor_worker(name)
        self.side.wait_for_pollers(floor, [self.stack.floor_order_queue, self.stack.floor_shipping_queue])
        return floor

    def retire_worker(self) -> None:
        """Stop the one both-queues worker (if it runs), keeping its peak memory."""
        if self.worker is not None:
            self.worker_peaks.append(self.stack.stop(self.worker))
            self.worker = None

    def close(self) -> None:
        self.stop.set()
        if self.waiter is not None:
            self.waiter.close()
        if self.temporal_side is not None:
            self.temporal_side.close()

    # --- 1 and 3a: the floor ------------------------------------------------------------------
    def floor_phases(self) -> None:
        floor = self.start_floor_worker()
        if self.args.warmup:
            self.side.floor_batch(f"floor-{self.run_id}-warmup", self.args.warmup, 1, self.floor_spec)
        for c in self.args.concurrency:
            self.floor_phase(c, [floor])
        probe = self.side.timer_probe(self.run_id)
        self.results["temporal_timer_probe"] = probe
        say(f"Temporal timer probe: a {probe['requested_ms']:.0f} ms durable timer took {probe['observed_ms_per_timer']:.0f} ms "
            "(activity retry backoffs wait on such timers)")  # fmt: skip
        self.results.setdefault("memory_mb", {})["floor worker"] = round(self.stack.stop(floor) / 1024, 1)
        if self.args.scale_out:
            # 3a. Scale-out of the floor: two worker processes, each on both queues.
            floors = [self.start_floor_worker(f"floor worker #{i}") for i in (1, 2)]
            if self.args.warmup:
                warm_c = min(2, self.args.warmup)
                self.side.floor_batch(f"floor-{self.run_id}-x2-warmup", self.args.warmup, warm_c, self.floor_spec)
            rec = self.floor_phase(self.cmax, floors, "-x2")
            rec["worker_peak_rss_mib"] = {proc.name: round(self.stack.stop(proc) / 1024, 1) for proc in floors}

    def floor_phase(self, c: int, workers: list[Process], tag: str = "") -> dict[str, Any]:
        many = len(workers) > 1
        say(f"floor: {self.args.orders} workflows at concurrency {c}{' with 2 worker processes' if many else ''} ...")
        procs: dict[str, Process | None] = {("floor worker" if not many else w.name): w for w in workers}
        procs["temporal"] = self.temporal
        with CpuMeter(procs) as meter:
            batch = self.side.floor_batch(f"floor-{self.run_id}-c{c}{tag}", self.args.orders, c, self.floor_spec)
        rec = phase_record("floor", "none", c, self.args.orders, batch, meter, workers=len(workers))
        self.results["phases"].append(rec)
        say(describe_phase(rec))
        return rec

    # --- 2, 3b, 4, 5: our orders --------------------------------------------------------------
    def ours_phases(self) -> None:
        self.warm_up("none")
        for c in self.args.concurrency:
            self.ours_phase("none", c, [self.worker_process])
        if self.args.rounds > 1:
            self.paired_rounds()
        if self.args.scale_out:
            self.ours_scale_out()
        # 4. The approval backlog, on a fresh worker per cache size.
        for cache in self.args.backlog_cache if self.args.backlog else []:
            self.retire_worker()
            self.results.setdefault("backlog", []).append(self.run_backlog(self.args.backlog, cache))
        if not self.args.skip_flaky:
            self.flaky_phases()

    @property
    def worker_process(self) -> Process:
        assert self.worker is not None
        return self.worker

    def poll_for(self, c: int) -> float:
        return (self.args.poll_ms if self.args.poll_ms else (20.0 if c == 1 else 50.0)) / 1000.0

    def warm_up(self, faults: str, tag: str = "", concurrency: int = 1) -> None:
        if self.args.warmup:
            prefix = f"ours-{self.run_id}-{faults.split()[0]}{tag}-warmup"
            warm = self.driver.batch(prefix, self.args.warmup, concurrency, self.poll_for(concurrency))
            if warm["errors"]:
                raise BenchError(f"warm-up orders failed: {warm['errors'][:3]}")

    def ours_phase(self, faults: str, c: int, workers: list[Process], tag: str = "") -> dict[str, Any]:
        many = len(workers) > 1
        prefix = f"ours-{self.run_id}-{faults.split()[0]}-c{c}{tag}"
        say(f"ours ({faults}): {self.args.orders} orders at concurrency {c}"
            f"{' with 2 worker processes per queue' if many else ''} ...")  # fmt: skip
        procs: dict[str, Process | None] = {("worker" if not many else w.name): w for w in workers}
        procs.update(web=self.web, temporal=self.temporal)
        with CpuMeter(procs, self.stack.database.name) as meter:
            batch = self.driver.batch(prefix, self.args.orders, c, self.poll_for(c))
        check_in_database(self.stack.database, prefix, batch)  # outside the timed window and the CPU meter
        rec = phase_record("ours", faults, c, self.args.orders, batch, meter, workers=2 if many else 1)
        self.results["phases"].append(rec)
        say(describe_phase(rec))
        for sample in rec["error_samples"]:
            say(f"  error: {sample}")
        return rec

    def paired_rounds(self) -> None:
        """The floor and ours alternate at the highest concurrency, so a drift in the machine's
        speed hits both alike. Round 1 is the phases before."""
        floor = self.start_floor_worker("floor worker (rounds)")
        for n in range(2, self.args.rounds + 1):
            self.floor_phase(self.cmax, [floor], f"-r{n}")["round"] = n
            self.ours_phase("none", self.cmax, [self.worker_process], f"-r{n}")["round"] = n
        self.stack.stop(floor)

    def ours_scale_out(self) -> None:
        """3b. Two runworker processes per queue instead of one for both."""
        self.retire_worker()
        say("scale-out: starting two `runworker --queue order` and two `runworker --queue shipping` ...")
        pairs = [
            (q, self.stack.start_worker(queue=q, name=f"worker {q} #{i}"))
            for q in ("order", "shipping")
            for i in (1, 2)
        ]
        for queue, proc in pairs:
            self.side.wait_for_pollers(proc, self.stack.worker_queues(queue))
        self.warm_up("none", "-x2", min(2, self.args.warmup) or 1)
        rec = self.ours_phase("none", self.cmax, [proc for _, proc in pairs], "-x2")
        rec["worker_peak_rss_mib"] = {proc.name: round(self.stack.stop(proc) / 1024, 1) for _, proc in pairs}

    def flaky_phases(self) -> None:
        """5. The worker restarts with the failure rate; the web app stays."""
        self.retire_worker()
        say(f"restarting runworker with FLAKY_CALL_FAILURE_RATE={FLAKY_RATE} ...")
        self.worker = self.stack.start_worker(flaky_rate=FLAKY_RATE)
        self.side.wait_for_pollers(self.worker, self.stack.worker_queues())
        self.warm_up(f"flaky {FLAKY_RATE}")
        for c in self.args.flaky_concurrency:
            self.ours_phase(f"flaky {FLAKY_RATE}", c, [self.worker])

    def run_backlog(self, n: int, cache: int) -> dict[str, Any]:
        """N orders started and left waiting for approval: the worker's memory before, with them, after."""
        tag = f"backlog{n}-cache{cache}"
        say(f"backlog: runworker with WORKER_MAX_CACHED_WORKFLOWS={cache}; {n} orders will wait for approval ...")
        proc = self.stack.start_worker(cache=cache, name=f"worker (runworker, cache {cache})")
        self.side.wait_for_pollers(proc, self.stack.worker_queues())
        self.warm_up("none", f"-{tag}")
        time.sleep(1.0)
        rss_before = rss_mib(proc.pid)
        prefix = f"ours-{self.run_id}-{tag}"
        ids = [f"{prefix}-{i}" for i in range(n)]
        t0 = time.perf_counter()
        _, start_errors = self.driver.each(ids, BACKLOG_CONCURRENCY, self.driver.start)
        t_posted = time.perf_counter()
        failed = {e.split(": ", 1)[0] for e in start_errors}
        waiting = n - len(failed)
        wait_for_states(self.stack.database, prefix, {"AWAITING_APPROVAL"}, waiting, proc,
                        f"{waiting} backlog orders to await approval")  # fmt: skip
        t_waiting = time.perf_counter()
        say(f"backlog: {waiting} orders awaiting approval after {t_waiting - t0:.1f} s "
            f"(POSTs took {t_posted - t0:.1f} s)")  # fmt: skip
        time.sleep(2.0)  # let the worker settle before reading its memory
        rss_with = rss_mib(proc.pid)
        t1 = time.perf_counter()
        _, cancel_errors = self.driver.each(
            [i for i in ids if i not in failed], BACKLOG_CONCURRENCY, self.driver.cancel
        )
        t_cancelled = time.perf_counter()
        end_states = wait_for_states(self.stack.database, prefix, END_STATES, waiting, proc,
                                     f"{waiting} cancelled backlog orders to end")  # fmt: skip
        t_ended = time.perf_counter()
        time.sleep(2.0)
        rss_after = rss_mib(proc.pid)
        peak_mib = round(self.stack.stop(proc) / 1024, 1)
        errors = start_errors + cancel_errors
        rec = {
            "orders": n, "max_cached_workflows": cache, "concurrency": BACKLOG_CONCURRENCY, "errors": len(errors),
            "error_samples": errors[:5], "post_s": round(t_posted - t0, 2), "start_s": round(t_waiting - t0, 2),
            "cancel_post_s": round(t_cancelled - t1, 2), "cancel_s": round(t_ended - t1, 2),
            "rss_before": rss_before, "rss_with_backlog": rss_with, "rss_after": rss_after,
            "worker_peak_mib": peak_mib, "end_states": end_states,
        }  # fmt: skip
        say(
            f"backlog: worker RSS {rss_before['rss']} MiB before, {rss_with['rss']} MiB with {waiting} "
            f"waiting, {rss_after['rss']} MiB after they ended ({end_states}); peak {peak_mib} MiB"
        )
        for sample in rec["error_samples"]:
            say(f"  error: {sample}")
        return rec

    # --- 6: memory ----------------------------------------------------------------------------
    def record_memory(self) -> None:
        assert self.web is not None and self.temporal is not None
        if self.worker is not None:
            self.worker_peaks.append(peak_rss_kb(self.worker.pid))
        memory = {"web": round(peak_rss_kb(self.web.pid) / 1024, 1),
                  "temporal dev server": round(peak_rss_kb(self.temporal.pid) / 1024, 1)}  # fmt: skip
        if self.worker_peaks:
            memory = {"worker (max over its runs)": round(max(self.worker_peaks) / 1024, 1), **memory}
        self.results.setdefault("memory_mb", {}).update(memory)
