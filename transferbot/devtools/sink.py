"""An SMTP sink (aiosmtpd) that stands in for the relay and the parties' mailboxes.

Used by ``transferbot demo``, the tests and the benchmark: it accepts every
message, keeps it with its envelope, and can be waited on. Messages are
also indexed by Message-ID, so a resend of the same message counts once.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage = field(compare=False)
    tls: bool = False
    login: str | None = None
    helo: str = ""  # the name the client greeted us with (EHLO/HELO)

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", ""))

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        text = part.get_content() if part is not None else ""
        return text.replace("\r\n", "\n")

    def flat(self) -> str:
        """The text part with all white space collapsed (for looking up wrapped phrases)."""
        return " ".join(self.text().split())

    def html(self) -> str:
        part = self.message.get_body(("html",))
        return part.get_content() if part is not None else ""


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        code = self.sink.rcpt_codes.get(address.lower())
        if code:
            return code
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.sink.data_code:
            return self.sink.data_code
        raw = envelope.original_content or b""
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(msg, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
        self.sink._add(Received(envelope.mail_from or "", tuple(envelope.rcpt_tos), raw, msg,
                                tls=session.ssl is not None, login=login, helo=session.host_name or ""))
        return "250 OK"


class MailSink:
    """Listens on 127.0.0.1 (port 0 unless told) in the running event loop or its own thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls_context: ssl.SSLContext | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        """``tls_context`` offers STARTTLS; ``credentials`` (login, password) require AUTH after it."""
        self.host, self.port = host, port
        self.tls_context, self.credentials = tls_context, credentials
        self.messages: list[Received] = []
        self.by_message_id: dict[str, Received] = {}
        self.rcpt_codes: dict[str, str] = {}  # address -> reply code, to simulate refusals
        self.data_code: str | None = None
        self._lock = threading.Condition()
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- in the caller's loop ---------------------------------------------------
    async def start(self) -> MailSink:
        loop = asyncio.get_running_loop()
        handler = _Handler(self)
        auth: dict[str, Any] = {}
        if self.credentials is not None:
            auth = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": True}
        self._server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.localhost", enable_SMTPUTF8=True, data_size_limit=None,
                         ident="transferbot-sink", tls_context=self.tls_context, **auth),
            host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop = loop
        return self

    def _authenticate(self, server: Any, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.credentials is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    # -- in a thread of its own (for synchronous tests) ------------------------------
    def start_in_thread(self) -> MailSink:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="mail-sink", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    # -- what arrived -------------------------------------------------------------
    def _add(self, received: Received) -> None:
        with self._lock:
            self.messages.append(received)
            self.by_message_id.setdefault(received.message_id, received)
            self._lock.notify_all()

    def unique(self) -> list[Received]:
        with self._lock:
            return list(self.by_message_id.values())

    def to(self, address: str) -> list[Received]:
        address = address.lower()
        return [m for m in self.unique() if address in (r.lower() for r in m.rcpt_tos)]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[Received]:
        """Block until predicate(unique messages) is true; returns them (raises on timeout)."""
        with self._lock:
            ok = self._lock.wait_for(lambda: predicate(list(self.by_message_id.values())), timeout)
            if not ok:
                subjects = [m.subject for m in self.by_message_id.values()]
                raise TimeoutError(f"sink: condition not met in {timeout}s; received {subjects}")
            return list(self.by_message_id.values())

    async def await_for(self, predicate: Any, timeout: float = 10.0) -> list[Received]:
        return await asyncio.to_thread(self.wait_for, predicate, timeout)
