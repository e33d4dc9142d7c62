"""uvicorn on the daemon's own event loop: started and stopped with the rest, never touching signals.

uvicorn's ``serve()`` installs handlers for SIGINT and SIGTERM (and raises them again when it ends);
the daemon owns those. So the server is driven through its public ``startup``/``main_loop``/
``shutdown`` steps on a socket we bind ourselves (port 0 picks a free one, which we can then log).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from contextlib import suppress
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app, self.host, self.requested_port = app, host, port
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._ticker: asyncio.Task[None] | None = None

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
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False, server_header=False,
                                proxy_headers=False, timeout_graceful_shutdown=10)
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
