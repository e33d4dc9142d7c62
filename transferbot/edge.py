"""The inbound SMTP edge (aiosmtpd): thin, durable, honest about failure.

It refuses what it can at RCPT (addresses that are not ours, tokens that we
never issued), stores the raw message with its envelope and commits, and
only then answers 250. Reading happens later, off the session. Trouble of
ours is a 4xx so the sender retries; 5xx is only for what the sender must fix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from transferbot.clock import now
from transferbot.limits import RateLimiter
from transferbot.service.app import App
from transferbot.service.inbox import Arrival
from transferbot.tokens import check_token

log = logging.getLogger(__name__)


class InboundHandler:
    """aiosmtpd handler hooks."""

    def __init__(self, app: App, store: Callable[[Arrival], Awaitable[int]],
                 on_stored: Callable[[int], None] = lambda _id: None) -> None:
        self.app = app
        self.store = store
        self.on_stored = on_stored
        self.stopping = False
        self.rates = RateLimiter(app.config.inbound.messages_per_minute_per_sender, 60.0)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if self.stopping:
            return "421 4.3.2 Service shutting down, try again later"
        sender = address.strip().lower() or f"<>@{_peer(session)}"
        if not self.rates.allow(sender, asyncio.get_running_loop().time()):
            log.warning("inbound from %s: rate limit for sender %s; answered 450", _peer(session), sender)
            return "450 4.7.1 Too many messages from this sender; try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.app.config.inbound.max_recipients:
            return "452 4.5.3 Too many recipients"
        recipient = self.app.book.parse(address)
        if recipient is None:
            return f"550 5.1.1 <{address}>: no such recipient here"
        if recipient.kind == "bounce" and not (recipient.tag and check_token(self.app.secret, recipient.tag)):
            return f"550 5.1.1 <{address}>: no such recipient here"
        if recipient.kind == "reply" and recipient.tag and not check_token(self.app.secret, recipient.tag):
            return f"550 5.1.1 <{address}>: unknown reply address (check the address in the email you answer)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = _peer(session)
        try:
            inbound_id = await self.store(Arrival(raw or b"", envelope.mail_from or "", tuple(envelope.rcpt_tos),
                                                  peer, now()))
        except Exception:  # noqa: BLE001 - our trouble: the sender must retry, nothing is lost
            log.exception("inbound from %s: could not store the message; answered 451", peer)
            return "451 4.3.0 Temporary failure storing the message; please try again later"
        log.debug("inbound #%s from %s <%s> stored (%d bytes)", inbound_id, peer, envelope.mail_from,
                  len(raw or b""))
        self.on_stored(inbound_id)
        return f"250 2.0.0 Message accepted (#{inbound_id})"


def _peer(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")
