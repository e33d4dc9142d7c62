"""The dispatcher: claims due outbox rows, renders them from their snapshots, delivers them over a pool.

A feeder claims due rows under a lease (woken at once when this daemon queues mail, by NOTIFY when
another does, and by polling otherwise); each connection has one worker. Results are written in
batches, which ends each row's lease. Should that write fail, the results are kept and written
again: a delivered message is never sent twice for want of its bookkeeping. Only a crash between
sending and writing sends the same message (same Message-ID, same bytes) again: a duplicate at
worst, never a loss.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from typing import Any

from transferbot.app import outbox
from transferbot.app.context import App
from transferbot.app.outbox import Claimed, Result
from transferbot.core.clock import now
from transferbot.outbound import rendering
from transferbot.outbound.rendering import Renderer
from transferbot.outbound.transports import Connection
from transferbot.runners.workers import stop_workers

log = logging.getLogger(__name__)

PREFETCH = 16  # rows claimed per connection
REFILL_AT = 2  # claim more when fewer than this per connection are waiting
RECORD_BATCH = 50  # results that are written at once without waiting for more
RECORD_DELAY = 0.05  # seconds a result may wait for others to be written with
POOL_BACKLOG = 32  # rows claimed within POOL_WINDOW seconds from which rendering goes to helper processes
POOL_WINDOW = 1.0
POOL_CHUNK = 8  # rows rendered per call in a helper process (fewer only in a claim's last chunk)


class Dispatcher:
    def __init__(self, app: App, connections: list[Connection], owner: str,
                 finish: rendering.Finish = rendering.unchanged) -> None:
        self.app = app
        self.connections = connections
        self.owner = owner
        self.finish = finish
        self.renderer = Renderer(finish=finish)
        # Rendering costs more than sending; once mail flows, helper processes render ahead while this
        # loop sends (started then, not before: most daemons never need them; see _render_ahead).
        self.render_processes = app.config.outbound.render_processes
        self._pool: ProcessPoolExecutor | None = None
        self._ahead: dict[int, tuple[asyncio.Future[list[tuple[str, bytes] | str]], int]] = {}
        self._claimed: deque[tuple[float, int]] = deque()  # (when, rows): how much mail has been claimed lately
        self.snapshots: dict[int, dict[str, Any]] = {}
        self.queue: asyncio.Queue[Claimed] = asyncio.Queue()
        self.results: list[Result] = []
        self.wake = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._stopping = False
        self._workers: list[asyncio.Task[None]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._record_lock = asyncio.Lock()
        self.taken_over = 0  # rows whose lease another daemon had let run out
        self.delivered = 0
        self.on_sent: Callable[[float], None] | None = None  # seconds from queued to accepted (metrics)

    def poke(self) -> None:
        """New mail may be due: look now rather than at the next poll."""
        self.wake.set()

    async def run(self) -> None:
        self._workers = [asyncio.create_task(self._worker(c), name=f"dispatch-{i}")
                         for i, c in enumerate(self.connections)]
        self._recorder = asyncio.create_task(self._record_loop(), name="dispatch-record")
        poll = min(self.app.config.outbound.poll_seconds, self.app.config.database.poll_seconds)
        lease = self.app.config.database.lease_seconds
        try:
            while not self._stopping:
                room = PREFETCH * len(self.connections) - self.queue.qsize()
                if self.queue.qsize() <= REFILL_AT * len(self.connections) and room > 0:
                    try:
                        items = await self.app.store.transact(outbox.claim_due, self.owner, now(), lease, room,
                                                              self.snapshots)
                    except Exception:  # noqa: BLE001 - a busy database is tried again next poll
                        log.exception("dispatcher: cannot claim from the outbox; trying again")
                        items = []
                    self._render_ahead(items)
                    self._forget_snapshots()
                    for item in items:
                        self.taken_over += item.taken_over
                        self.queue.put_nowait(item)
                    if items and len(items) == room:
                        continue  # more may be due: claim again as soon as there is room
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=poll)
                self.wake.clear()
        finally:
            await self._drain()

    def _forget_snapshots(self, keep: int = 256) -> None:
        while len(self.snapshots) > keep:
            del self.snapshots[next(iter(self.snapshots))]

    def _shared(self, item: Claimed) -> dict[str, Any] | None:
        return self.snapshots.get(item.row.snapshot_id) if item.row.snapshot_id is not None else None

    def _render_ahead(self, items: list[Claimed]) -> None:
        """Hand a backlog's rendering to the helper processes; each row's bytes are awaited when it is sent.

        They start once POOL_BACKLOG rows have been claimed within POOL_WINDOW seconds (a backlog, or a
        steady stream of notices, as when many replies are decided), and from then on render every claim
        of two rows or more."""
        jobs = [item for item in items if item.legacy_raw is None]
        if self.render_processes == 0 or not jobs:
            return
        if self._pool is None:
            moment = time.monotonic()
            self._claimed.append((moment, len(jobs)))
            while self._claimed[0][0] < moment - POOL_WINDOW:
                self._claimed.popleft()
            if sum(n for _t, n in self._claimed) < POOL_BACKLOG:
                return
        elif len(jobs) < 2:
            return
        try:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.render_processes, initializer=rendering.helper_started,
                                                 initargs=(self.finish,),
                                                 mp_context=multiprocessing.get_context("spawn"))
                log.info("dispatcher: %d helper process(es) render a backlog of mail", self.render_processes)
            for start in range(0, len(jobs), POOL_CHUNK):
                chunk = jobs[start:start + POOL_CHUNK]
                future = asyncio.wrap_future(self._pool.submit(
                    rendering.render_batch, [(item.row, self._shared(item)) for item in chunk]))
                for index, item in enumerate(chunk):
                    self._ahead[item.row.id] = (future, index)
        except Exception:  # noqa: BLE001 - no helper process here: render on this loop, as without them
            log.exception("dispatcher: cannot start helper processes to render mail; rendering here")
            self.render_processes = 0

    async def _bytes(self, item: Claimed) -> tuple[str, bytes]:
        if item.legacy_raw is not None:
            return "", item.legacy_raw  # rendered by release 0.1: sent as it is
        ahead = self._ahead.pop(item.row.id, None)
        if ahead is not None:
            future, index = ahead
            try:
                done = (await future)[index]
            except Exception:  # noqa: BLE001 - a helper process died: render here
                log.exception("outbox #%s: the helper process did not render it; rendering here", item.row.id)
                done = ""
            if not isinstance(done, str):
                return done
            # it failed there: render here, where the failure is raised and recorded as it always is
        return self.renderer.render(item.row, self._shared(item))

    async def _worker(self, connection: Connection) -> None:
        while True:
            item = await self.queue.get()
            row = item.row
            try:
                subject, raw = await self._bytes(item)
                delivery = await connection.send(item.envelope_from, list(row.recipients), raw)
                result = Result(row.id, delivery.status, now(), delivery.error, dict(delivery.refused),
                                tuple(delivery.remaining), subject)
                if delivery.status == "sent":
                    self.delivered += 1
                    if self.on_sent is not None:
                        self.on_sent(max(0.0, (result.at - row.created_at).total_seconds()))
                    # Not the Message-ID: the log is read more widely than the outbox (`transferbot outbox` has it).
                    log.info("outbox #%s (%s %s): sent to %s", row.id, row.transfer_id or "-", row.kind,
                             ", ".join(row.recipients))
            except Exception as exc:  # noqa: BLE001 - one bad row never stops the pool
                log.exception("outbox #%s %s: rendering or delivery raised", row.id, row.message_id)
                result = Result(row.id, "retry", now(), f"{type(exc).__name__}: {exc}")
            finally:
                self.queue.task_done()
                if self.queue.qsize() <= len(self.connections):
                    self.wake.set()  # time to claim more
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
            await self.app.store.transact(outbox.record, self.app, batch, inline=outbox.all_plain(batch))
        except Exception:  # noqa: BLE001 - keep the results (the leases hold) and write them again
            log.exception("dispatcher: cannot record %d deliveries; trying again", len(batch))
            self.results[:0] = batch
            await asyncio.sleep(0.5)
            self._results_ready.set()
            return
        if not outbox.all_plain(batch):
            self.poke()  # a failure may have queued an alert

    async def stop(self) -> None:
        """Stop claiming rows; let deliveries under way finish and their results be written."""
        self._stopping = True
        self.wake.set()

    async def _drain(self, timeout: float = 30.0) -> None:
        await stop_workers(self.queue, lambda claimed: claimed.row.id,
                           lambda ids: self.app.store.transact(outbox.release, self.owner, ids), self._workers, timeout)
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
        self._ahead.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
