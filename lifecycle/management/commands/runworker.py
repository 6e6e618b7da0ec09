"""`manage.py runworker`: host the order and shipping task-queue workers (or one of them)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from temporalio.client import Client

from lifecycle import tracing
from lifecycle.connect import connect
from lifecycle.management.base import TemporalCommand
from lifecycle.metrics import MetricsUnavailable, worker_runtime
from lifecycle.worker import QUEUES, WorkerConfig, run_workers


class Command(TemporalCommand):
    help = "Run the Temporal workers of the order lifecycle (both task queues unless --queue is given)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--queue", choices=QUEUES, action="append", help="Only this queue (repeatable).")
        parser.add_argument("--address", default=settings.TEMPORAL_ADDRESS, help="Temporal frontend host:port.")
        parser.add_argument("--namespace", default=settings.TEMPORAL_NAMESPACE)
        parser.add_argument("--threads", type=int, default=settings.WORKER_ACTIVITY_THREADS, help="Activity threads.")
        parser.add_argument(
            "--grace", type=float, default=settings.WORKER_GRACE_SECONDS, help="Seconds to drain on stop."
        )
        parser.add_argument(
            "--connect-timeout",
            type=float,
            default=30.0,
            help="Seconds to keep retrying an unreachable Temporal server.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._check_database()
        tracing.configure("worker")
        queues = tuple(options["queue"] or QUEUES)
        config = WorkerConfig(
            order_task_queue=settings.ORDER_TASK_QUEUE,
            shipping_task_queue=settings.SHIPPING_TASK_QUEUE,
            activity_threads=options["threads"],
            grace_seconds=options["grace"],
            max_cached_workflows=settings.WORKER_MAX_CACHED_WORKFLOWS,
            sandbox=settings.WORKFLOW_SANDBOX,
        )
        try:
            asyncio.run(self._run(options["address"], options["namespace"], options["connect_timeout"], queues, config))
        except KeyboardInterrupt:
            pass
        except MetricsUnavailable as err:
            raise CommandError(f"{err}; check WORKER_METRICS_PORT and WORKER_METRICS_BIND") from None

    async def _run(
        self, address: str, namespace: str, connect_timeout: float, queues: tuple[str, ...], config: WorkerConfig
    ) -> None:
        client = await self._connect(address, namespace, connect_timeout)
        try:
            await run_workers(client, queues, config)
        finally:
            tracing.flush()

    async def _connect(self, address: str, namespace: str, timeout: float) -> Client:
        deadline = time.monotonic() + timeout
        runtime = worker_runtime(settings.WORKER_METRICS_PORT, settings.WORKER_METRICS_BIND)  # serves /metrics
        while True:
            try:
                return await connect(address=address, namespace=namespace, runtime=runtime)
            except (ValueError, OSError) as err:  # an unreadable TLS file or profile
                raise CommandError(f"cannot connect to Temporal: {_first_line(err)}") from None
            except RuntimeError as err:
                if time.monotonic() >= deadline:
                    raise CommandError(
                        f"Temporal is unreachable at {address} ({_first_line(err)}); is the server running?"
                    ) from None
                self.stderr.write(f"runworker: waiting for Temporal at {address} ...")
                await asyncio.sleep(1.0)

    def _check_database(self) -> None:
        connection = connections["default"]
        try:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as err:
            raise CommandError(f"the database is unreachable ({_first_line(err)}); check DATABASE_URL") from None
        if pending:
            raise CommandError(
                f"{len(pending)} database migration(s) are not applied; run `python manage.py migrate` first"
            )
        connection.close()


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
