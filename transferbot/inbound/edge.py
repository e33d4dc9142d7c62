"""The inbound SMTP edge (aiosmtpd): thin, durable, honest about failure.

It refuses what it can at MAIL and RCPT (envelope addresses that are not UTF-8, addresses that are
not ours, tokens that we never issued), stores the raw message with its envelope and commits, and
only then answers 250. Reading happens later, off the session. Trouble of ours is a 4xx so the
sender retries (an exception anywhere in a session is a 451, never aiosmtpd's 500); 5xx is only for
what the sender must fix.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from transferbot.config import UNIX_PEER, ConfigError, InboundConfig
from transferbot.core.addresses import AddressBook
from transferbot.core.clock import now
from transferbot.core.tokens import check_token
from transferbot.inbound.intake import Arrival, Unstorable
from transferbot.inbound.limits import ConnectionCounter, RateLimiter
from transferbot.inbound.wire import storable

log = logging.getLogger(__name__)


def _utf8(address: str) -> bool:
    """aiosmtpd hands envelope arguments over as UTF-8 with surrogate escapes for invalid bytes."""
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in address


class InboundHandler:
    """aiosmtpd handler hooks."""

    def __init__(self, config: InboundConfig, book: AddressBook, secret: bytes,
                 store: Callable[[Arrival], Awaitable[int]], on_stored: Callable[[int], None] = lambda _id: None) -> None:
        self.config, self.book, self.secret = config, book, secret
        self.store = store
        self.on_stored = on_stored
        self.stopping = False
        self.rates = RateLimiter(config.messages_per_minute_per_sender, 60.0)
        self.in_transaction: set[Session] = set()  # sessions between MAIL and the end of DATA

    async def handle_exception(self, error: Exception) -> str:
        log.error("inbound: a session raised %s: %s; answered 451", type(error).__name__, error, exc_info=error)
        return "451 4.3.0 Temporary failure, please try again later"

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.stopping:
            return "421 4.3.2 Service shutting down, try again later"
        if not _utf8(address):
            log.warning("inbound from %s: MAIL FROM with invalid bytes; answered 553", _peer(session))
            return "553 5.1.7 The sender address is not valid UTF-8"
        sender = address.strip().lower() or f"<>@{_peer(session)}"
        if not self.rates.allow(sender, asyncio.get_running_loop().time()):
            log.warning("inbound from %s: rate limit for sender %s; answered 450", _peer(session), sender)
            return "450 4.7.1 Too many messages from this sender; try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.in_transaction.add(session)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not _utf8(address):
            return "553 5.1.3 The recipient address is not valid UTF-8"
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            return "452 4.5.3 Too many recipients"
        recipient = self.book.parse(address)
        if recipient is None:
            return f"550 5.1.1 <{address}>: no such recipient here"
        if recipient.kind == "bounce" and not (recipient.tag and check_token(self.secret, recipient.tag)):
            return f"550 5.1.1 <{address}>: no such recipient here"
        if recipient.kind == "reply" and recipient.tag and not check_token(self.secret, recipient.tag):
            return f"550 5.1.1 <{address}>: unknown reply address (check the address in the email you answer)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_transaction.discard(session)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        try:
            return await self._data(session, envelope)
        finally:
            self.in_transaction.discard(session)

    async def _data(self, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = _peer(session)
        try:
            inbound_id = await self.store(Arrival(raw or b"", envelope.mail_from or "", tuple(envelope.rcpt_tos),
                                                  peer, now(), storable(session.host_name or "")))
        except Unstorable as exc:
            log.error("inbound from %s: the message cannot be stored (%s); answered 554", peer, exc)
            return "554 5.6.0 This message cannot be stored; it was not delivered"
        except Exception:  # noqa: BLE001 - our trouble: the sender must retry, nothing is lost
            log.exception("inbound from %s: could not store the message; answered 451", peer)
            return "451 4.3.0 Temporary failure storing the message; please try again later"
        log.debug("inbound #%s from %s <%s> stored (%d bytes)", inbound_id, peer, storable(envelope.mail_from or ""),
                  len(raw or b""))
        self.on_stored(inbound_id)
        return f"250 2.0.0 Message accepted (#{inbound_id})"


def _peer(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


async def _answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket at ``path`` (a stale socket refuses them)."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout=2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class EdgeError(ConfigError):
    """The edge cannot listen where it is configured to: the message names the key (one line in the CLI)."""


class InboundProtocol(SMTP):
    """One SMTP session: aiosmtpd's, with the edge's connection limit and a registry for a graceful stop."""

    def __init__(self, handler: InboundHandler, edge: Edge, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.line_length_limit = edge.config.max_line_length + 3  # CRLF and a transparent dot (RFC 5321)
        self.edge = edge
        self.client = ""
        self.refused = False
        self.connection: asyncio.BaseTransport | None = None  # as accepted (before any STARTTLS)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.connection is None:  # not the second call aiosmtpd makes after STARTTLS
            peer = transport.get_extra_info("peername")
            if self.edge.config.socket is not None:
                self.client = UNIX_PEER  # a unix socket's client has no address: the socket names the relay
            else:
                self.client = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
            if not self.edge.connections.admit(self.client):
                self.refused = True
                log.warning("inbound from %s: too many connections; answered 421", self.client)
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(b"421 4.7.0 Too many connections from your address; try again later\r\n")
                transport.close()
                return
            self.connection = transport
            self.edge.sessions.add(self)
        super().connection_made(transport)
        if self.client == UNIX_PEER and self.session is not None:
            self.session.peer = UNIX_PEER

    def connection_lost(self, error: Exception | None) -> None:
        if self.refused:
            return
        if self in self.edge.sessions:
            self.edge.sessions.discard(self)
            self.edge.connections.release(self.client)
        super().connection_lost(error)

    @property
    def busy(self) -> bool:
        """In a mail transaction (between MAIL and the end of DATA)."""
        return self.session is not None and self.session in self.edge.handler.in_transaction

    def hang_up(self) -> None:
        if self.connection is not None:
            self.connection.close()


class Edge:
    """The inbound SMTP server: its sessions, limits and graceful stop."""

    protocol_class: type[InboundProtocol] = InboundProtocol
    """What one connection speaks; a listener for another protocol (LMTP) is a subclass that names its own."""

    def __init__(self, config: InboundConfig, handler: InboundHandler, tls_context: ssl.SSLContext | None) -> None:
        self.config, self.handler, self.tls_context = config, handler, tls_context
        self.connections = ConnectionCounter(self.config.max_connections_per_client)
        self.sessions: set[InboundProtocol] = set()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    def factory(self) -> InboundProtocol:
        """A protocol instance for a new connection (as aiosmtpd's ``Controller.factory()``)."""
        cfg = self.config
        return self.protocol_class(self.handler, self, hostname=cfg.banner_hostname, data_size_limit=cfg.max_message_bytes,
                               enable_SMTPUTF8=True, decode_data=False, ident="transferbot ESMTP",
                               timeout=cfg.idle_timeout_seconds, tls_context=self.tls_context,
                               require_starttls=cfg.require_starttls)

    async def start(self) -> int:
        """Listen on the TCP port, or on the unix socket when one is configured (then the port is 0)."""
        loop = asyncio.get_running_loop()
        path = self.config.socket
        if path is not None:
            if not path.parent.is_dir():
                raise EdgeError(f"inbound.socket: no such folder {path.parent} (for the socket {path})")
            if path.is_socket():
                if await _answers(path):
                    raise EdgeError(f"inbound.socket: another server is listening on {path}")
                path.unlink()  # left by a daemon that did not stop cleanly
            try:
                self.server = await loop.create_unix_server(self.factory, path=str(path))
                path.chmod(self.config.socket_permissions)
            except OSError as exc:
                raise EdgeError(f"inbound.socket: cannot listen on {path}: {exc.strerror or exc}") from None
            return 0
        self.server = await loop.create_server(self.factory, host=self.config.host, port=self.config.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    @property
    def where(self) -> str:
        """Where it listens, for the log."""
        cfg = self.config
        return f"unix:{cfg.socket}" if cfg.socket is not None else f"{cfg.host}:{self.port}"

    async def stop(self, grace: float) -> None:
        """Refuse new sessions and transactions; let mail transactions under way finish; then hang up."""
        if self.server is not None:
            self.server.close()
        self.handler.stopping = True
        deadline = time.monotonic() + grace
        while self.sessions and time.monotonic() < deadline:
            for proto in list(self.sessions):
                if not proto.busy:
                    proto.hang_up()
            if self.sessions:
                await asyncio.sleep(0.05)
        for proto in list(self.sessions):
            proto.hang_up()
        if self.server is not None:
            try:
                await asyncio.wait_for(self.server.wait_closed(), timeout=1)
            except (TimeoutError, OSError):
                pass
            path = self.config.socket
            if path is not None and path.is_socket():  # the relay then finds no listener, and defers its mail
                path.unlink(missing_ok=True)


class LmtpProtocol(InboundProtocol, LMTP):
    """One LMTP session (RFC 2033): LHLO instead of HELO/EHLO, and after DATA one reply per accepted recipient.

    The message is stored once, with all its recipients, in one commit; so every recipient gets the same
    answer: 250 after the commit, 451 on our trouble, 554 for what cannot be stored, 552 when too big.
    """

    def __init__(self, handler: InboundHandler, edge: Edge, **kwargs: Any) -> None:
        super().__init__(handler, edge, **kwargs)
        self._recipients = 0  # in DATA after the 354: how many times its final reply is said
        self._in_data = False

    async def smtp_DATA(self, arg: str) -> None:
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        except Exception as error:  # noqa: BLE001 - after the 354 the client awaits a reply per recipient
            if not self._recipients:
                raise
            await self.push(await self.handle_exception(error))
            self._set_post_data_state()
        finally:
            self._in_data, self._recipients = False, 0

    async def push(self, status: str | bytes) -> None:
        line = status if isinstance(status, str) else status.decode("utf-8", "surrogateescape")
        if self._in_data and line.startswith("354") and self.envelope is not None:
            self._recipients = len(self.envelope.rcpt_tos)
        elif self._recipients:
            count, self._recipients = self._recipients, 0
            line = "\r\n".join([line] * count)
        await super().push(line)


class LmtpEdge(Edge):
    """The inbound server speaking LMTP, for a mail server (Postfix's lmtp transport) in front of us."""

    protocol_class = LmtpProtocol
