"""Encrypted payloads end to end: what Temporal keeps of an order is unreadable without the key.

The orders run through the JSON API and real workers on the dev server, with the app's client
(lifecycle.connect) encrypting. Their histories, read with a plain `Client.connect` (no codec),
hold no address, payment id or failure text; read with the app's client they replay. With
RECORD_HISTORIES=1 they are kept under histories/encrypted/ (encrypted with TEST_KEY), and
replayed below like the plain ones in test_replay.py.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client as TemporalClient
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from lifecycle.codec import ENCODING, parse_key
from lifecycle.connect import app_data_converter, connect
from lifecycle.worker import QUEUES, WorkerConfig
from lifecycle.workflows import OrderWorkflow, ShippingWorkflow
from orders.tests.factories import new_order_id, order_body, wait_for_state

# A key for the tests only: the recorded histories under histories/encrypted/ were written with it.
TEST_KEY = "Ox3r2FIwmePz95W9pCOUjLEYAsyRCpIkovtMuNvDBNw="
ENCRYPTED_HISTORIES = Path(__file__).parent / "histories" / "encrypted"
SECRET_STREET = "77 Hidden Passage"


class AppClientHarness:
    """The session's Temporal harness, with the app's client (codec and all) for the workers."""

    def __init__(self, temporal: Any, client: TemporalClient) -> None:
        self.client = client
        self.run = temporal.run
        self.address = temporal.address


@pytest.fixture
def encrypted(settings: Any, queues: WorkerConfig, temporal: Any) -> Iterator[AppClientHarness]:
    """PAYLOAD_ENCRYPTION_KEY set, and both workers on a client from the app's factory."""
    from conftest import RunningWorkers

    settings.PAYLOAD_ENCRYPTION_KEY = parse_key(TEST_KEY, "TEST_KEY")
    settings.PAYLOAD_DECRYPTION_KEYS = []
    harness = AppClientHarness(temporal, temporal.run(connect()))
    with RunningWorkers(harness, queues, QUEUES):  # type: ignore[arg-type]
        yield harness


def act(api: Client, order_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(f"/orders/{order_id}/signals/{action}", body or {}, content_type="application/json")


def messages(message: Message, kind: type[Message]) -> Iterator[Any]:
    """Every `kind` message anywhere inside `message`."""
    if isinstance(message, kind):
        yield message
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = [v for v in value.values() if isinstance(v, Message)]
        elif isinstance(value, Message):
            values = [value]
        else:
            values = list(value)  # a repeated field
        for item in values:
            yield from messages(item, kind)


def plain_history(address: str, workflow_id: str) -> WorkflowHistory:
    async def fetch() -> WorkflowHistory:
        client = await TemporalClient.connect(address)  # no codec: what anyone with Temporal access sees
        return await client.get_workflow_handle(workflow_id).fetch_history()

    return asyncio.run(fetch())


def assert_unreadable(history: WorkflowHistory, *secrets: str) -> int:
    """No secret anywhere in the raw history; every payload encrypted; failures carry no text.
    Returns how many payloads the history has."""
    raw = b"".join(event.SerializeToString() for event in history.events)
    for secret in secrets:
        assert secret.encode() not in raw, f"{secret!r} is readable in {history.workflow_id}'s history"
    payloads = [p for event in history.events for p in messages(event, Payload)]
    # A local activity's marker keeps the SDK's own bookkeeping (sequence, attempt, times) in
    # plain JSON next to its encrypted result.
    bookkeeping = [
        p.SerializeToString()
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
        for p in event.marker_recorded_event_attributes.details["data"].payloads
    ]
    # Search attributes (OrderState) stay plain: the server indexes them; they hold a state name only.
    indexed = [
        p.SerializeToString()
        for event in history.events
        for attributes in messages(event, SearchAttributes)
        for p in attributes.indexed_fields.values()
    ]
    ours = [
        p
        for p in payloads
        if p.metadata.get("encoding") != ENCODING and p.SerializeToString() not in bookkeeping + indexed
    ]
    assert not ours, f"unencrypted payloads: {[p.metadata.get('encoding') for p in ours]}"
    for failure in (f for event in history.events for f in messages(event, Failure)):
        assert failure.message in ("", "Encoded failure") and not failure.stack_trace
    return len(payloads)


def test_an_orders_history_holds_no_address_payment_id_or_failure_text(
    api: Client, encrypted: AppClientHarness
) -> None:
    """An address change, an approval and a carrier refusal (zip 00000: a failure whose details
    Temporal keeps) leave only `binary/encrypted` payloads behind; the app still reads all."""
    body = order_body(zip_code="00000")
    order_id = new_order_id()
    assert api.post(f"/orders/{order_id}/start", body, content_type="application/json").status_code == 201
    wait_for_state(order_id, "AWAITING_APPROVAL")
    moved = {"street": SECRET_STREET, "city": "Boston", "zip": "00000"}
    assert act(api, order_id, "update-address", {"address": moved}).status_code == 202
    assert act(api, order_id, "approve").status_code == 202
    wait_for_state(order_id, "FAILED")
    assert api.get(f"/orders/{order_id}/status").json()["address"]["street"] == SECRET_STREET

    secrets = (SECRET_STREET, "123 Main St", body["payment_id"], "00000")
    for workflow_id in (order_id, f"shipping-{order_id}"):
        assert assert_unreadable(plain_history(encrypted.address, workflow_id), *secrets) > 5

    # The app's own client reads the same histories, and they replay.
    replay_and_record(encrypted, order_id, "dispatch_failure")


def replay_and_record(harness: AppClientHarness, order_id: str, name: str) -> None:
    """Replay the order's and its shipping child's histories as the app's client reads them; with
    RECORD_HISTORIES=1, keep them under histories/encrypted/."""
    for workflow_id, suffix in ((order_id, ""), (f"shipping-{order_id}", "_shipping")):
        history = harness.run(harness.client.get_workflow_handle(workflow_id).fetch_history())
        harness.run(replayer().replay_workflow(history))
        if os.environ.get("RECORD_HISTORIES"):
            ENCRYPTED_HISTORIES.mkdir(exist_ok=True)
            (ENCRYPTED_HISTORIES / f"{name}{suffix}.json").write_text(history.to_json())


def test_the_app_client_decodes_results_and_failures_it_encrypted(api: Client, encrypted: AppClientHarness) -> None:
    order_id = new_order_id()
    assert api.post(f"/orders/{order_id}/start", order_body(), content_type="application/json").status_code == 201
    wait_for_state(order_id, "AWAITING_APPROVAL")
    assert act(api, order_id, "approve").status_code == 202
    assert encrypted.run(encrypted.client.get_workflow_handle(order_id).result()) == "COMPLETED"
    # A refusal travels as an encrypted failure; the API still words it.
    refused = act(api, order_id, "cancel")
    assert refused.status_code == 409
    assert "ended" in refused.json()["detail"]
    replay_and_record(encrypted, order_id, "happy_path")


def replayer() -> Replayer:
    return Replayer(workflows=[OrderWorkflow, ShippingWorkflow], data_converter=app_data_converter())


@pytest.mark.parametrize(
    "path", sorted(ENCRYPTED_HISTORIES.glob("*.json")), ids=lambda path: path.stem
)  # fmt: skip
def test_recorded_encrypted_history_replays_with_the_key(path: Path, settings: Any) -> None:
    settings.PAYLOAD_ENCRYPTION_KEY = parse_key(TEST_KEY, "TEST_KEY")
    settings.PAYLOAD_DECRYPTION_KEYS = []
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    assert assert_unreadable(history, "123 Main St", SECRET_STREET) > 0
    asyncio.run(replayer().replay_workflow(history))
