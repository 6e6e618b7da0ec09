"""TCP ports on the loopback interface."""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"

# Ports we hand out come from below the kernel's ephemeral range. A server that asks the kernel
# for "any free port" (the Temporal dev server does, for its HTTP API, metrics and internal
# services) gets one from that range, so it can never take a port we chose for a server that is
# not listening yet (the web app, started after Temporal).
OWN_PORTS_FROM = 20000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port nothing listens on right now, for a server about to start: not one this process has
    handed out before, and outside the range the kernel picks "any free port" from."""
    below = _ephemeral_start()
    if below - OWN_PORTS_FROM >= 1000:
        for _ in range(200):
            port = random.randrange(OWN_PORTS_FROM, below)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:  # an unusual port range: the kernel's choice
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
