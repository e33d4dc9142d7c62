"""A webhook receiver for tests: a real HTTP server (uvicorn, 127.0.0.1, port 0) in a thread of its own,
recording every request and answering each path from a script (statuses in order, then 200)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook

from tests.helpers import wait_until


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what we answered

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Hooks:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.script: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def answer(self, path: str, *statuses: int) -> None:
        with self.lock:
            self.script[path] = list(statuses)

    def to(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        with self.lock:
            queue = self.script.get(path, [])
            status = queue.pop(0) if queue else 200
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.hits.append(Hit(path, headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


class Receiver:
    """uvicorn serving ``Hooks`` on 127.0.0.1, port 0."""

    def __init__(self) -> None:
        self.hooks = Hooks()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(self.hooks, lifespan="off", log_config=None, access_log=False,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, what="the webhook receiver to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def verified(secret: str, hit: Hit) -> dict[str, Any]:
    """The payload, as the Standard Webhooks reference library verifies it (raises if the signature is bad)."""
    return dict(Webhook(secret).verify(hit.body, hit.headers))
