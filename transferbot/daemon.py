"""`transferbot serve`: inbound server, reader, dispatcher and scheduler on one event loop.

They start together and stop together. Blocking database work runs off the
loop: reads on worker threads, writes in order on one writer thread (see
writer.py), so the loop keeps serving sessions.
A graceful stop refuses new connections and transactions, lets SMTP
transactions under way finish, lets the reader finish the message it is
on and the dispatcher the deliveries under way, then closes everything.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from transferbot.dispatcher import Dispatcher
from transferbot.edge import InboundHandler
from transferbot.limits import ConnectionCounter
from transferbot.service import inbox
from transferbot.service.app import App
from transferbot.transports import Connection, connections_for
from transferbot.writer import InboundStore, Writer

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0001  # seconds; CPython default is 0.005


class Daemon:
    def __init__(self, app: App, connections: list[Connection] | None = None) -> None:
        self.app = app
        self.writer = Writer()
        self.dispatcher = Dispatcher(app, connections if connections is not None else connections_for(app.config.outbound),
                                     self.writer, busy=lambda: self.reader_backlog)
        self.reader_backlog = False
        self.inbound = InboundStore(app, self.writer)
        self.handler = InboundHandler(app, self.inbound.store, on_stored=self._stored)
        self.sessions: set[SMTP] = set()
        self.server: asyncio.base_events.Server | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._reader_wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.port = 0
        self.sweeps: list[tuple[float, int]] = []  # (seconds, transfers acted on) of recent sweeps
        cfg = app.config.inbound
        self.connections = ConnectionCounter(cfg.max_connections_per_client)
        self.tls_context = server_tls_context(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None

    # -- start ------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.app.config.inbound
        loop = asyncio.get_running_loop()
        # The writer thread hands the GIL back and forth with the loop at every SQLite call; at the
        # default 5 ms switch interval each handoff can wait that long, so a 0.3 ms commit took 10 ms.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.server = await loop.create_server(self._protocol, host=cfg.host, port=cfg.port)
        self.port = self.server.sockets[0].getsockname()[1]
        self._tasks = [
            asyncio.create_task(self._reader(), name="reader"),
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
        ]
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        self._schedule(self.scheduler)
        self.scheduler.start()
        log.info("transferbot listening on %s:%d for %s; outbound via %s", cfg.host, self.port, cfg.domain,
                 self.app.config.outbound.transport)

    def _schedule(self, scheduler: AsyncIOScheduler) -> None:
        """Timed jobs. State lives in the database; the scheduler only says when to look."""
        from transferbot.sweeper import schedule_sweep

        schedule_sweep(scheduler, self)

    def _protocol(self) -> SMTP:
        cfg = self.app.config.inbound
        daemon = self

        class TrackedSMTP(SMTP):
            line_length_limit = cfg.max_line_length + 3  # CRLF and a transparent dot (RFC 5321 4.5.3.1.6)
            _tb_client = ""
            _tb_refused = False

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                peer = transport.get_extra_info("peername")
                self._tb_client = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
                if not daemon.connections.admit(self._tb_client):
                    self._tb_refused = True
                    log.warning("inbound from %s: too many connections; answered 421", self._tb_client)
                    assert isinstance(transport, asyncio.WriteTransport)
                    transport.write(b"421 4.7.0 Too many connections from your address; try again later\r\n")
                    transport.close()
                    return
                daemon.sessions.add(self)
                super().connection_made(transport)

            def connection_lost(self, error: Exception | None) -> None:
                if self._tb_refused:
                    return
                daemon.sessions.discard(self)
                daemon.connections.release(self._tb_client)
                super().connection_lost(error)

        return TrackedSMTP(self.handler, hostname=cfg.banner_hostname, data_size_limit=cfg.max_message_bytes,
                           enable_SMTPUTF8=True, decode_data=False, ident="transferbot ESMTP",
                           timeout=cfg.idle_timeout_seconds, tls_context=self.tls_context,
                           require_starttls=cfg.require_starttls)

    def _stored(self, _inbound_id: int) -> None:
        self._reader_wake.set()

    # -- the reader worker ---------------------------------------------------
    READ_BATCH = 10

    async def _reader(self) -> None:
        """Reads stored messages in order, a batch per transaction; on start, catches up with what
        was stored but not read before."""
        while not self._stopping:
            self._reader_wake.clear()
            try:
                batch = await asyncio.to_thread(inbox.load_unread, self.app, self.READ_BATCH)
            except Exception:  # noqa: BLE001 - a busy database is tried again shortly
                log.exception("reader: cannot load unread messages; trying again")
                batch = []
            self.reader_backlog = len(batch) == self.READ_BATCH
            if batch:
                await self.read_batch(batch)
                continue
            self.dispatcher.poke(unrendered=True)  # caught up: time to render what the decisions queued
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._reader_wake.wait(), timeout=5.0)

    async def read_batch(self, batch: list[inbox.Stored]) -> None:
        readings = await asyncio.to_thread(lambda: [(s.id, inbox.read_stored(self.app, s)) for s in batch])
        try:
            await self.writer.run(inbox.apply_batch, self.app, readings, True)
        except Exception:  # noqa: BLE001 - the transaction rolled back: the messages stay unread, read again
            log.exception("reader: could not record %d read messages; reading them again", len(batch))
            await asyncio.sleep(1.0)
        self.dispatcher.poke(unrendered=True)

    # -- stop -------------------------------------------------------------
    async def stop(self, grace: float = 30.0) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("transferbot stopping: finishing SMTP transactions and deliveries under way")
        if self.server is not None:
            self.server.close()
        self.handler.stopping = True
        deadline = time.monotonic() + grace
        while self.sessions and time.monotonic() < deadline:
            for proto in list(self.sessions):
                envelope = getattr(proto, "envelope", None)
                idle = envelope is None or envelope.mail_from is None
                transport = getattr(proto, "transport", None)
                if idle and transport is not None:
                    transport.close()
            if not self.sessions:
                break
            await asyncio.sleep(0.05)
        for proto in list(self.sessions):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.close()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self._reader_wake.set()
        await self.dispatcher.stop()
        for task in self._tasks:
            with suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=grace)
        if self.server is not None:
            with suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), timeout=1)
        await asyncio.to_thread(self.writer.close)  # every write under way is finished
        log.info("transferbot stopped")


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """STARTTLS for the inbound server (TLS 1.2 or better)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


async def serve(app: App) -> None:
    """Run until SIGINT or SIGTERM, then stop gracefully."""
    daemon = Daemon(app)
    await daemon.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await daemon.stop()
