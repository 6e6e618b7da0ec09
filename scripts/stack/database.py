"""The app's database: a fresh PostgreSQL database of its own, or the SQLite file `make run` uses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.stack.processes import StackError

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def postgres_url(name: str) -> str:
    return f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def postgres_connect(dbname: str = "postgres", *, timeout: float = 10) -> Any:
    """An autocommit connection as `postgres` (trust authentication on 127.0.0.1:5432)."""
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True, connect_timeout=timeout
    )


@dataclass
class FreshDatabase:
    """A PostgreSQL database that exists for one run: created, then dropped."""

    name: str
    created: bool = field(default=False, init=False)

    @classmethod
    def named(cls, prefix: str) -> FreshDatabase:
        """`<prefix>_<random>`: never one that another run uses."""
        return cls(f"{prefix}_{secrets.token_hex(6)}")

    @property
    def url(self) -> str:
        return postgres_url(self.name)

    def create(self) -> str:
        """Create it; the server's version."""
        import psycopg

        try:
            with postgres_connect(timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
                version = conn.execute("SHOW server_version").fetchone()[0]
        except psycopg.OperationalError as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise StackError(f"PostgreSQL is unreachable at {PG_HOST}:{PG_PORT} as {PG_USER} ({first})") from None
        self.created = True
        return str(version)

    def connect(self) -> Any:
        return postgres_connect(self.name)

    def drop(self) -> None:
        """Drop it, whoever is still connected; nothing if it was never created."""
        if self.created:
            with postgres_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
