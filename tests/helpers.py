"""Test helpers: a daemon on loopback in a thread of its own, waiting, and replies as clients write them."""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import Any, TypeVar

from tests.dnsserver import DnsServer
from transferbot.app.context import App
from transferbot.core.clock import now
from transferbot.devtools.sink import Received
from transferbot.runners.daemon import Daemon
from transferbot.store.models import table_of

T = TypeVar("T")


_INTERNET: DnsServer | None = None
_INTERNET_LOCK = threading.Lock()
LOOPBACK_SPF = "v=spf1 ip4:127.0.0.0/8 ip6:::1 -all"


def internet_dns() -> DnsServer:
    """The suite's stand-in for the internet's DNS (one per test process, on a loopback port): every
    domain publishes an SPF record that lets mail sent from loopback pass, and no DMARC record, so a
    reply sent over loopback from a party's own address passes sender authentication as it would from
    the party's own server. Tests that need other records run a DnsServer of their own."""
    global _INTERNET
    with _INTERNET_LOCK:
        if _INTERNET is None:
            _INTERNET = DnsServer(default_spf=LOOPBACK_SPF).start()
        return _INTERNET


def dns_toml() -> str:
    """The [inbound] lines that point a daemon or the CLI at the suite's DNS."""
    return f'dns_resolvers = ["{internet_dns().address}"]\ndns_timeout_seconds = 2.0\n'


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Poll a condition (no fixed sleeps); fail the test with a message on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class RunningDaemon:
    """The real daemon (SMTP server, reader, dispatcher, scheduler) on its own event loop thread."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.daemon: Daemon | None = None
        self.thread = threading.Thread(target=self._run, name="daemon", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.daemon = Daemon(self.app)
            self.loop.run_until_complete(self.daemon.start())
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> RunningDaemon:
        self.thread.start()
        self._ready.wait(15)
        if self._error:
            raise self._error
        return self

    @property
    def port(self) -> int:
        assert self.daemon is not None
        return self.daemon.port

    def stop(self) -> None:
        if self.daemon is not None and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.daemon.stop(grace=5), self.loop).result(30)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)
        if not self.loop.is_running():
            self.loop.close()


def mark_all_sent(app: App) -> None:
    """Every queued mail recorded as delivered, as the dispatcher would (set-up for reader tests)."""
    import sqlalchemy as sa

    from transferbot.store.models import OutboundMessage

    table = table_of(OutboundMessage)
    app.store.run(lambda s: s.connection().execute(
        sa.update(table).where(table.c.status == "queued").values(status="sent", sent_at=now())))


def send(port: int, msg: EmailMessage | bytes, rcpt: str | list[str], mail_from: str | None = None,
         helo: str | None = None) -> dict[str, Any]:
    """Send with a real SMTP client (smtplib), greeting with ``helo`` (default: this host's name); returns its
    refused-recipients dict."""
    rcpts = [rcpt] if isinstance(rcpt, str) else rcpt
    raw = msg.as_bytes(policy=SMTP) if isinstance(msg, EmailMessage) else msg
    sender = mail_from if mail_from is not None else (
        str(msg["From"]).rpartition("<")[2].rstrip(">") if isinstance(msg, EmailMessage) else "")
    with smtplib.SMTP("127.0.0.1", port, timeout=10, local_hostname=helo) as client:
        return client.sendmail(sender, rcpts, raw)


def reply_address(original: Received) -> str:
    return str(original.message["Reply-To"]).rpartition("<")[2].rstrip(">")


def reply(original: Received, sender: str, fresh: str, *, quote: bool = True, subject_prefix: str = "Re: ",
          threaded: bool = True, to: str | None = None, extra_headers: dict[str, str] | None = None) -> EmailMessage:
    """A plain-text reply as a typical client writes it: fresh text, attribution, quoted original."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to or reply_address(original)
    msg["Subject"] = subject_prefix + original.subject
    msg["Date"] = format_datetime(now())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "example.com")
    if threaded:
        msg["In-Reply-To"] = original.message_id
        msg["References"] = original.message_id
    for key, value in (extra_headers or {}).items():
        msg[key] = value
    body = fresh
    if quote:
        quoted = "\n".join("> " + line if line else ">" for line in original.text().splitlines())
        body = f"{fresh}\n\nOn {original.message['Date']}, Marketplace Transfers <{reply_address(original)}> wrote:\n{quoted}\n"
    msg.set_content(body)
    return msg


def http_base(d: RunningDaemon) -> str:
    """The running daemon's HTTP server (API, dashboard, metrics), on its loopback port."""
    assert d.daemon is not None and d.daemon.http is not None
    return f"http://127.0.0.1:{d.daemon.http.port}"


def bearer(key: str) -> dict[str, str]:
    """The header an API key is sent in."""
    return {"Authorization": f"Bearer {key}"}
