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


def make_engine(url: str | None = None, *, read_only: bool = False) -> Engine:
    """An engine for `url` (default: `default_url()`); a clear ServiceError for an unusable URL.

    SQLite engines start every transaction with `BEGIN IMMEDIATE`, except `read_only` ones
    (plain deferred `BEGIN`: readers do not queue behind writers in WAL mode).
    """
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
        _sqlite_transactions(engine, "BEGIN" if read_only else "BEGIN IMMEDIATE")
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_size=16, max_overflow=16, pool_pre_ping=True)
    raise ServiceError(f"unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL")


def _sqlite_transactions(engine: Engine, begin: str) -> None:
    """WAL, foreign keys, and `begin` (`BEGIN IMMEDIATE`: a transaction takes the write lock when it starts)."""

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
        connection.exec_driver_sql(begin)


class Store:
    """The database: `transaction()` is one atomic unit of work, `reading()` a consistent read."""

    def __init__(self, engine: Engine, read_engine: Engine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None) -> Store:
        engine = make_engine(url)
        reader = make_engine(url, read_only=True) if engine.dialect.name == "sqlite" else None
        return cls(engine, reader)

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or rolls back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only (on SQLite it does not take the write lock)."""
        with self._read_sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
