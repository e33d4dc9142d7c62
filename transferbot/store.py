"""The database: SQLite in WAL mode, short immediate write transactions.

``write()`` begins with ``BEGIN IMMEDIATE`` so that the daemon and the CLI
can write at once without deadlocking on a read-to-write upgrade; the busy
timeout makes the loser wait instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel

from transferbot import models  # noqa: F401  (registers the tables)
from transferbot.config import DatabaseConfig

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The database cannot be opened; the text says which and why."""


def database_path(url: sa.URL) -> str:
    """The file a SQLite URL names, also in its URI form (sqlite:///file:PATH?mode=ro&uri=true)."""
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return database


class Store:
    """One SQLite database, opened with the pragmas transferbot relies on."""

    def __init__(self, config: DatabaseConfig) -> None:
        try:
            url = make_url(config.url)
        except sa.exc.ArgumentError:
            raise StoreError(f"database.url: {config.url!r} is not a database URL "
                             "(use sqlite:///PATH, e.g. sqlite:///transferbot.db)") from None
        if url.get_backend_name() != "sqlite":
            raise StoreError(f"database.url: only sqlite URLs are supported, not {url.get_backend_name()!r}")
        if url.database and url.database != ":memory:":
            parent = Path(database_path(url)).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(f"database.url: folder {parent} does not exist")
        self.url = url
        timeout = config.busy_timeout_ms / 1000
        self.engine = sa.create_engine(
            url, connect_args={"timeout": timeout, "check_same_thread": False}, pool_pre_ping=False
        )
        synchronous = config.synchronous.upper()
        busy = config.busy_timeout_ms

        @sa.event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={busy}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(self.engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            mode = conn.get_execution_options().get("transferbot_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        self._writer = self.engine.execution_options(transferbot_begin="IMMEDIATE")
        # A second engine whose writes never wait for the lock: for work that must not block the
        # event loop, which then falls back to waiting on a thread.
        self._nowait = sa.create_engine(url, connect_args={"timeout": 0, "check_same_thread": False},
                                        pool_size=1, max_overflow=0)

        @sa.event.listens_for(self._nowait, "connect")
        def _on_connect_nowait(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA busy_timeout=0")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(self._nowait, "begin")
        def _on_begin_nowait(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def create_schema(self) -> None:
        try:
            SQLModel.metadata.create_all(self.engine)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot open database {self.url.database}: {exc.orig}") from None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on error."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def begin_nowait(self) -> Session:
        """A write transaction begun now, or OperationalError at once if another writer holds
        the lock. The caller commits (perhaps on another thread) and closes it."""
        session = Session(self._nowait, expire_on_commit=False)
        try:
            session.begin()
            session.connection()  # BEGIN IMMEDIATE: take the lock now or fail
        except BaseException:
            session.close()
            raise
        return session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A consistent read snapshot."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self._nowait.dispose()


def open_store(config: DatabaseConfig) -> Store:
    store = Store(config)
    store.create_schema()
    return store
