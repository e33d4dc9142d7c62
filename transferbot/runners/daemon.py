"""`transferbot serve`: inbound server, reader, dispatchers (mail, webhooks), scheduler and HTTP on one event loop.

They start together and stop together. Blocking database work runs off the loop (store.transact),
so the loop keeps serving sessions. Work is claimed in the database under this daemon's name
(``owner``), so several daemons may run on one PostgreSQL database: each reply is read by one,
each mail sent by one, each due transfer swept by one, and the work of one that dies is taken over.
They wake each other with NOTIFY; polling covers what a lost notification misses.
A graceful stop refuses new connections and transactions, lets SMTP transactions under way finish,
lets the reader finish the batch it is on and the dispatcher the deliveries under way, then closes
everything.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import ssl
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from transferbot.app import arrivals
from transferbot.app.context import App
from transferbot.http import app as http_app
from transferbot.http.health import Readiness
from transferbot.http.metrics import DaemonCounters, Metrics
from transferbot.http.server import HttpServer
from transferbot.inbound.authenticator import Authenticator
from transferbot.inbound.edge import Edge, InboundHandler, LmtpEdge
from transferbot.inbound.intake import Arrival, GroupCommit
from transferbot.outbound import rendering
from transferbot.outbound.signing import load_signer
from transferbot.outbound.transports import Connection, connections_for
from transferbot.runners.mail_dispatcher import Dispatcher
from transferbot.runners.reader import ReadLoop
from transferbot.runners.sweeper import SweepStats, schedule_sweep
from transferbot.runners.webhook_dispatcher import WebhookDispatcher
from transferbot.store import queues

if TYPE_CHECKING:
    from transferbot.inbound.senderauth import Resolver

log = logging.getLogger(__name__)


def owner_name() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Daemon:
    def __init__(self, app: App, connections: list[Connection] | None = None, resolver: Resolver | None = None) -> None:
        self.app = app
        self.owner = owner_name()
        self.signer = load_signer(app.config)  # a bad key stops the daemon here, before it listens
        self.dispatcher = Dispatcher(app, connections if connections is not None else connections_for(app.config.outbound),
                                     self.owner, finish=self.signer or rendering.unchanged)
        self.authenticator = Authenticator(app.config.inbound, resolver)
        self.webhooks = WebhookDispatcher(app, self.owner)  # issue 11: signed webhooks, an outbox for HTTP
        self.reader = ReadLoop(app, self.owner, on_applied=self.wake_dispatchers, authenticator=self.authenticator)
        self.group = GroupCommit(self._commit)
        self.handler = InboundHandler(app.config.inbound, app.book, app.secret, self.group.store, on_stored=lambda _id: self.reader.poke())
        cfg = app.config.inbound
        tls = server_tls_context(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert and cfg.tls_key else None
        self.edge = (LmtpEdge if cfg.protocol == "lmtp" else Edge)(app.config.inbound, self.handler, tls)
        self.scheduler: AsyncIOScheduler | None = None
        self.sweeps = SweepStats()
        self.metrics = Metrics(app, counters=self.counters)
        self.dispatcher.on_sent = self.metrics.delivery_latency.observe
        self.sweeps.on_sweep = self.metrics.sweep
        self.readiness = Readiness(smtp_bound=lambda: self.edge.server is not None and self.edge.server.is_serving())
        self.http: HttpServer | None = None
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []

    async def _commit(self, batch: Any) -> list[int]:
        """A group of arrivals: two inserts each and one commit (well under a millisecond with its fsync),
        on the loop when the database is free, which is what bounds the edge; urgent otherwise."""
        batch_list: list[Arrival] = list(batch)
        return await self.app.store.transact(arrivals.store_arrivals, self.app, batch_list, urgent=True, inline=True)

    @property
    def port(self) -> int:
        return self.edge.port

    def counters(self) -> DaemonCounters:
        """What this daemon counted itself, for /metrics."""
        return DaemonCounters(taken_over={"outbox": self.dispatcher.taken_over, "inbound": self.reader.taken_over,
                                          "webhooks": self.webhooks.taken_over},
                              delivered=self.dispatcher.delivered, read=self.reader.read,
                              webhook_results=dict(self.webhooks.results))

    def wake_dispatchers(self) -> None:
        """A change was committed here: the mail and webhook events it caused are due now."""
        self.dispatcher.poke()
        self.webhooks.poke()

    # -- start ------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.app.config.inbound
        loop = asyncio.get_running_loop()
        if self.signer is None:
            log.warning("outbound.dkim_keys lists no key: our mail leaves unsigned, so the relay must sign it "
                        "with DKIM for %s", self.app.config.dkim_domain)
        if self.app.store.single_daemon():
            taken = await self.app.store.transact(queues.release_all)
            self.reader.taken_over += taken["inbound"]
            self.dispatcher.taken_over += taken["outbox"]
            self.webhooks.taken_over += taken["webhooks"]
            if any(taken.values()):
                log.info("took back the work a previous run of the daemon had claimed: %d inbound messages, "
                         "%d mails, %d webhook deliveries", taken["inbound"], taken["outbox"], taken["webhooks"])
        await self.edge.start()
        self._tasks = [
            asyncio.create_task(self.reader.run(), name="reader"),
            asyncio.create_task(self.dispatcher.run(), name="dispatcher"),
            asyncio.create_task(self.webhooks.run(), name="webhooks"),
            asyncio.create_task(self.app.store.listen({queues.INBOX.channel: self.reader.poke,
                                                       queues.OUTBOX.channel: self.dispatcher.poke,
                                                       queues.WEBHOOKS.channel: self.webhooks.poke}), name="listen"),
        ]
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
        schedule_sweep(self.scheduler, self.app, self.wake_dispatchers, self.sweeps)
        self.scheduler.start()
        http = self.app.config.http
        if http.enabled:
            self.http = HttpServer(http_app.create(self.app, self.readiness, on_change=self.wake_dispatchers,
                                                   metrics=self.metrics), http)
            await self.http.start()
            log.info("HTTP (API, dashboard, metrics) on http://%s:%d/", http.host, self.http.port)
        log.info("transferbot %s listening on %s (%s) for %s; outbound via %s; database %s; sender authentication %s",
                 self.owner, self.edge.where, cfg.protocol.upper(), cfg.domain, self.app.config.outbound.transport,
                 self.app.store.where, cfg.sender_auth)
        if cfg.socket is not None and cfg.sender_auth == "verify":
            log.warning("inbound.socket with sender_auth = \"verify\": a unix socket has no client address, so SPF "
                        "cannot pass for mail through it; behind a relay use \"trusted-relay\" with "
                        "trusted_relays = [\"unix\"]")
        if cfg.sender_auth == "off":
            log.warning("sender authentication is OFF (inbound.sender_auth = \"off\"): anyone who learns a reply "
                        "token can approve in a party's name")

    # -- stop -------------------------------------------------------------
    async def stop(self, grace: float = 30.0) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.readiness.stopping = True  # /readyz answers 503 from now on
        log.info("transferbot stopping: finishing SMTP transactions and deliveries under way")
        await self.edge.stop(grace)
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        self.reader.stop()
        await self.dispatcher.stop()
        await self.webhooks.stop()
        for task in self._tasks:
            if task.get_name() == "listen":
                task.cancel()
            with suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=grace)
        if self.http is not None:
            await self.http.stop()
        await asyncio.to_thread(self.app.store.drain)  # every write under way is finished
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
