"""The dispatcher: delivers due outbox rows over a small pool of connections.

A feeder polls the outbox (and is woken at once when this process queues
mail); each connection has one worker. A row is in flight in at most one
worker; its result is written back before the row can be picked again. A
crash between sending and writing the result sends the same message (same
Message-ID) again: a duplicate at worst, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from transferbot.clock import now
from transferbot.service import outbox
from transferbot.service.app import App
from transferbot.service.outbox import OutboxItem
from transferbot.transports import Connection, Delivery

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, app: App, connections: list[Connection]) -> None:
        self.app = app
        self.connections = connections
        self.queue: asyncio.Queue[OutboxItem] = asyncio.Queue()
        self.in_flight: set[int] = set()
        self.wake = asyncio.Event()
        self._stopping = False
        self._workers: list[asyncio.Task[None]] = []

    def poke(self) -> None:
        """New mail may be due: look now rather than at the next poll."""
        self.wake.set()

    async def run(self) -> None:
        self._workers = [asyncio.create_task(self._worker(i, c), name=f"dispatch-{i}")
                         for i, c in enumerate(self.connections)]
        poll = self.app.config.outbound.poll_seconds
        try:
            while not self._stopping:
                room = 2 * len(self.connections) - self.queue.qsize()
                if room > 0:
                    try:
                        items = await asyncio.to_thread(outbox.due, self.app, now(), room, set(self.in_flight))
                    except Exception:  # noqa: BLE001 - a locked database is tried again next poll
                        log.exception("dispatcher: cannot read the outbox; trying again")
                        items = []
                    for item in items:
                        self.in_flight.add(item.id)
                        self.queue.put_nowait(item)
                    if len(items) == room:
                        await asyncio.sleep(0)
                        continue
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=poll)
                self.wake.clear()
        finally:
            await self._drain()

    async def _worker(self, index: int, connection: Connection) -> None:
        while True:
            item = await self.queue.get()
            try:
                await self._deliver(connection, item)
            except Exception:  # noqa: BLE001 - one bad row never stops the pool
                log.exception("outbox #%s %s: delivery raised", item.id, item.message_id)
            finally:
                self.in_flight.discard(item.id)
                self.queue.task_done()
                if self.queue.empty():
                    self.wake.set()

    async def _deliver(self, connection: Connection, item: OutboxItem) -> None:
        delivery: Delivery = await connection.send(item.envelope_from, list(item.recipients), item.raw)
        stamp = now()
        if delivery.status == "sent":
            await asyncio.to_thread(outbox.mark_sent, self.app, item.id, stamp, delivery.refused)
            log.info("outbox #%s %s: sent to %s", item.id, item.message_id, ", ".join(item.recipients))
        elif delivery.status == "retry":
            await asyncio.to_thread(outbox.mark_retry, self.app, item.id, delivery.error, stamp,
                                    delivery.remaining, delivery.refused)
        else:
            await asyncio.to_thread(outbox.mark_failed, self.app, item.id, delivery.error, stamp,
                                    delivery.refused or None)

    async def stop(self) -> None:
        """Stop taking rows; let deliveries under way finish; close the connections."""
        self._stopping = True
        self.wake.set()

    async def _drain(self, timeout: float = 30.0) -> None:
        while not self.queue.empty():  # not started: they stay queued in the database
            item = self.queue.get_nowait()
            self.in_flight.discard(item.id)
            self.queue.task_done()
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout=timeout)
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with suppress(asyncio.CancelledError):
                await task
        for connection in self.connections:
            with suppress(Exception):
                await connection.close()
