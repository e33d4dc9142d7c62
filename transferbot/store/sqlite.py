"""SQLite, the embedded default for one daemon: WAL, short immediate write transactions, one writer thread.

``write()`` begins with ``BEGIN IMMEDIATE`` so that the daemon and the CLI can write at once
without deadlocking on a read-to-write upgrade; the busy timeout makes the loser wait instead of
failing. Inside the daemon, writers queue on one thread instead of sleeping in SQLite's busy
handler, urgent ones (the SMTP edge's commits) first, so no write fails with "database is locked"
for a rival of our own. Work well under a millisecond may run on the event loop itself when the
database is free (``inline``): two thread handoffs would cost more than the work.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import logging
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlmodel import Session

from transferbot.config import DatabaseConfig
from transferbot.store.base import Store, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")

SWITCH_INTERVAL = 0.0001  # seconds; CPython's default 0.005 made each writer-thread handoff wait that long


def database_path(url: URL) -> str:
    """The file a SQLite URL names, also in its URI form (sqlite:///file:PATH?mode=ro&uri=true)."""
    database = url.database or ""
    if str(url.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
    return database


class SqliteStore(Store):
    dialect = "sqlite"
    serialises_writes = True

    def __init__(self, config: DatabaseConfig, url: URL) -> None:
        file = database_path(url)
        if file and file != ":memory:":
            parent = Path(file).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(f"database.url: folder {parent} does not exist")
        self.url = url
        self.path = Path(file).expanduser() if file and file != ":memory:" else None
        synchronous = config.synchronous.upper()
        busy = config.busy_timeout_ms
        self.engine = sa.create_engine(
            url, connect_args={"timeout": busy / 1000, "check_same_thread": False}, pool_pre_ping=False)
        _configure(self.engine, synchronous, busy, begin_default="DEFERRED", wal=True)
        self.write_engine = self.engine.execution_options(transferbot_begin="IMMEDIATE")
        # A second engine whose writes never wait for the lock: for work that must not block the
        # event loop, which then falls back to the writer thread.
        self._nowait = sa.create_engine(url, connect_args={"timeout": 0, "check_same_thread": False},
                                        pool_size=1, max_overflow=0)
        _configure(self._nowait, synchronous, 0, begin_default="IMMEDIATE", wal=False)
        self._writer: _WriterThread | None = None
        self._writer_guard = threading.Lock()
        self._daemon_lock: int | None = None

    def exists(self) -> bool:
        return self.path is None or self.path.is_file()

    def begin_nowait(self) -> Session:
        """A write transaction begun now, or OperationalError at once if another writer holds the lock."""
        session = Session(self._nowait, expire_on_commit=False)
        try:
            session.begin()
            session.connection()  # BEGIN IMMEDIATE: take the lock now or fail
        except BaseException:
            session.close()
            raise
        return session

    # -- the daemon's writes -------------------------------------------------------------------------
    def _thread(self) -> _WriterThread:
        with self._writer_guard:
            if self._writer is None:
                sys.setswitchinterval(SWITCH_INTERVAL)
                self._writer = _WriterThread(self)
            return self._writer

    async def transact(self, fn: Callable[..., T], *args: Any, urgent: bool = False, inline: bool = False) -> T:
        writer = self._thread()
        if inline and writer.lock.acquire(blocking=False):
            try:
                try:
                    session = self.begin_nowait()
                except sa.exc.OperationalError:
                    session = None  # another process is writing: wait for it off the loop
                if session is not None:
                    try:
                        result = fn(session, *args)
                        session.commit()
                        return result
                    except BaseException:
                        session.rollback()
                        raise
                    finally:
                        session.close()
            finally:
                writer.lock.release()
        return await writer.submit(self.run, (fn, *args), urgent)

    def single_daemon(self) -> bool:
        """One daemon per SQLite database: an exclusive lock on a file beside it, held while the daemon runs
        (the kernel drops it when the process dies, however it dies). Holding it, the daemon knows any
        lease left in the database is a previous run's, and takes the work back at once."""
        if self.path is None:
            return True
        if self._daemon_lock is not None:
            return True
        fd = os.open(f"{self.path}.daemon-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"another `transferbot serve` runs on {self.path}; SQLite takes one daemon "
                             "(several daemons need PostgreSQL)") from None
        self._daemon_lock = fd
        return True

    def drain(self) -> None:
        if self._daemon_lock is not None:
            os.close(self._daemon_lock)  # releases the lock
            self._daemon_lock = None
        with self._writer_guard:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()

    def close(self) -> None:
        self.drain()
        self.engine.dispose()
        self._nowait.dispose()


def _configure(engine: sa.Engine, synchronous: str, busy_ms: int, begin_default: str, wal: bool) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        if wal:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('transferbot_begin', begin_default)}")


class _WriterThread:
    """Runs write transactions on one dedicated thread, in order, urgent ones first."""

    URGENT, NORMAL, STOP = 0, 1, 2

    def __init__(self, store: SqliteStore) -> None:
        self.lock = threading.Lock()  # held by whoever of this process is writing
        self.jobs: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self.order = itertools.count()
        self.thread = threading.Thread(target=self._work, name="db-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            _priority, _n, job = self.jobs.get()
            if job is None:
                return
            fn, args, future, loop = job
            try:
                with self.lock:
                    result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    async def submit(self, fn: Callable[..., T], args: tuple[Any, ...], urgent: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.jobs.put((self.URGENT if urgent else self.NORMAL, next(self.order), (fn, args, future, loop)))
        return await future

    def close(self) -> None:
        """Finish every job queued, then stop."""
        self.jobs.put((self.STOP, next(self.order), None))
        self.thread.join()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
