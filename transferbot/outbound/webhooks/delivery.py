"""One attempt to deliver a signed webhook, and what it came to.

``WebhookClient`` is made once per daemon (one pool of connections, reused across deliveries)
and its ``deliver`` never raises for anything the network or the receiver does: every ending is
an ``Attempt`` for the dispatcher to record. What each ending means:

* 2xx: delivered.
* 410 Gone: the receiver wants no more; disable the endpoint (Standard Webhooks).
* 3xx: not followed (a redirect could lead anywhere, including inside); retry, and the error
  names the target so the operator can update the URL.
* any other status, a timeout, a refused or broken connection, a TLS failure, a host name that
  resolves to a refused address: retry. The last because DNS answers change, and an event the
  billing system acts on should not be lost to a passing misconfiguration; every attempt is
  checked again and no byte reaches a refused address.
* a URL that can never be delivered to (not http(s), or a refused IP address written in it):
  failed at once; retrying could not change the answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Self

import httpcore
import httpx

from transferbot import __version__
from transferbot.config import WebhooksConfig
from transferbot.core.clock import now
from transferbot.outbound.webhooks.transport import GuardedTransport
from transferbot.outbound.webhooks.urls import AddressGuard, AddressRefused, Resolver, UrlError, validate_url

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retry", "disable", "failed"]
USER_AGENT = f"transferbot-webhooks/{__version__}"
ERROR_CHARS = 500  # an error is one line, and short enough for a table cell
EXCERPT_BYTES = 1024  # of the response body, kept with the attempt


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt came to, for the dispatcher to record and to schedule by."""

    outcome: Outcome
    status_code: int | None = None  # None when no response came
    error: str = ""  # one line; empty when delivered
    response_excerpt: str = ""  # the start of the response body, as text (never a NUL)
    elapsed_ms: int = 0
    retry_after: float | None = None  # seconds the receiver asked us to wait (Retry-After), if it did
    remote_address: str | None = None  # the IP address the request went to, when one answered


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    """Whitespace and control characters collapsed to single spaces, cut to ``limit`` characters."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def excerpt(data: bytes, limit: int = EXCERPT_BYTES) -> str:
    """The start of a response body as text: invalid UTF-8 replaced, NULs too (PostgreSQL text refuses them)."""
    return data[:limit].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now()).total_seconds())


def _origin(url: str) -> str:
    """scheme://host:port only, for logs: a webhook URL's path or query may hold the receiver's token."""
    try:
        parsed = httpx.URL(url)
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        return f"{parsed.scheme}://{host}" + (f":{parsed.port}" if parsed.port else "")
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"


def _transport_error(exc: Exception, timeout: float) -> str:
    """One line for a failure before or while waiting for the response."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connection timed out (limit {timeout:g} s)"
    if isinstance(exc, httpx.WriteTimeout):
        return f"timed out sending the request (limit {timeout:g} s)"
    if isinstance(exc, httpx.PoolTimeout):
        return f"no free connection within {timeout:g} s"
    if isinstance(exc, (httpx.ReadTimeout, TimeoutError)):
        return f"no response within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        return one_line(f"connection failed: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return one_line(f"bad response: {exc}")
    return one_line(f"{type(exc).__name__}: {exc}")


def judge(status: int, reason_phrase: str, location: str | None, body_error: str = "") -> tuple[Outcome, str]:
    """The outcome of a response by its status (Standard Webhooks' status-code etiquette), and its error line."""
    if 200 <= status < 300:
        return "delivered", ""
    reason = f"HTTP {status}" + (f" {reason_phrase}" if reason_phrase else "")
    if status == 410:
        return "disable", f"{reason}: the receiver asked for no more webhooks"
    if 300 <= status < 400:
        target = f"redirect to {one_line(location, 200)}" if location else "redirect"
        return "retry", f"{reason}: {target} not followed (update the endpoint URL)"
    return "retry", one_line(reason + (f" ({body_error})" if body_error else ""))


class WebhookClient:
    """The daemon's one webhook HTTP client: guarded connections, pooled and reused, no redirects.

    The address policy belongs to the client, not to a call: pooled connections were made under
    it, and one must never carry a request that a stricter policy would refuse.
    """

    def __init__(self, *, allow_private_networks: bool = False, timeout: float = 15.0,
                 max_response_bytes: int = 65536, max_connections: int = 10,
                 excerpt_bytes: int = EXCERPT_BYTES, resolver: Resolver | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 network_backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        if timeout <= 0 or max_response_bytes < 0 or max_connections < 1:
            raise ValueError("timeout and max_connections must be positive, max_response_bytes not negative")
        self.allow_private_networks = allow_private_networks
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.excerpt_bytes = excerpt_bytes
        self.guard = AddressGuard(allow_private_networks=allow_private_networks, resolver=resolver)
        transport = GuardedTransport(self.guard, ssl_context=ssl_context, inner=network_backend,
                                     limits=httpx.Limits(max_connections=max_connections,
                                                         max_keepalive_connections=max_connections))
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: it would resolve and connect unguarded
            timeout=httpx.Timeout(timeout),
            headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},  # raw bytes: no inflating
        )

    @classmethod
    def from_config(cls, config: WebhooksConfig, *, resolver: Resolver | None = None,
                    ssl_context: ssl.SSLContext | None = None) -> WebhookClient:
        """The client ``[webhooks]`` describes (``app.config.webhooks``)."""
        return cls(allow_private_networks=config.allow_private_networks, timeout=config.timeout_seconds,
                   max_response_bytes=config.max_response_bytes, max_connections=config.concurrency,
                   resolver=resolver, ssl_context=ssl_context)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deliver(self, url: str, headers: Mapping[str, str], body: bytes) -> Attempt:
        """POST ``body`` with ``headers`` (sign_headers) to ``url``, once; never raises for I/O.

        The whole attempt (lookup, connect, TLS, request, response head, body up to the cap) has
        ``timeout`` seconds, so a receiver that trickles bytes cannot hold a worker.
        """
        started = time.monotonic()
        msg_id = headers.get("webhook-id", "-")
        origin = _origin(url)
        attempt = await self._attempt(url, headers, body, started)
        level = logging.INFO if attempt.outcome == "delivered" else logging.WARNING
        log.log(level, "webhook %s to %s: %s%s in %d ms%s", msg_id, origin, attempt.outcome,
                f" (HTTP {attempt.status_code})" if attempt.status_code is not None else "",
                attempt.elapsed_ms, f": {attempt.error}" if attempt.error else "")
        return attempt

    async def _attempt(self, url: str, headers: Mapping[str, str], body: bytes, started: float) -> Attempt:
        def elapsed() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            validate_url(url, allow_private_networks=self.allow_private_networks)
        except UrlError as exc:
            return Attempt("failed", error=one_line(str(exc)), elapsed_ms=elapsed())
        request_headers = httpx.Headers(dict(headers))
        request_headers.setdefault("content-type", "application/json")
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                request = self._client.build_request("POST", url, content=body, headers=request_headers)
                response = await self._client.send(request, stream=True, follow_redirects=False)
        except AddressRefused as exc:
            return Attempt("failed" if exc.literal else "retry", error=one_line(str(exc)), elapsed_ms=elapsed())
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return Attempt("retry", error=_transport_error(exc, self.timeout), elapsed_ms=elapsed())
        try:
            data, body_error = await self._read(response, deadline)
        finally:
            await self._close(response)
        outcome, error = judge(response.status_code, response.reason_phrase, response.headers.get("location"),
                               body_error)
        return Attempt(outcome, response.status_code, error, excerpt(data, self.excerpt_bytes), elapsed(),
                       retry_after_seconds(response.headers.get("retry-after")), _peer(response))

    async def _read(self, response: httpx.Response, deadline: float) -> tuple[bytes, str]:
        """Up to max_response_bytes of the body, and why reading stopped early if it failed."""
        cap = self.max_response_bytes
        data = bytearray()
        if cap == 0:
            return b"", ""
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in response.aiter_raw():
                    data += chunk
                    if len(data) >= cap:
                        break
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return bytes(data[:cap]), "response body: " + _transport_error(exc, self.timeout)
        return bytes(data[:cap]), ""

    @staticmethod
    async def _close(response: httpx.Response) -> None:
        """Close the response; an unread rest closes its connection rather than being drained."""
        try:
            async with asyncio.timeout(1.0):
                await response.aclose()
        except (httpx.HTTPError, OSError, TimeoutError):
            pass


def _peer(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    if stream is None:
        return None
    try:
        peer = stream.get_extra_info("server_addr")
    except (AttributeError, KeyError, OSError):  # a backend that does not know: a nicety, not a need
        return None
    return str(peer[0]) if isinstance(peer, tuple) and peer else None
