"""The dispatcher: delivers due outbox rows over a small pool of connections.

A feeder polls the outbox (and is woken at once when this process queues
mail); each connection has one worker. A row stays in flight, and is not
picked again, until the result of its delivery is written; results are
written in batches through the daemon's writer (writer.py). Should that write fail, the
results are kept and written again: a delivered message is never sent twice
for want of its bookkeeping. Only a crash between sending and writing sends
the same message (same Message-ID) again: a duplicate at worst, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from transferbot.clock import now
from transferbot.service import letters, outbox
from transferbot.service.app import App
from transferbot.service.outbox import OutboxItem, Result
from transferbot.transports import Connection
from transferbot.writer import Writer

log = logging.getLogger(__name__)

PREFETCH = 16  # rows queued per connection
REFILL_AT = 2  # refill when fewer rows than this per connection are queued
RECORD_BATCH = 50  # results that are written at once without waiting for more
RECORD_DELAY = 0.05  # seconds a result may wait for others to be written with
RENDER_BATCH = 50
RENDER_DEFER_MAX = 5.0  # seconds rendering may yield to a backlog of replies to read


class Dispatcher:
    def __init__(self, app: App, connections: list[Connection], writer: Writer,
                 busy: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.connections = connections
        self.writer = writer
        self.busy = busy  # decisions are waiting to be made: rendering can wait a little
        self._last_render = 0.0
        self._render_wanted = True  # at start: what a stopped daemon left unrendered
        self.queue: asyncio.Queue[OutboxItem] = asyncio.Queue()
        self.in_flight: set[int] = set()
        self.results: list[Result] = []
        self.wake = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._stopping = False
        self._workers: list[asyncio.Task[None]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._record_lock = asyncio.Lock()

    def poke(self, unrendered: bool = False) -> None:
        """New mail may be due: look now rather than at the next poll. ``unrendered``: some was
        queued by a deferred transaction and must be rendered first."""
        self._render_wanted = self._render_wanted or unrendered
        self.wake.set()

    async def run(self) -> None:
        self._workers = [asyncio.create_task(self._worker(c), name=f"dispatch-{i}")
                         for i, c in enumerate(self.connections)]
        self._recorder = asyncio.create_task(self._record_loop(), name="dispatch-record")
        poll = self.app.config.outbound.poll_seconds
        try:
            while not self._stopping:
                # Refill in batches well ahead of the workers: one outbox read feeds many deliveries.
                room = PREFETCH * len(self.connections) - self.queue.qsize()
                if self._render_wanted:
                    await self._render()
                if self.queue.qsize() <= REFILL_AT * len(self.connections) and room > 0:
                    try:
                        items = await asyncio.to_thread(outbox.due, self.app, now(), room, set(self.in_flight))
                    except Exception:  # noqa: BLE001 - a busy database is tried again next poll
                        log.exception("dispatcher: cannot read the outbox; trying again")
                        items = []
                    for item in items:
                        self.in_flight.add(item.id)
                        self.queue.put_nowait(item)
                    if items and len(items) == room:
                        continue  # more may be due: refill as soon as there is room
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=poll)
                self.wake.clear()
        finally:
            await self._drain()

    async def _render(self) -> None:
        """Render mail queued by deferred transactions: reads on a thread, then a short write.

        Decisions come first: while replies wait to be read, rendering (the costliest part of
        a notice) waits too, but never longer than RENDER_DEFER_MAX seconds."""
        loop = asyncio.get_running_loop()
        busy = self.busy()
        if busy and loop.time() - self._last_render < RENDER_DEFER_MAX:
            return
        self._last_render = loop.time()
        self._render_wanted = False
        try:
            while rendered := await asyncio.to_thread(letters.render_pending, self.app, RENDER_BATCH):
                await self.writer.run(letters.store_rendered, self.app, rendered)
                if len(rendered) < RENDER_BATCH:
                    break
                if busy:  # one batch, then the replies again
                    self._render_wanted = True
                    break
        except Exception:  # noqa: BLE001 - rows stay unrendered; tried again at the next poll
            self._render_wanted = True
            log.exception("dispatcher: rendering queued mail failed; trying again")

    async def _worker(self, connection: Connection) -> None:
        while True:
            item = await self.queue.get()
            try:
                delivery = await connection.send(item.envelope_from, list(item.recipients), item.raw)
                result = Result(item.id, delivery.status, now(), delivery.error, dict(delivery.refused),
                                tuple(delivery.remaining))
                if delivery.status == "sent":
                    log.info("outbox #%s %s: sent to %s", item.id, item.message_id, ", ".join(item.recipients))
            except Exception as exc:  # noqa: BLE001 - one bad row never stops the pool
                log.exception("outbox #%s %s: delivery raised", item.id, item.message_id)
                result = Result(item.id, "retry", now(), f"{type(exc).__name__}: {exc}")
            finally:
                self.queue.task_done()
                if self.queue.qsize() <= len(self.connections):
                    self.wake.set()  # time to refill
            self.results.append(result)
            self._results_ready.set()

    async def _record_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            if len(self.results) < RECORD_BATCH:
                await asyncio.sleep(RECORD_DELAY)  # let results gather: one transaction records many
            self._results_ready.clear()
            async with self._record_lock:
                await self._record()

    async def _record(self) -> None:
        if not self.results:
            return
        batch, self.results = self.results, []
        try:
            # Plain deliveries take one UPDATE: recorded on the loop when the database is free.
            await self.writer.transact(self.app, outbox.record_in, self.app, batch, True,
                                       inline=outbox.all_plain(batch))
        except Exception:  # noqa: BLE001 - keep the results (rows stay in flight) and write them again
            log.exception("dispatcher: cannot record %d deliveries; trying again", len(batch))
            self.results[:0] = batch
            await asyncio.sleep(0.5)
            self._results_ready.set()
            return
        for result in batch:
            self.in_flight.discard(result.item_id)
        self.poke(unrendered=not outbox.all_plain(batch))

    async def stop(self) -> None:
        """Stop taking rows; let deliveries under way finish and their results be written."""
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
        async with self._record_lock:  # a write under way finishes first; then the loop is idle
            if self._recorder is not None:
                self._recorder.cancel()
                with suppress(asyncio.CancelledError):
                    await self._recorder
            for _attempt in range(20):
                if not self.results:
                    break
                await self._record()
        for connection in self.connections:
            with suppress(Exception):
                await connection.close()
