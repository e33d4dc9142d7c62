"""The host names the HTTP server answers for, and how it names itself in its answers.

A request must name, in its Host header, one of ``[http] allowed_hosts`` or ``public_url``'s host; any
other is a 400 (a problem document under /v1, a plain page elsewhere) before anything else runs. A page
fetched under a name that is not ours is a forged link or DNS rebinding (a site of the attacker's whose
name resolves to the daemon's address), and anything built from that name would point at the attacker.
/healthz and /readyz answer whatever the Host: load balancers and orchestrators name a daemon by the
address they reach it at, and neither says anything that a rebinding page could use.

Redirects carry a path, never a scheme and host: the framework's own (a slash added to /ui, removed from
/v1/transfers/) are built from the request's Host and its scheme, and behind a TLS proxy the scheme is
http. When ``public_url`` is https, every answer carries Strict-Transport-Security, so that a browser that
has once reached the dashboard through the proxy never again sends its cookie over plain http.

Starlette's TrustedHostMiddleware answers every refusal as the same plain text, and its IPv6 parsing
(``[::1]:8080``) splits at the first colon; hence a few lines of our own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from transferbot.http.problems import problem

log = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz"})
HSTS = "max-age=31536000"  # a year; not includeSubDomains: other names under the domain are not ours to pin


def host_name(header: str) -> str | None:
    """The name a Host header gives, lower-case, without port or trailing dot; None when it is malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
    else:
        name, colon, port = value.partition(":")
        if colon and not port.isdigit():
            return None
    name = name.rstrip(".")
    return name if name and name.isascii() and all(c.isalnum() or c in ".-_:" for c in name) else None


def allows(patterns: Iterable[str], name: str | None) -> bool:
    """Whether a name (from :func:`host_name`) is one of the patterns: a name, "*.domain" (its subdomains), "*"."""
    if name is None:
        return False
    for pattern in patterns:
        if pattern == "*" or pattern == name or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def relative(location: str, host: str) -> str:
    """``location`` without scheme and host when it names the request's own host (as the framework's do)."""
    parts = urlsplit(location)
    if not parts.netloc or parts.netloc.lower() != host.strip().lower():
        return location
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


class HostGuard:
    """Refuses a request for another host; makes redirects relative; adds HSTS behind https."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str], hsts: bool) -> None:
        self.app, self.hosts, self.hsts = app, tuple(hosts), hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if scope["path"] not in PROBES and not allows(self.hosts, host_name(header)):
            log.warning("HTTP %s %s refused: Host %r is not one of [http] allowed_hosts or public_url's host",
                        scope["method"], scope["path"][:200], header[:100])
            await self._refuse(scope["path"])(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if self.hsts and "strict-transport-security" not in headers:
                    headers["Strict-Transport-Security"] = HSTS
                if 300 <= message["status"] < 400 and "location" in headers:
                    headers["Location"] = relative(headers["location"], header)
            await send(message)

        await self.app(scope, receive, named)

    def _refuse(self, path: str) -> Response:
        why = "this server does not answer for the host the request names (see [http] allowed_hosts)"
        headers = {"Connection": "close", "Cache-Control": "no-store"}
        if self.hsts:
            headers["Strict-Transport-Security"] = HSTS
        if path == "/v1" or path.startswith("/v1/"):
            return problem(400, f"unknown host: {why}", kind="unknown-host", headers=headers)
        return PlainTextResponse(f"400 Bad Request: {why}.\n", status_code=400,
                                 headers={**headers, "X-Content-Type-Options": "nosniff"})
