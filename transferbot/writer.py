"""The daemon's database writes: one thread, in order, and the edge's group commit.

SQLite takes one writer at a time. Inside the daemon, writers queue here
instead of sleeping in SQLite's busy handler, so no write ever fails with
"database is locked" for a rival of our own; other processes (the CLI) still
wait through the busy timeout. Messages arriving while a commit runs are
stored together in the next one, so concurrent sessions share one commit
and every 250 still follows its own commit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import sqlalchemy as sa

from transferbot.service import inbox
from transferbot.service.app import App
from transferbot.service.inbox import Arrival

log = logging.getLogger(__name__)
T = TypeVar("T")

GROUP_LIMIT = 200


class Writer:
    """Runs write transactions on one dedicated thread, or inline when that cannot wait."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        self.lock = threading.Lock()  # held by whoever of this process is writing

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self.lock:
            return fn(*args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(self._locked, fn, *args))

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class InboundStore:
    """Group commit for the SMTP edge: every waiting message goes in the next transaction."""

    def __init__(self, app: App, writer: Writer) -> None:
        self.app, self.writer = app, writer
        self.waiting: list[tuple[Arrival, asyncio.Future[int]]] = []
        self.flushing = False

    async def store(self, arrival: Arrival) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append((arrival, future))
        if not self.flushing:
            self.flushing = True
            asyncio.create_task(self._flush(), name="inbound-commit")
        return await future

    async def _flush(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:GROUP_LIMIT], self.waiting[GROUP_LIMIT:]
                arrivals = [a for a, _ in batch]
                try:
                    ids = await self._commit(arrivals)
                except Exception as exc:  # noqa: BLE001 - each session answers 451; the senders retry
                    for _arrival, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_arrival, future), inbound_id in zip(batch, ids):
                    if not future.done():
                        future.set_result(inbound_id)
        finally:
            self.flushing = False

    async def _commit(self, arrivals: list[Arrival]) -> list[int]:
        """Insert on the loop (fast Python work, no thread handoffs) and commit on a thread (the
        fsync), so sessions are served meanwhile and the next batch forms. When another writer of
        this process or of another holds the lock, the batch waits its turn on the writer thread."""
        if self.writer.lock.acquire(blocking=False):
            try:
                try:
                    session = self.app.store.begin_nowait()
                except sa.exc.OperationalError:
                    session = None  # another process is writing: wait for it off the loop
                if session is not None:
                    try:
                        ids = inbox.insert_arrivals(session, arrivals)
                        await asyncio.to_thread(session.commit)
                        return ids
                    except BaseException:
                        session.rollback()
                        raise
                    finally:
                        session.close()
            finally:
                self.writer.lock.release()
        return await self.writer.run(inbox.store_many, self.app, arrivals)
