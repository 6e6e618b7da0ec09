"""The one way to bring the stack up: `make run`, the benchmark, the chaos run and the tests use it.

- ports.py: free ports on 127.0.0.1, whether one is open;
- processes.py: a Supervisor that starts children in sessions of their own with a log, stops them
  in layers (SIGTERM, a grace period, SIGKILL) on a stop signal, and has the kernel kill them
  when it dies without stopping them;
- environment.py: the environment of the app's processes, from one allow-list;
- temporal.py: the Temporal dev server;
- database.py: a fresh PostgreSQL database created and dropped, or a SQLite file;
- app.py: a Stack (a Supervisor with the app's settings) that runs manage.py commands,
  `runworker` and the web app (uvicorn), and waits until they are ready.
"""

from scripts.stack.app import Stack, uvicorn_answers, wait_for_web, wait_for_worker, web_health
from scripts.stack.database import FreshDatabase, postgres_connect, postgres_url, sqlite_url
from scripts.stack.environment import app_environment, base_environment, exported_settings
from scripts.stack.ports import HOST, free_port, port_open
from scripts.stack.processes import (
    LAYER_TEMPORAL,
    LAYER_WEB,
    LAYER_WORKER,
    REPO_ROOT,
    Process,
    Shutdown,
    StackError,
    Supervisor,
    describe_exit,
    wait_for,
)
from scripts.stack.temporal import TemporalServer, register_search_attributes, temporal_cli_version

__all__ = [
    "HOST",
    "LAYER_TEMPORAL",
    "LAYER_WEB",
    "LAYER_WORKER",
    "REPO_ROOT",
    "FreshDatabase",
    "Process",
    "Shutdown",
    "Stack",
    "StackError",
    "Supervisor",
    "TemporalServer",
    "app_environment",
    "base_environment",
    "describe_exit",
    "exported_settings",
    "free_port",
    "port_open",
    "postgres_connect",
    "postgres_url",
    "register_search_attributes",
    "sqlite_url",
    "temporal_cli_version",
    "uvicorn_answers",
    "wait_for",
    "wait_for_web",
    "wait_for_worker",
    "web_health",
]
