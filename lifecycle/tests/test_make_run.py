"""`make run` (scripts/devstack.py) brings the whole system up, an order goes through it, and
Ctrl-C takes it all down again. Real processes: the Temporal dev server, runworker, uvicorn."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orders.tests.factories import free_port, new_order_id, order_body, wait_until

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 120.0


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


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
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DJANGO_SETTINGS_MODULE")}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'orders.sqlite3'}", APPROVAL_TIMEOUT_SECONDS="300")
    log_path = tmp_path / "devstack.log"
    args = ["--web-port", str(web), "--temporal-port", str(temporal), "--temporal-ui-port", str(ui)]
    with log_path.open("w") as log:
        stack = subprocess.Popen(
            [sys.executable, "scripts/devstack.py", *args, "--data-dir", str(tmp_path / "data")],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def up() -> bool:
            assert stack.poll() is None, log_path.read_text()
            return f"http://localhost:{web}" in log_path.read_text() and listening(web)

        wait_until(up, timeout=START_SECONDS, interval=0.5, what="make run to come up")
        banner = log_path.read_text()
        credentials = json.loads((tmp_path / "data" / "dev-credentials.json").read_text())
        assert credentials["api_token"] in banner and "admin" in banner

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

        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=60) == 0, log_path.read_text()
        assert not listening(web) and not listening(temporal), log_path.read_text()
        assert "all stopped" in log_path.read_text()
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
