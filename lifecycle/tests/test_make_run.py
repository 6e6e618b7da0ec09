"""`make run` (scripts/devstack.py) brings the whole system up, an order goes through it, and
Ctrl-C takes it all down again. Real processes: the Temporal dev server, runworker, uvicorn."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from temporalio.client import Client

from orders.tests.factories import new_order_id, order_body, wait_until
from scripts.stack import Supervisor, base_environment, free_port, port_open

pytestmark = pytest.mark.slow

START_SECONDS = 120.0


def call(method: str, url: str, token: str = "", body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_make_run_serves_an_order_end_to_end_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    web, temporal, ui = free_port(), free_port(), free_port()
    # A fresh shell (CI's DATABASE_URL must not reach `make run`) in which the user exported one
    # app setting: make run passes it on and names it.
    env = {**base_environment(), "APPROVAL_TIMEOUT_SECONDS": "240"}
    args = ["--web-port", str(web), "--temporal-port", str(temporal), "--temporal-ui-port", str(ui)]
    supervisor = Supervisor()
    devstack = supervisor.start(
        "make run",
        [sys.executable, "scripts/devstack.py", *args, "--data-dir", str(tmp_path / "data")],
        env=env,
        layer=0,
        log=tmp_path / "devstack.log",
    )
    try:

        def up() -> bool:
            assert devstack.alive(), devstack.output()
            return f"http://localhost:{web}" in devstack.output() and port_open(web)

        wait_until(up, timeout=START_SECONDS, interval=0.5, what="make run to come up")
        banner = devstack.output()
        credentials = json.loads((tmp_path / "data" / "dev-credentials.json").read_text())
        assert credentials["api_token"] in banner and "admin" in banner
        assert (tmp_path / "data" / "orders.sqlite3").exists()
        assert "from your shell, the app also gets: APPROVAL_TIMEOUT_SECONDS=240" in banner

        base = f"http://127.0.0.1:{web}"
        assert call("GET", f"{base}/health")[0] == 200
        order_id = new_order_id()
        token = credentials["api_token"]
        status, body = call("POST", f"{base}/orders/{order_id}/start", token, order_body())
        assert status == 201, body
        status, body = call("POST", f"{base}/orders/{order_id}/signals/approve", token)
        assert status == 202, body
        wait_until(
            lambda: call("GET", f"{base}/orders/{order_id}/status", token)[1]["state"] == "COMPLETED",
            timeout=60,
            interval=0.2,
            what=f"{order_id} to complete",
        )

        assert_payloads_encrypted_and_the_ui_decodes_them(tmp_path / "data", temporal, ui, base, token, order_id)

        devstack.send(signal.SIGINT)
        assert devstack.popen.wait(timeout=60) == 0, devstack.output()
        assert not port_open(web) and not port_open(temporal), devstack.output()
        assert "all stopped" in devstack.output()
    except BaseException:
        print(devstack.output())  # pytest shows it with the failure
        raise
    finally:
        supervisor.kill(devstack)  # its children die with it (PR_SET_PDEATHSIG)


def assert_payloads_encrypted_and_the_ui_decodes_them(
    data: Path, temporal: int, ui: int, base: str, token: str, order_id: str
) -> None:
    """make run made a key (0600), the order's input is encrypted in Temporal, the UI was started
    with the app's codec endpoint, and that endpoint decodes it for the API token."""
    key_file = data / "payload-encryption-key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(base64.b64decode(key_file.read_text().strip())) == 32

    async def first_payload() -> Any:
        client = await Client.connect(f"127.0.0.1:{temporal}")  # no codec
        async for event in client.get_workflow_handle(order_id).fetch_history_events():
            return event.workflow_execution_started_event_attributes.input.payloads[0]

    payload = asyncio.run(first_payload())
    assert payload.metadata["encoding"] == b"binary/encrypted"
    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/api/v1/settings", timeout=10) as response:
        assert json.loads(response.read())["Codec"]["Endpoint"] == f"http://localhost:{base.rsplit(':', 1)[1]}/codec"
    status, decoded = call("POST", f"{base}/codec/decode", token, {"payloads": [json_format.MessageToDict(payload)]})
    assert status == 200, decoded
    assert order_id in base64.b64decode(decoded["payloads"][0]["data"]).decode()
