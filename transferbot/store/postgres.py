"""PostgreSQL, for several daemons on one database: a connection pool, retries, LISTEN/NOTIFY.

Transactions run at READ COMMITTED; every use case locks its transfer row first (``SELECT … FOR
UPDATE``), so two daemons never interleave one transfer's decisions, and work is claimed with
``FOR UPDATE SKIP LOCKED`` (see service.claims). A transaction that loses a serialisation race or
a deadlock is run again from the start, a few times. ``notify`` queues a ``NOTIFY`` that the
database delivers to the other daemons when (and only if) the transaction commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlmodel import Session

from transferbot.config import DatabaseConfig
from transferbot.store.base import Store, transient

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIES = 5
# The channels to NOTIFY when a write transaction commits stay on the session, not in the app's unit of
# work (app.effects.work): they belong to the transaction, which this store opens and commits (``write``),
# and a transaction may hold several Works or none (an endpoint's retry, an arrival stored) that all ask.
_NOTIFY = "transferbot.notify"


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, config: DatabaseConfig, url: URL) -> None:
        self.url = url
        self.engine = sa.create_engine(url, pool_size=config.pool_size, max_overflow=config.pool_size,
                                       pool_pre_ping=True, pool_timeout=config.busy_timeout_ms / 1000 or 30,
                                       connect_args={"connect_timeout": 10, "application_name": "transferbot"})
        # An executemany INSERT (a batch's events and mail: dozens of rows) goes as psycopg's pipelined
        # executemany, not as one multi-row statement: psycopg parses a statement that long afresh every
        # time (its cache takes short ones only), which cost more than the rows (sweep, 100 due: the two
        # INSERTs 78 -> 41 ms; a reply's decision 9.5-10.6 -> 8.8-9.6 ms).
        self.engine.dialect.use_insertmanyvalues_wo_returning = False
        self.write_engine = self.engine
        self.retries = 0  # transactions run again after a serialisation failure or a deadlock

    def exists(self) -> bool:
        return True  # a server database: whether its schema is there is what counts (store.schema)

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        for attempt in range(1, RETRIES + 1):
            try:
                with self.write() as session:
                    return fn(session, *args)
            except sa.exc.DBAPIError as exc:
                if not transient(exc) or attempt == RETRIES:
                    raise
                self.retries += 1
                log.info("transaction hit %s (%s); running it again (attempt %d)", getattr(exc.orig, "sqlstate", ""),
                         type(exc.orig).__name__, attempt + 1)
                time.sleep(0.005 * attempt)
        raise AssertionError("unreachable")

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction; the notifications it asked for are queued just before it commits."""
        with Session(self.write_engine, expire_on_commit=False) as session, session.begin():
            yield session
            for channel in sorted(session.info.pop(_NOTIFY, ())):
                session.connection().execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": channel})

    def notify(self, session: Session, channel: str) -> None:
        """Sent once per channel when the transaction commits (a change in a savepoint rolled back since
        may wake the others for nothing: they find nothing and wait again)."""
        session.info.setdefault(_NOTIFY, set()).add(channel)

    async def listen(self, channels: dict[str, Callable[[], None]]) -> None:
        """One connection of its own, reconnecting after trouble; polling covers what it misses."""
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                async with conn:
                    for channel in channels:
                        await conn.execute(f'LISTEN "{channel}"')  # our own constant names
                    async for note in conn.notifies():
                        callback = channels.get(note.channel)
                        if callback is not None:
                            callback()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling carries on; listen again shortly
                log.warning("LISTEN connection lost (%s: %s); polling until it is back", type(exc).__name__, exc)
                await asyncio.sleep(1.0)
