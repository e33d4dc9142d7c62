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
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from transferbot.service import inbox
from transferbot.service.app import App
from transferbot.service.inbox import Arrival

log = logging.getLogger(__name__)
T = TypeVar("T")

GROUP_LIMIT = 200


class Writer:
    """Runs write transactions on one dedicated thread, urgent ones first.

    The edge's commits are urgent: a sender waits for each. The reader's, the
    dispatcher's and the sweep's are not, and never hold the SMTP sessions up
    by more than the one transaction under way."""

    URGENT, NORMAL, STOP = 0, 1, 2

    def __init__(self) -> None:
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

    async def run(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.jobs.put((self.URGENT if urgent else self.NORMAL, next(self.order), (fn, args, future, loop)))
        return await future

    async def transact(self, app: App, fn: Callable[..., T], *args: Any, urgent: bool = False,
                       inline: bool = False) -> T:
        """Run ``fn(session, *args)`` in one write transaction.

        ``inline``: on the calling thread (the event loop) when nobody is writing, for work of well
        under a millisecond where two thread handoffs would cost more than the work. The inline
        transaction never waits for SQLite's lock: when another writer of this process or of
        another holds it, the work queues for the writer thread instead."""
        if inline and self.lock.acquire(blocking=False):
            try:
                try:
                    session = app.store.begin_nowait()
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
                self.lock.release()
        return await self.run(_in_transaction, app, fn, *args, urgent=urgent)

    def close(self) -> None:
        """Finish every job queued, then stop."""
        self.jobs.put((self.STOP, next(self.order), None))
        self.thread.join()


def _in_transaction(app: App, fn: Callable[..., T], *args: Any) -> T:
    with app.store.write() as session:
        return fn(session, *args)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


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
                for (_arrival, future), inbound_id in zip(batch, ids, strict=True):
                    if not future.done():
                        future.set_result(inbound_id)
        finally:
            self.flushing = False

    async def _commit(self, arrivals: list[Arrival]) -> list[int]:
        """Two inserts per message and one commit (well under a millisecond with its fsync): on
        the loop when the database is free, which is what bounds the edge; urgent otherwise."""
        return await self.writer.transact(self.app, inbox.insert_arrivals, arrivals, urgent=True, inline=True)
