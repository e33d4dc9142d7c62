"""The webhook dispatcher: claims due deliveries under a lease, signs and delivers them, records each attempt.

Like the mail dispatcher: a feeder claims due rows (woken at once when this daemon queues events,
by NOTIFY when another does, by polling otherwise, and at the soonest retry it knows of), and
``[webhooks] concurrency`` workers deliver them through the daemon's one WebhookClient. Every
attempt is signed afresh with its own time; the body and the ``webhook-id`` are the event's, fixed
when it was queued. The lease outlasts an attempt (its timeout and a margin), so no other daemon
takes a delivery while it is under way; a daemon that dies leaves leases that run out, and the
deliveries are taken over, the same event with the same id. A result whose write fails is kept
and written again: a delivered event is not sent twice for want of its record.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from datetime import datetime

from transferbot.app import webhooks
from transferbot.app.context import App
from transferbot.app.webhooks import Claimed, Result
from transferbot.core.clock import now
from transferbot.outbound.webhooks.delivery import Attempt, WebhookClient
from transferbot.outbound.webhooks.signing import sign_headers
from transferbot.runners.workers import stop_workers

log = logging.getLogger(__name__)

LEASE_MARGIN = 30.0  # seconds a lease outlasts the longest attempt


class WebhookDispatcher:
    def __init__(self, app: App, owner: str, client: WebhookClient | None = None) -> None:
        self.app = app
        self.owner = owner
        cfg = app.config.webhooks
        self.client = client or WebhookClient.from_config(cfg)
        self.workers = cfg.concurrency
        self.lease = max(app.config.database.lease_seconds, cfg.timeout_seconds + LEASE_MARGIN)
        self.queue: asyncio.Queue[Claimed] = asyncio.Queue()
        self.wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: list[Result] = []  # results not written yet
        self._write_lock = asyncio.Lock()
        self.delivered = 0
        self.attempted = 0
        self.results: dict[str, int] = {}  # attempts by outcome: delivered, retry, disable, failed
        self.taken_over = 0  # deliveries whose lease another daemon had let run out

    def poke(self) -> None:
        """Events may be due: look now rather than at the next poll."""
        self.wake.set()

    async def run(self) -> None:
        self._tasks = [asyncio.create_task(self._worker(), name=f"webhook-{i}") for i in range(self.workers)]
        poll = self.app.config.database.poll_seconds
        try:
            while not self._stopping:
                self.wake.clear()
                room = 2 * self.workers - self.queue.qsize()
                items: list[Claimed] = []
                soonest: datetime | None = None
                if room > 0:
                    try:
                        items = await self.app.store.transact(webhooks.claim_due, self.owner, now(), self.lease, room)
                        soonest = await self.app.store.read_async(webhooks.next_due)
                    except Exception:  # noqa: BLE001 - a busy database is tried again next poll
                        log.exception("webhooks: cannot claim due deliveries; trying again")
                for item in items:
                    self.taken_over += item.taken_over
                    self.queue.put_nowait(item)
                if items and len(items) == room:
                    continue
                wait = poll
                if soonest is not None:
                    wait = max(0.05, min(poll, (soonest - now()).total_seconds()))
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=wait)
        finally:
            await self._drain()

    async def _worker(self) -> None:
        while True:
            item = await self.queue.get()
            try:
                try:
                    attempt = await self.deliver(item)
                except Exception as exc:  # noqa: BLE001 - one bad row never stops the workers
                    log.exception("webhook delivery #%s (%s) raised", item.id, item.event_id)
                    attempt = Attempt("retry", error=f"{type(exc).__name__}: {exc}"[:500])
                self.attempted += 1
                self.delivered += attempt.outcome == "delivered"
                self.results[attempt.outcome] = self.results.get(attempt.outcome, 0) + 1
                await self._record(Result(item.id, attempt, now()))
            finally:
                self.queue.task_done()  # after the record: a stop waits for it
                if self.queue.qsize() < self.workers:
                    self.wake.set()  # time to claim more

    async def deliver(self, item: Claimed) -> Attempt:
        """One attempt, signed with this attempt's time."""
        headers = sign_headers(item.secret, item.event_id, now(), item.body)
        attempt = await self.client.deliver(item.url, headers, item.body)
        log.info("webhook delivery #%s %s %s: %s (attempt %d)", item.id, item.event_id, item.type, attempt.outcome,
                 item.attempts + 1)
        return attempt

    async def _record(self, result: Result) -> None:
        self._pending.append(result)
        async with self._write_lock:
            for _try in range(20):
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
                try:
                    await self.app.store.transact(webhooks.record, self.app, self.owner, batch)
                    return
                except Exception:  # noqa: BLE001 - kept (the leases hold) and written again
                    log.exception("webhooks: cannot record %d attempts; trying again", len(batch))
                    self._pending[:0] = batch
                    await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Stop claiming; let attempts under way finish and be recorded."""
        self._stopping = True
        self.wake.set()

    async def _drain(self, timeout: float = 30.0) -> None:
        await stop_workers(self.queue, lambda claimed: claimed.id,
                           lambda ids: self.app.store.transact(webhooks.release, self.owner, ids), self._tasks, timeout)
        async with self._write_lock:
            if self._pending:
                batch, self._pending = self._pending, []
                with suppress(Exception):
                    await self.app.store.transact(webhooks.record, self.app, self.owner, batch)
        with suppress(Exception):
            await self.client.aclose()
