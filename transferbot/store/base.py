"""What the service layer asks of a database, whichever one it is.

A use case is a function ``fn(session, *args)`` run in one write transaction: ``run`` on the
calling thread (the CLI), ``transact`` from the daemon's event loop without blocking it. The
SQLite store serialises writes on a thread of its own; the PostgreSQL store runs them on a pool
and retries a transaction that lost a serialisation race or a deadlock. Neither leaks into the
service layer.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlmodel import Session

T = TypeVar("T")


class StoreError(Exception):
    """The database is configured wrongly (a bad URL, a missing folder); the text names the key."""


class DatabaseTrouble(Exception):
    """The database is there but cannot be used as it is: not a database, unreachable, missing its schema,
    or behind this release's. The text says which, and what fixes it."""


RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def transient(exc: BaseException) -> bool:
    """A failure that running the whole transaction again cures (a lost serialisation race, a deadlock)."""
    return isinstance(exc, sa.exc.DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRY_SQLSTATES


class Store(ABC):
    """One database: transactions, and the wake-ups daemons send each other."""

    dialect: str = ""
    url: URL
    engine: sa.Engine
    write_engine: sa.Engine  # the engine write transactions use (SQLite: one that begins IMMEDIATE)
    serialises_writes: bool = False  # one writer at a time: what a transaction read stays true until it commits

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on error."""
        with Session(self.write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A consistent read."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in one write transaction (retried where the database asks for it)."""
        with self.write() as session:
            return fn(session, *args)

    async def transact(self, fn: Callable[..., T], *args: Any, urgent: bool = False, inline: bool = False) -> T:
        """``run`` from the event loop without blocking it. ``urgent``: an SMTP session waits for it;
        ``inline``: work well under a millisecond that may run on the loop when nothing waits."""
        return await asyncio.to_thread(self.run, fn, *args)

    async def read_async(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(session, *args)`` in a read transaction, on a worker thread."""
        def work() -> T:
            with self.read() as session:
                return fn(session, *args)

        return await asyncio.to_thread(work)

    def notify(self, session: Session, channel: str) -> None:  # noqa: B027 - a no-op unless overridden
        """Wake the other daemons when this transaction commits (PostgreSQL); a no-op where one runs."""

    async def listen(self, channels: dict[str, Callable[[], None]]) -> None:
        """Call back when another daemon notifies a channel, until cancelled (never, where one runs)."""
        await asyncio.Event().wait()

    def single_daemon(self) -> bool:
        """Make sure this process is the only daemon where only one may run (SQLite); False when it is not.
        Where several may run, the work of one that died is taken over when its leases run out."""
        return False

    def drain(self) -> None:  # noqa: B027 - a no-op unless overridden
        """Finish every write under way or queued (a daemon stopping)."""

    def close(self) -> None:
        """Finish what is under way, then release connections."""
        self.drain()
        self.engine.dispose()

    @property
    def where(self) -> str:
        """The database, named for the operator without its password."""
        return self.url.render_as_string(hide_password=True)

    @abstractmethod
    def exists(self) -> bool:
        """Whether the database is there at all (a missing SQLite file is not created by looking)."""
