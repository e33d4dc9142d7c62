"""The benchmark's processes: a bare sink, the daemon, the SMTP client, the sweep, a baseline.

Each entry point runs in a process of its own (multiprocessing, spawn) and
talks to the orchestrator over a Pipe with small dicts: it answers
``{"cmd": "status"}`` and stops on ``{"cmd": "stop"}``. Everything listens
on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pickle
import re
import sys
import threading
import time
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtpd.smtp import SMTP

# The modules a running daemon has imported: the baseline process imports the same. The sink and the
# client import none of them (they start faster and stay small).
DAEMON_MODULES = (
    "transferbot.runners.daemon", "transferbot.runners.sweeper", "transferbot.app.context", "transferbot.app.arrivals",
    "transferbot.app.replies", "transferbot.app.outbox", "transferbot.app.sweep",
    "transferbot.app.effects.mail", "transferbot.outbound.rendering", "transferbot.outbound.compose", "transferbot.runners.reader",
    "transferbot.inbound.reader.chain", "transferbot.inbound.reader.reading", "transferbot.inbound.senderauth", "transferbot.cli.logsetup",
    "apscheduler.schedulers.asyncio", "bench.world",
)

Message = tuple[str, list[str], bytes]  # (MAIL FROM, RCPT TOs, raw bytes), as bench.world makes them


def memory() -> dict[str, float]:
    """VmHWM (peak resident set) and VmRSS of this process, in MiB."""
    return read_memory(os.getpid())


def read_memory(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024
    return out


class _Commands:
    """Commands from the orchestrator, delivered into an event loop by a reader thread."""

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    message = {"cmd": "stop"}
                loop.call_soon_threadsafe(self.queue.put_nowait, message)
                if message.get("cmd") == "stop":
                    return

        threading.Thread(target=pump, name="commands", daemon=True).start()

    async def get(self) -> dict[str, Any]:
        return await self.queue.get()


def _quiet_stderr(log_path: str | None) -> None:
    if log_path:
        sys.stderr = open(log_path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - one log per run


# -- 1. the bare sink: 250 at once -------------------------------------------------------------

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


class BareHandler:
    """The ceiling: no parsing, no storing; every RCPT and every DATA answered 250 at once.

    As a relay for the daemon it can also note each message's Message-ID (a
    regular expression over the header), to count deliveries repeated.
    """

    def __init__(self, track_ids: bool = False) -> None:
        self.count = 0
        self.ids: set[bytes] | None = set() if track_ids else None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.count += 1
        if self.ids is not None:
            raw = envelope.original_content or b""
            end = raw.find(b"\r\n\r\n")
            found = _MESSAGE_ID.search(raw, 0, len(raw) if end < 0 else end + 2)
            self.ids.add(found.group(1) if found else b"#%d" % self.count)
        return "250 OK"

    def report(self) -> dict[str, Any]:
        return {"count": self.count, **({"unique": len(self.ids)} if self.ids is not None else {})}


def sink_proc(conn: Connection, log_path: str | None = None, track_ids: bool = False) -> None:
    _quiet_stderr(log_path)

    async def main() -> None:
        handler = BareHandler(track_ids)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="sink.localhost", enable_SMTPUTF8=True, data_size_limit=None,
                         decode_data=False, ident="bench-sink"),
            host="127.0.0.1", port=0)
        commands = _Commands(conn, loop)
        conn.send({"port": server.sockets[0].getsockname()[1], "pid": os.getpid()})
        while True:
            message = await commands.get()
            if message["cmd"] == "status":
                conn.send(handler.report())
            elif message["cmd"] == "stop":
                server.close()
                conn.send({**handler.report(), **memory()})
                return

    asyncio.run(main())


# -- 2/3/4/5. the daemon ---------------------------------------------------------------------

def daemon_proc(conn: Connection, url: str, sink_port: int | None, reader: bool = True,
                log_path: str | None = None, maildir: str | None = None, log_level: str = "INFO") -> None:
    """transferbot's Daemon as `transferbot serve` runs it (logging at INFO to a file)."""
    _quiet_stderr(log_path)
    from bench import world
    from transferbot.app.context import open_app
    from transferbot.cli.logsetup import configure_logging
    from transferbot.runners.daemon import Daemon

    configure_logging(log_level)

    async def main() -> None:
        # as `transferbot serve` opens it: the schema checked, not upgraded (the benchmark built it at head)
        app = open_app(world.config_for(url, sink_port=sink_port, maildir=Path(maildir) if maildir else None))
        # sender authentication as configured by default ("verify"), DNS answered from memory
        daemon = Daemon(app, resolver=world.bench_resolver())
        if not reader:  # the reader held: the edge alone stores what arrives
            async def held() -> None:
                while not daemon.reader.stopping:
                    await asyncio.sleep(0.1)

            daemon.reader.run = held  # type: ignore[method-assign]
        loop = asyncio.get_running_loop()
        commands = _Commands(conn, loop)
        t_start = time.monotonic()
        await daemon.start()
        conn.send({"port": daemon.port, "pid": os.getpid(), "t_start": t_start, "t_started": time.monotonic()})
        while True:
            message = await commands.get()
            if message["cmd"] == "status":
                conn.send({"sweeps": list(daemon.sweeps.recent), **memory()})
            elif message["cmd"] == "stop":
                before = memory()
                await daemon.stop(grace=10)
                app.store.close()
                conn.send({"sweeps": list(daemon.sweeps.recent), **before})
                return

    asyncio.run(main())


# -- the client: N messages over C connections (the same code for every scenario) --------------

async def send_all(ports: list[int], messages: list[Message], connections: int, timeout: float = 60.0,
                   go: asyncio.Future[None] | None = None, connect_in_timing: bool = False,
                   rate: float | None = None) -> dict[str, Any]:
    """Send every message once, each over whichever of C persistent connections is free.

    The connections are spread over ``ports`` in turn (several daemons). With ``rate``, message i
    is not sent before t0 + i/rate (paced); otherwise as fast as the server answers. ``acks`` has,
    for each message accepted, (its index, the wall-clock time.time() of its 250)."""
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=ports[i % len(ports)], timeout=timeout, start_tls=False)
               for i in range(connections)]
    if not connect_in_timing:
        await asyncio.gather(*(c.connect() for c in clients))
    if go is not None:
        await go
    t0 = time.monotonic()
    if connect_in_timing:
        await asyncio.gather(*(c.connect() for c in clients))
    cursor = iter(range(len(messages)))
    accepted = 0
    failures: list[str] = []
    latencies: list[float] = []
    acks: list[tuple[int, float]] = []

    async def worker(client: aiosmtplib.SMTP) -> None:
        nonlocal accepted
        for i in cursor:
            mail_from, rcpts, raw = messages[i]
            if rate:
                await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            started = time.monotonic()
            try:
                errors, _response = await client.sendmail(mail_from, rcpts, raw)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                failures.append(f"#{i}: {type(exc).__name__}: {exc}")
                if not client.is_connected:
                    await client.connect()
                continue
            latencies.append(time.monotonic() - started)
            if errors:
                failures.append(f"#{i}: refused {errors}")
            else:
                accepted += 1
                acks.append((i, time.time()))

    await asyncio.gather(*(worker(c) for c in clients))
    t1 = time.monotonic()
    for client in clients:
        try:
            await asyncio.wait_for(client.quit(), timeout=5)
        except Exception:  # noqa: BLE001
            client.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {"t0": t0, "t1": t1, "sent": len(messages), "accepted": accepted, "failed": len(failures),
            "failures": failures[:5], "p50_ms": pct(0.50) * 1000, "p99_ms": pct(0.99) * 1000, "acks": acks}


def client_proc(conn: Connection, ports: list[int], messages_path: str, connections: int,
                connect_in_timing: bool = False, rate: float | None = None, limit: int | None = None) -> None:
    """Connects C sessions, says ready, waits for go, sends, reports (times are time.monotonic()).

    ``limit``: only the first that many messages of the file."""
    messages: list[Message] = pickle.loads(Path(messages_path).read_bytes())  # noqa: S301 - our own file
    if limit is not None:
        messages = messages[:limit]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        go: asyncio.Future[None] = loop.create_future()
        commands = _Commands(conn, loop)

        async def wait_go() -> None:
            while True:
                message = await commands.get()
                if message["cmd"] == "go":
                    go.set_result(None)
                    return
                if message["cmd"] == "stop":
                    go.cancel()
                    return

        waiter = asyncio.create_task(wait_go())
        conn.send({"ready": True, "pid": os.getpid(), "count": len(messages)})
        try:
            result = await send_all(ports, messages, connections, go=go, connect_in_timing=connect_in_timing,
                                    rate=rate)
        except asyncio.CancelledError:
            return
        await waiter
        conn.send(result)

    asyncio.run(main())


# -- 5. the sweep, timed on its own -------------------------------------------------------------

def sweep_proc(conn: Connection, warm_url: str, url: str, now_iso: str) -> None:
    """Warm up on one copy (templates compiled, code paths run), then time the sweep on another."""
    import sqlalchemy as sa

    from bench import world
    from transferbot.app.context import open_app
    from transferbot.app.sweep import sweep

    now = datetime.fromisoformat(now_iso)
    out: dict[str, Any] = {}
    for label, db_url in (("warm", warm_url), ("timed", url)):
        app = open_app(world.config_for(db_url), upgrade=True)
        with app.store.read() as session:  # the connection is open before the clock starts
            session.execute(sa.text("SELECT 1"))
        started = time.perf_counter()
        changed = sweep(app, now)
        out[f"{label}_seconds"] = time.perf_counter() - started
        out[f"{label}_changed"] = changed
        if label == "timed":  # the next run with nothing due: what the daemon pays every interval
            started = time.perf_counter()
            out["idle_changed"] = sweep(app, now)
            out["idle_seconds"] = time.perf_counter() - started
        app.store.close()
    conn.send({**out, **memory()})


# -- a bare Python with the daemon's imports (for context on memory) -----------------------------

def baseline_proc(conn: Connection) -> None:
    for name in DAEMON_MODULES:
        importlib.import_module(name)
    conn.send({"pid": os.getpid(), **memory()})
    conn.recv()
