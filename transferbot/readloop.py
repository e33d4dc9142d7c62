"""The reader worker: claims unread messages, reads them off the loop, applies the verdicts in order.

Messages are claimed a batch at a time under a lease, so with several daemons each is read by one;
the reading (parsing, finding the fresh text) is pure and runs on a worker thread; the verdicts of
a batch are applied in one transaction. On start it catches up with what was stored but not read,
and the messages of a daemon that died are taken once their lease has run out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from transferbot.clock import now
from transferbot.service import arrivals, replies
from transferbot.service.app import App

log = logging.getLogger(__name__)

BATCH = 10


class ReadLoop:
    def __init__(self, app: App, owner: str, on_applied: Callable[[], None]) -> None:
        self.app, self.owner, self.on_applied = app, owner, on_applied
        self.wake = asyncio.Event()
        self.stopping = False
        self.backlog = False
        self.taken_over = 0
        self.read = 0

    def poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        lease = self.app.config.database.lease_seconds
        poll = self.app.config.database.poll_seconds
        while not self.stopping:
            self.wake.clear()
            try:
                batch = await self.app.store.transact(arrivals.claim_unread, self.owner, now(), lease, BATCH)
            except Exception:  # noqa: BLE001 - a busy database is tried again shortly
                log.exception("reader: cannot claim unread messages; trying again")
                batch = []
            self.backlog = len(batch) == BATCH
            if batch:
                self.taken_over += sum(s.taken_over for s in batch)
                await self.read_batch(batch)
                continue
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=poll)

    async def read_batch(self, batch: list[arrivals.Stored]) -> None:
        readings = await asyncio.to_thread(lambda: [(s.id, replies.read_stored(self.app, s)) for s in batch])
        try:
            await self.app.store.transact(replies.apply_batch, self.app, readings)
        except Exception:  # noqa: BLE001 - rolled back: the messages stay unread and leased; read again later
            log.exception("reader: could not record %d read messages; they are read again", len(batch))
            await asyncio.sleep(1.0)
            return
        self.read += len(batch)
        self.on_applied()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
