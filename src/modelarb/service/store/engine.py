"""One engine and session factory for the broker's database: SQLite embedded by default, PostgreSQL by URL.

SQLite runs in WAL mode and every transaction starts with `BEGIN IMMEDIATE`, so concurrent
writers queue on the database lock instead of failing half-way; PostgreSQL transactions
use row locks (`FOR UPDATE`, `SKIP LOCKED` when claiming work).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from platformdirs import user_data_path
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from modelarb.errors import ServiceError

SQLITE_BUSY_TIMEOUT_S = 60


def default_url() -> str:
    """`$MODELARB_DB`, else an SQLite file in the user data directory."""
    override = os.environ.get("MODELARB_DB")
    if override:
        return override
    folder = user_data_path("modelarb")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'broker.sqlite3'}"


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` for psycopg 3, and a bare file path for SQLite."""
    if "://" not in url:
        return f"sqlite:///{Path(url).resolve()}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (default: `default_url()`); a clear ServiceError for an unusable URL."""
    text = normalise_url(url or default_url())
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise ServiceError(f"not a database URL: {url!r}; use sqlite:///PATH or postgresql://USER@HOST/DB") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            pool_size=16,
            max_overflow=16,
        )
        _sqlite_immediate_transactions(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_size=16, max_overflow=16, pool_pre_ping=True)
    raise ServiceError(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")


def _sqlite_immediate_transactions(engine: Engine) -> None:
    """WAL, foreign keys, and `BEGIN IMMEDIATE`: a transaction takes the write lock when it starts."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class Store:
    """The database: an engine and its session factory; `transaction()` is one atomic unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        return cls(make_engine(url))

    @property
    def postgresql(self) -> bool:
        return is_postgresql(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or rolls back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
