"""Where outgoing mail goes: an SMTP relay (aiosmtplib) or a Maildir folder.

A transport delivers one message and says what happened in the outbox's
terms: sent (perhaps with some recipients refused), retry later, or failed
for good. It never decides about retries itself.
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import aiosmtplib

from transferbot.config import OutboundConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    status: Literal["sent", "retry", "failed"]
    error: str = ""
    refused: dict[str, str] = field(default_factory=dict)  # refused for good (5xx)
    remaining: tuple[str, ...] = ()  # on a partial retry: only these are still to be delivered


class Connection(Protocol):
    async def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> Delivery: ...
    async def close(self) -> None: ...


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{code} {message}" if code else f"{type(exc).__name__}: {message}"


def classify_smtp_error(exc: BaseException) -> Delivery:
    """5xx to a recipient or to the message itself is permanent; the rest is retried."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = {r.recipient: f"{r.code} {r.message}" for r in exc.recipients}
        if all(400 <= r.code < 500 for r in exc.recipients):
            return Delivery("retry", "all recipients deferred: " + "; ".join(refused.values()))
        if any(400 <= r.code < 500 for r in exc.recipients):
            return Delivery("retry", "some recipients deferred: " + "; ".join(refused.values()))
        return Delivery("failed", "all recipients refused: " + "; ".join(refused.values()), refused)
    if isinstance(exc, aiosmtplib.SMTPDataError) and 500 <= exc.code < 600:
        return Delivery("failed", _describe(exc))  # the relay refuses this message's content for good
    # Anything else — 4xx, a refused login or sender, a broken connection — is about the relay
    # or our configuration, not the recipients: try again later, never mark them undeliverable.
    return Delivery("retry", _describe(exc))


class SmtpConnection:
    """One persistent connection to the relay, reopened when it drops."""

    def __init__(self, config: OutboundConfig, tls_context: ssl.SSLContext | None = None) -> None:
        self.config = config
        self.tls_context = tls_context
        self.client: aiosmtplib.SMTP | None = None
        self.last_used = 0.0

    def _new_client(self) -> aiosmtplib.SMTP:
        cfg = self.config
        return aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, timeout=cfg.timeout_seconds, use_tls=cfg.tls,
            start_tls=True if cfg.starttls else False, tls_context=self.tls_context if (cfg.tls or cfg.starttls) else None,
            username=cfg.username or None, password=cfg.password.get_secret_value() or None,
            local_hostname=cfg.helo_name or None,
        )

    async def _connected(self) -> aiosmtplib.SMTP:
        if self.client is not None and self.client.is_connected and time.monotonic() - self.last_used < 60:
            return self.client
        await self.close()
        client = self._new_client()
        await client.connect()
        self.client = client
        return client

    async def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> Delivery:
        for attempt in (1, 2):
            try:
                client = await self._connected()
                errors, _response = await client.sendmail(envelope_from, recipients, raw)
                self.last_used = time.monotonic()
                refused = {a: f"{r.code} {r.message}" for a, r in errors.items() if r.code >= 500}
                deferred = {a: f"{r.code} {r.message}" for a, r in errors.items() if r.code < 500}
                if deferred:
                    # Accepted by the others: only the deferred recipients are tried again.
                    return Delivery("retry", "deferred: " + "; ".join(f"{a}: {e}" for a, e in deferred.items()),
                                    refused, tuple(deferred))
                return Delivery("sent", refused=refused)
            except aiosmtplib.SMTPServerDisconnected as exc:
                await self.close()
                if attempt == 2:
                    return classify_smtp_error(exc)
                continue  # a pooled connection the relay had closed: try once on a fresh one
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                delivery = classify_smtp_error(exc)
                if isinstance(exc, (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPDataError)):
                    await self._reset()  # the session is sound: only this message was refused
                else:
                    await self.close()  # reconnect (and log in again) for the next one
                return delivery
        raise AssertionError("unreachable")

    async def _reset(self) -> None:
        if self.client is not None and self.client.is_connected:
            try:
                await self.client.rset()
            except Exception:  # noqa: BLE001 - a broken session is simply reopened next time
                await self.close()

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None and client.is_connected:
            try:
                await asyncio.wait_for(client.quit(), timeout=5)
            except Exception:  # noqa: BLE001
                client.close()


class MaildirConnection:
    """Writes each message into a Maildir folder that any mail client can open."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> Delivery:
        try:
            await asyncio.to_thread(self._write, envelope_from, recipients, raw)
        except OSError as exc:
            return Delivery("retry", f"cannot write to Maildir {self.path}: {exc.strerror or exc}")
        return Delivery("sent")

    def _write(self, envelope_from: str, recipients: list[str], raw: bytes) -> None:
        box = mailbox.Maildir(str(self.path), create=True)
        prefix = f"Return-Path: <{envelope_from}>\r\nX-Envelope-To: {', '.join(recipients)}\r\n".encode()
        box.add(prefix + raw)

    async def close(self) -> None:
        return None


def tls_context_for(config: OutboundConfig) -> ssl.SSLContext | None:
    if not (config.tls or config.starttls):
        return None
    context = ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    return context


def connections_for(config: OutboundConfig) -> list[Connection]:
    if config.transport == "maildir":
        return [MaildirConnection(config.maildir)]
    context = tls_context_for(config)
    return [SmtpConnection(config, context) for _ in range(config.connections)]
