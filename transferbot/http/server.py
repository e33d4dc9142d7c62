"""uvicorn on the daemon's own event loop: started and stopped with the rest, never touching signals.

uvicorn's ``serve()`` installs handlers for SIGINT and SIGTERM (and raises them again when it ends);
the daemon owns those. So the server is driven through its public ``startup``/``main_loop``/
``shutdown`` steps on a socket we bind ourselves (port 0 picks a free one, which we can then log).

What a client may hold is bounded, since every connection holds a file descriptor the SMTP server and
the database need too: an idle kept-alive connection is closed after ``[http] keep_alive_seconds``
(uvicorn's own timer); a request must arrive whole, headers and body, within ``request_timeout_seconds``
of the connection opening or of the previous answer (uvicorn has no such timer: a connection that sends
nothing, or half a request line, would be held for ever); and a connection past ``max_connections`` is
answered 503 and closed at once. The protocol is uvicorn's h11 one, named rather than left to "auto", so
that these limits hold whether or not httptools is installed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import suppress
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from transferbot.config import HttpConfig

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: 33\r\nconnection: close\r\n\r\nThe request did not arrive whole.")
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 5\r\n"
        b"content-length: 35\r\nconnection: close\r\n\r\nToo many connections; retry later.\n")


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request to arrive whole, and a cap on connections.

    The deadline runs from the connection opening, and again from each answer sent, until the request's
    headers and body are in; a connection that misses it is answered 408 (or just closed, when it had sent
    nothing) and closed. Class attributes, set per server by :func:`bounded_protocol`.
    """

    request_timeout: float = 10.0
    max_connections: int = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._heard = False  # bytes of a request arrived since the deadline was set

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("HTTP: %d connections open, more than [http] max_connections = %d: one from %s refused",
                        len(self.connections), self.max_connections, self.client[0] if self.client else "-")
            transport.write(BUSY)
            transport.close()
            return
        self._wait_for_request()

    def data_received(self, data: bytes) -> None:
        self._heard = True
        super().data_received(data)
        self._settle()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start a pipelined request already received
        if not self.transport.is_closing():
            self._settle(answered=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _settle(self, answered: bool = False) -> None:
        """Stop the clock once the current request is in whole; start it again when the next is awaited."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.more_body:
            self._cancel()  # the application has the whole request
        elif (answered or self._deadline is None) and not self.transport.is_closing():
            self._wait_for_request()

    def _wait_for_request(self) -> None:
        self._cancel()
        self._heard = bool(self.conn.trailing_data[0])  # a pipelined request may have begun already
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        if self._heard and not answering:
            log.info("HTTP: a request from %s did not arrive whole within [http] request_timeout_seconds (%g s)",
                     self.client[0] if self.client else "-", self.request_timeout)
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def bounded_protocol(request_timeout: float, max_connections: int) -> type[BoundedH11Protocol]:
    return type("BoundedH11Protocol", (BoundedH11Protocol,),
                {"request_timeout": request_timeout, "max_connections": max_connections})


class HttpServer:
    def __init__(self, app: Any, config: HttpConfig) -> None:
        self.app, self.config = app, config
        self.host, self.requested_port = config.host, config.port
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def open_connections(self) -> int:
        return len(self._server.server_state.connections) if self._server is not None else 0

    async def start(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on connections whose socket says TCP,
        # and without it each keep-alive response waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        cfg = self.config
        # limit_concurrency: uvicorn answers 503 to a request once this many connections (its own included)
        # are open; one more than ours, since a connection past ours is refused before it asks anything.
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False, server_header=False,
                                proxy_headers=False, timeout_graceful_shutdown=10,
                                http=bounded_protocol(cfg.request_timeout_seconds, cfg.max_connections),
                                timeout_keep_alive=cfg.keep_alive_seconds,  # type: ignore[arg-type]
                                limit_concurrency=cfg.max_connections + 1)
        config.load()
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._server = server
        self._ticker = asyncio.create_task(server.main_loop(), name="http")
        return self.port

    async def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.should_exit = True
        if self._ticker is not None:
            with suppress(asyncio.CancelledError):
                await self._ticker
        await server.shutdown(sockets=[self._socket] if self._socket else None)
        self._server = None
