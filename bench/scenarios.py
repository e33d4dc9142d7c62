"""The benchmark's scenarios, report and command line (``python bench/run.py``).

Every scenario runs its server side in a process of its own and the same
client (a separate process, aiosmtplib over C persistent connections) sends
the same approval replies; the ratios compare rates measured in this run.
All sockets are on 127.0.0.1, port 0; every loop is bounded. See
bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import dbs, procs, world
from bench import spy as profile

# Issue 13's figures: (name, comparison, target, what it is). Every one is under "ratios" for each backend.
FIGURES: tuple[tuple[str, str, float, str], ...] = (
    ("accept_vs_sink", ">=", 0.7, "(2) edge, accepted durably / (1) bare sink"),
    ("decided_vs_sink", ">=", 0.3, "(3) read, authenticated, decided, notices queued / (1)"),
    ("notified_vs_sink", ">=", 0.15, "(3) ... and every notice delivered to the relay / (1)"),
    ("outbound_vs_plain", ">=", 0.9, "(4) daemon delivered / plain aiosmtplib loop"),
    ("sweep_ms_per_due", "<=", 2.0, "(5) sweep ms per due transfer, the larger of the two"),
    ("sweep_ms_per_due_1k", "<=", 2.0, "(5) sweep ms per due transfer, 1k open"),
    ("sweep_ms_per_due_100k", "<=", 2.0, "(5) sweep ms per due transfer, 100k open"),
    ("sweep_100k_vs_1k", "<=", 1.5, "(5) sweep s at 100k / at 1k"),
    ("p99_decided_ms", "<=", 500.0, "(6) 250 -> decision committed, p99, at half rate"),
    ("peak_rss_mib_100k", "<=", 120.0, "(5) daemon's peak RSS MiB, 100k open"),
)
TARGETS: dict[str, dict[str, Any]] = {name: {"op": op, "value": value} for name, op, value, _ in FIGURES}


@dataclass(frozen=True)
class Sizes:
    name: str
    transfers: int  # open transfers filed for the end-to-end world (each party replies once)
    connections: int  # client connections for the inbound scenarios
    scale: tuple[int, int]  # open transfers in the small and the large sweep database
    due: int  # transfers due at the sweep time, in both
    rounds: int  # the short scenarios (sink, edge, plain loop) run this many times; the median counts
    paced_seconds: float  # (6) the paced pass sends about this long (the first replies, at half the decided rate)
    multi_replies: int  # (7) replies per run with 1, 2 and 3 daemons (PostgreSQL), at most all of them


FULL = Sizes("full", transfers=600, connections=8, scale=(1_000, 100_000), due=100, rounds=3, paced_seconds=60,
             multi_replies=1000)
QUICK = Sizes("quick", transfers=60, connections=8, scale=(1_000, 10_000), due=20, rounds=1, paced_seconds=10,
              multi_replies=200)
SMOKE = Sizes("smoke", transfers=8, connections=4, scale=(200, 1_000), due=10, rounds=1, paced_seconds=2,
              multi_replies=30)
SCENARIOS = ("sink", "edge", "e2e", "paced", "outbound", "scale", "multi")


def median_of(rounds: int, run: Callable[[], dict[str, Any]], key: str = "per_s") -> dict[str, Any]:
    """Run a short scenario ``rounds`` times; the median run counts, all rates are kept."""
    runs = [run() for _ in range(rounds)]
    runs.sort(key=lambda r: r[key])
    return {**runs[len(runs) // 2], "rounds": [r[key] for r in runs]}


_T0 = time.monotonic()


def say(text: str) -> None:
    print(f"{time.monotonic() - _T0:6.1f}s {text}", file=sys.stderr, flush=True)


# -- child processes ---------------------------------------------------------------------

class Child:
    """A spawned process of ours with a Pipe; stopped by its own pid if it misbehaves."""

    ctx = mp.get_context("spawn")

    def __init__(self, target: Callable[..., None], *args: Any, name: str) -> None:
        self.name = name
        self.conn, child_conn = self.ctx.Pipe()
        # not daemonic: the daemon starts helper processes of its own ([outbound] render_processes)
        self.proc = self.ctx.Process(target=target, args=(child_conn, *args), name=name, daemon=False)
        self.proc.start()
        child_conn.close()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def recv(self, timeout: float = 60.0) -> dict[str, Any]:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.name}: no answer in {timeout:.0f}s")
        try:
            return self.conn.recv()
        except EOFError:
            raise RuntimeError(f"{self.name}: the process ended (exit code {self.proc.exitcode})") from None

    def send(self, **message: Any) -> None:
        self.conn.send(message)

    def request(self, cmd: str, timeout: float = 60.0) -> dict[str, Any]:
        self.send(cmd=cmd)
        return self.recv(timeout)

    def stop(self, timeout: float = 60.0) -> dict[str, Any]:
        try:
            answer = self.request("stop", timeout) if self.proc.is_alive() else {}
        finally:
            self.close()
        return answer

    def close(self) -> None:
        started = time.monotonic()
        self.proc.join(10)
        if self.proc.is_alive():
            os.kill(self.pid, signal.SIGTERM)
            self.proc.join(10)
        if os.environ.get("BENCH_DEBUG"):
            say(f"  {self.name} ended {time.monotonic() - started:.2f}s after it was asked")
        self.conn.close()


class Children:
    """Every child of a scenario, closed however the scenario ends."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def start(self, target: Callable[..., None], *args: Any, name: str) -> Child:
        child = Child(target, *args, name=name)
        self.started.append(child)
        return child

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        for child in reversed(self.started):
            if child.proc.is_alive():
                try:
                    child.send(cmd="stop")
                except OSError:
                    pass
            child.close()


def start_sink(children: Children, work: Path, name: str, track_ids: bool = False) -> tuple[Child, int]:
    sink = children.start(procs.sink_proc, str(work / f"{name}.log"), track_ids, name=name)
    return sink, sink.recv(30)["port"]


def start_daemon(children: Children, work: Path, url: str, sink_port: int | None, *, reader: bool = True,
                 name: str = "daemon") -> tuple[Child, dict[str, Any]]:
    """The daemon in a process of its own; its log is WORK/NAME.log (read by log_problems)."""
    log = work / f"{name}.log"
    daemon = children.start(procs.daemon_proc, url, sink_port, reader, str(log), str(work / f"{name}-maildir"),
                            name=name)
    try:
        return daemon, daemon.recv(120)
    except (RuntimeError, TimeoutError) as exc:  # say why: the end of its log
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:] if log.exists() else []
        raise RuntimeError(f"{exc}; the end of {log}:\n" + "\n".join(tail)) from None


def log_problems(work: Path, *names: str) -> dict[str, Any]:
    """What the daemons logged above INFO during a scenario: counts, and the distinct problems (first few)."""
    counts = {"ERROR": 0, "WARNING": 0}
    seen: dict[str, int] = {}
    for name in names:
        _log_problems(work / f"{name}.log", counts, seen)
    return {**counts, "kinds": sorted(seen.items(), key=lambda kv: -kv[1])[:5]}


def _log_problems(path: Path, counts: dict[str, int], seen: dict[str, int]) -> None:
    if path.exists():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines):
            level = line[24:31].strip() if len(line) > 31 else ""
            if level not in counts:
                continue
            counts[level] += 1
            # the exception that follows, if any, names the problem better than the message
            cause = next((x for x in lines[i + 1:i + 60] if x and not x.startswith((" ", "Traceback", "The above"))
                          and not x[:4].isdigit() and ("Error" in x or "Exception" in x)), "")
            text = line[32:].split(":", 1)[0] + ": " + (cause or line[32:])[:160]
            key = re.sub(r"#\d+|<[^>]*>", "", text)
            seen[key] = seen.get(key, 0) + 1


def run_client(children: Children, port: int | list[int], messages: Path, connections: int, *,
               connect_in_timing: bool = False, timeout: float = 900.0, rate: float | None = None,
               limit: int | None = None) -> dict[str, Any]:
    """The client process: connects (spread over the ports given), is told go, sends everything, reports."""
    ports = port if isinstance(port, list) else [port]
    client = children.start(procs.client_proc, ports, str(messages), connections, connect_in_timing, rate, limit,
                            name="client")
    ready = client.recv(120)
    assert ready.get("ready"), ready
    client.send(cmd="go")
    result = client.recv(timeout)
    client.close()
    return result


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Poll until true; returns time.monotonic() when it was first seen true. Bounded."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- the scenarios ---------------------------------------------------------------------------

def scenario_sink(work: Path, replies: Path, n: int, connections: int) -> dict[str, Any]:
    say(f"[1] bare aiosmtpd sink: {n} messages over {connections} connections")
    with Children() as children:
        sink, port = start_sink(children, work, "sink-1")
        result = run_client(children, port, replies, connections)
        stopped = sink.stop()
    elapsed = result["t1"] - result["t0"]
    assert result["accepted"] == n and stopped["count"] == n, (result, stopped)
    return {"accepted": result["accepted"], "seconds": elapsed, "per_s": n / elapsed,
            "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"]}


def scenario_edge(work: Path, backend: dbs.Backend, source: str, replies: Path, n: int, connections: int,
                  spy: profile.Spy | None = None) -> dict[str, Any]:
    say(f"[2] {backend.name}: inbound edge (reader held): {n} messages over {connections} connections")
    url = backend.clone(source, "edge")
    name = f"daemon-edge-{backend.name}"
    try:
        with Children() as children:
            daemon, started = start_daemon(children, work, url, None, reader=False, name=name)
            if spy:
                spy.attach(started["pid"], "edge")
            try:
                result = run_client(children, started["port"], replies, connections)
            finally:
                if spy:
                    spy.detach()
            stopped = daemon.stop()
        probe = world.Probe(url)
        try:
            stored = probe.message_ids()
        finally:
            probe.close()
    finally:
        backend.drop(url)
    elapsed = result["t1"] - result["t0"]
    wanted = world.message_ids(world.load_messages(replies))
    missing = len(wanted - stored)
    if result["accepted"] != n or missing:
        raise AssertionError(f"edge: {result['accepted']} of {n} accepted, {missing} accepted but not stored; "
                             f"{result['failures']}")
    return {"accepted": result["accepted"], "stored": len(wanted & stored), "seconds": elapsed, "per_s": n / elapsed,
            "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "rss_mib": stopped.get("VmHWM"),
            "log": log_problems(work, name)}


def scenario_e2e(work: Path, backend: dbs.Backend, source: str, replies: Path, n: int, connections: int,
                 spy: profile.Spy | None = None, *, daemons: int = 1, rate: float | None = None,
                 label: str = "e2e") -> dict[str, Any]:
    """The whole daemon (or ``daemons`` of them sharing the database) on ``n`` replies.

    Times, from the client's first message: ``decided`` until the database shows every reply read
    and decided (its decision and the notices it causes are one transaction, so they are queued
    then too); ``notified`` until the relay sink has received every notice those replies caused.
    With ``rate`` the client is paced, and ``decided_latency`` gives, per reply, the time from its
    250 (client, wall clock) to the ``read_at`` the daemon recorded when it decided it."""
    pace = f", paced at {rate:.1f}/s" if rate else ""
    spread = f" spread over {daemons} daemons" if daemons > 1 else ""
    say(f"[3] {backend.name}: {label}: {n} approval replies over {connections} connections{spread}{pace}")
    url = backend.clone(source, label)
    names = [f"daemon-{label}-{backend.name}-{i}" for i in range(daemons)]
    try:
        with Children() as children:
            sink, sink_port = start_sink(children, work, f"sink-{label}", track_ids=True)
            started = [start_daemon(children, work, url, sink_port, name=name) for name in names]
            probe = world.Probe(url)
            try:
                if spy:
                    spy.attach(started[0][1]["pid"], "e2e")
                watch = Watcher(url) if rate else None
                try:
                    result = run_client(children, [s[1]["port"] for s in started], replies, connections,
                                        rate=rate, limit=n)
                    accepted = result["accepted"]
                    t_decided = wait_for("every accepted reply read and decided", lambda: probe.read() >= accepted,
                                         timeout=120 + n * 0.5)
                    seen = watch.stop() if watch else {}
                    notices = probe.scalar("SELECT count(*) FROM outboundmessage WHERE kind != 'confirmation'")
                    t_notified = wait_for("every notice delivered to the relay",
                                          lambda: sink.request("status")["unique"] >= notices, timeout=120 + n * 0.5)
                finally:
                    if spy:
                        spy.detach()
                outcomes = probe.outcomes()
                decided = probe.decided()
                read_at: dict[str, Any] = {str(k): v for k, v in probe.con.execute(
                    sa.text("SELECT message_id, read_at FROM inboundmessage"))}
                stopped = [d.stop() for d, _ in started]
                relay = sink.stop()
                sent = probe.scalar("SELECT count(*) FROM outboundmessage WHERE status = 'sent'"
                                    " AND kind != 'confirmation'")
            finally:
                probe.close()
    finally:
        backend.drop(url)
    if decided != n:
        raise AssertionError(f"{label}: {decided} of {n} replies approved; outcomes {outcomes}")
    decided_s = t_decided - result["t0"]
    notified_s = t_notified - result["t0"]
    accept = result["t1"] - result["t0"]
    out = {"replies": n, "daemons": daemons, "decided": decided, "seconds": decided_s, "per_s": n / decided_s,
           "notified_seconds": notified_s, "notified_per_s": n / notified_s, "notices": notices,
           "notices_per_reply": notices / n, "accept_seconds": accept, "accepted_per_s": n / accept,
           "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"], "outcomes": outcomes,
           "rss_mib": [s.get("VmHWM") for s in stopped],
           # a delivery whose result could not be written stays queued and is sent again (same Message-ID)
           "sink_received": relay["count"], "sink_unique": relay["unique"], "outbox_sent": sent,
           "sent_twice": relay["count"] - relay["unique"], "delivered_not_recorded": relay["unique"] - sent,
           "log": log_problems(work, *names)}
    if rate:
        out["rate"] = rate
        out["decided_latency"] = decided_latency(replies, result["acks"], read_at)
        # a cross-check: when the benchmark first saw each decision committed (polling every 20 ms)
        out["decided_seen_latency"] = decided_latency(replies, result["acks"], seen)
    return out


class Watcher:
    """Polls (every 20 ms, in a thread) which replies are read, noting the wall-clock time each is first seen
    committed: an upper bound of the commit time, within the poll interval. Bounded by stop() or 30 minutes."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url, self.interval = url, interval
        self.seen: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="watcher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        probe = world.Probe(self.url)
        deadline = time.monotonic() + 1800
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                rows = probe.con.execute(sa.text("SELECT message_id FROM inboundmessage WHERE state != 'new'"))
                at = time.time()
                for (message_id,) in rows:
                    self.seen.setdefault(str(message_id), at)
                self.stopping.wait(self.interval)
        finally:
            probe.close()

    def stop(self) -> dict[str, Any]:
        self.stopping.set()
        self.thread.join(30)
        return {k: datetime.fromtimestamp(v, UTC) for k, v in self.seen.items()}


def decided_latency(replies: Path, acks: list[tuple[int, float]], read_at: dict[str, Any]) -> dict[str, Any]:
    """Per reply: from its 250 (client wall clock) to its read_at (the daemon's clock when it decided it)."""
    messages = world.load_messages(replies)
    lat: list[float] = []
    for i, acked in acks:
        when = read_at.get(world.message_id_of(messages[i][2]))
        if when is None:
            continue
        if isinstance(when, str):  # SQLite through text(): naive UTC text
            when = datetime.fromisoformat(when)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        lat.append((when.timestamp() - acked) * 1000)
    lat.sort()

    def pct(p: float) -> float | None:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else None

    return {"count": len(lat), "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
            "max_ms": lat[-1] if lat else None, "min_ms": lat[0] if lat else None}


def scenario_outbound(work: Path, backend: dbs.Backend, source: str, messages: Path, n: int, rounds: int = 1,
                      spy: profile.Spy | None = None) -> dict[str, Any]:
    connections = world.config_for(source).outbound.connections
    say(f"[4] {backend.name}: outbound: {n} queued confirmations over {connections} connections,"
        " daemon vs a plain aiosmtplib loop")
    url = backend.clone(source, "outbound")
    name = f"daemon-outbound-{backend.name}"
    try:
        with Children() as children:
            sink, sink_port = start_sink(children, work, "sink-4a", track_ids=True)
            daemon, started = start_daemon(children, work, url, sink_port, name=name)
            if spy:
                spy.attach(started["pid"], "outbound")
            probe = world.Probe(url)
            try:
                t_done = wait_for("every confirmation sent", lambda: probe.sent() >= n, timeout=60 + n * 0.2)
            finally:
                if spy:
                    spy.detach()
                probe.close()
            daemon.stop()
            relay = sink.stop()
            got = relay["unique"]
    finally:
        backend.drop(url)
    elapsed = t_done - started["t_start"]
    if spy:
        return {"seconds": elapsed, "per_s": n / elapsed}

    def plain_loop() -> dict[str, Any]:
        with Children() as children:
            sink, sink_port = start_sink(children, work, "sink-4b")
            plain = run_client(children, sink_port, messages, connections, connect_in_timing=True)
            plain_got = sink.stop()["count"]
        if plain["accepted"] != n or plain_got != n:
            raise AssertionError(f"outbound: the plain loop's sink got {plain_got} of {n}; {plain['failures']}")
        return {"seconds": plain["t1"] - plain["t0"], "per_s": n / (plain["t1"] - plain["t0"])}

    plain = median_of(rounds, plain_loop)
    if got < n:
        raise AssertionError(f"outbound: the sink got {got} of {n} from the daemon")
    return {"messages": n, "connections": connections, "seconds": elapsed, "per_s": n / elapsed,
            "plain_seconds": plain["seconds"], "plain_per_s": plain["per_s"], "plain_rounds": plain["rounds"],
            "sink_received": relay["count"], "sent_twice": relay["count"] - relay["unique"],
            "log": log_problems(work, name)}


def scenario_scale(work: Path, backend: dbs.Backend, sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    now = datetime.now(UTC)
    with Children() as children:
        base = children.start(procs.baseline_proc, name="baseline")
        baseline = base.recv(60)
        base.send(cmd="stop")
    out["baseline_rss_mib"] = baseline["VmHWM"]
    for n in sizes.scale:
        say(f"[5] {backend.name}: scale: {n} open transfers, {sizes.due} due; building the database")
        built = world.build_scale_db(backend.new(f"scale-{n}"), n, sizes.due, now)
        if backend.postgres:
            backend.analyze(built.url)
        size = backend.size_bytes(built.url)
        warm = backend.clone(built.url, f"scale-{n}-warm")
        rss_db = backend.clone(built.url, f"scale-{n}-daemon")
        name = f"daemon-{n}-{backend.name}"
        try:
            with Children() as children:
                timing = children.start(procs.sweep_proc, warm, built.url, now.isoformat(), name="sweep")
                swept = timing.recv(900)
            say(f"[5] {backend.name}: scale: {n} open: daemon start-up and its first sweep, then its peak memory")
            with Children() as children:
                sink, sink_port = start_sink(children, work, f"sink-5-{n}", track_ids=True)
                daemon, started = start_daemon(children, work, rss_db, sink_port, name=name)
                def swept_once(d: Child = daemon) -> bool:
                    return bool(d.request("status")["sweeps"])

                wait_for("the start-up sweep", swept_once, timeout=600, interval=0.2)
                probe = world.Probe(rss_db)
                try:
                    def drained(p: world.Probe = probe) -> bool:
                        return bool(p.queued() == 0)

                    wait_for("the outbox to drain", drained, timeout=600, interval=0.2)
                    time.sleep(1.0)  # settle: the dispatcher and reader go idle
                    status = daemon.request("status")
                    memory = procs.read_memory(started["pid"])
                    daemon.stop()
                    relay = sink.stop()
                    sent = probe.sent()
                finally:
                    probe.close()
        finally:
            for url in (warm, rss_db, built.url):
                backend.drop(url)
        out[str(n)] = {"open": n, "due": sizes.due, "build_seconds": built.seconds, "db_mib": size / 2**20,
                       "sweep_seconds": swept["timed_seconds"], "sweep_changed": swept["timed_changed"],
                       "sweep_warmup_seconds": swept["warm_seconds"], "sweep_idle_seconds": swept["idle_seconds"],
                       "sweep_idle_changed": swept["idle_changed"],
                       "daemon_startup_sweep_seconds": status["sweeps"][0][0],
                       "daemon_peak_rss_mib": memory["VmHWM"], "daemon_rss_mib": memory["VmRSS"],
                       "daemon_mail_sent": sent, "sink_received": relay["count"],
                       "sent_twice": relay["count"] - relay["unique"],
                       "log": log_problems(work, name)}
    return out


# -- report -------------------------------------------------------------------------------------

def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _get(results: dict[str, Any], *path: str) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def meets(name: str, value: float | None) -> bool | None:
    if value is None:
        return None
    target = TARGETS[name]
    return value >= target["value"] if target["op"] == ">=" else value <= target["value"]


def report(results: dict[str, Any], sizes: Sizes) -> dict[str, Any]:
    """One backend's figures: ``ratios`` (every figure of issue 13), ``rates``, ``meets_target``, ``details``."""
    small, large = (str(n) for n in sizes.scale)
    g = lambda *path: _get(results, *path)  # noqa: E731
    rates = {
        "sink_accepted_per_s": g("sink", "per_s"), "edge_accepted_per_s": g("edge", "per_s"),
        "e2e_accepted_per_s": g("e2e", "accepted_per_s"), "e2e_decided_per_s": g("e2e", "per_s"),
        "e2e_notified_per_s": g("e2e", "notified_per_s"), "paced_rate_per_s": g("paced", "rate"),
        "outbound_sent_per_s": g("outbound", "per_s"), "plain_sent_per_s": g("outbound", "plain_per_s"),
        "sweep_seconds_1k": g("scale", small, "sweep_seconds"), "sweep_seconds_100k": g("scale", large, "sweep_seconds"),
    }
    for d in ("1", "2", "3"):
        rates[f"decided_per_s_{d}_daemons"] = g("multi", d, "per_s")
    due = sizes.due
    per_due = {key: None if rates[f"sweep_seconds_{key}"] is None else rates[f"sweep_seconds_{key}"] / due * 1000
               for key in ("1k", "100k")}
    known = [v for v in per_due.values() if v is not None]
    ratios = {
        "accept_vs_sink": ratio(rates["edge_accepted_per_s"], rates["sink_accepted_per_s"]),
        "decided_vs_sink": ratio(rates["e2e_decided_per_s"], rates["sink_accepted_per_s"]),
        "notified_vs_sink": ratio(rates["e2e_notified_per_s"], rates["sink_accepted_per_s"]),
        "outbound_vs_plain": ratio(rates["outbound_sent_per_s"], rates["plain_sent_per_s"]),
        "sweep_ms_per_due": max(known) if len(known) == 2 else None,
        "sweep_ms_per_due_1k": per_due["1k"],
        "sweep_ms_per_due_100k": per_due["100k"],
        "sweep_100k_vs_1k": ratio(rates["sweep_seconds_100k"], rates["sweep_seconds_1k"]),
        "p99_decided_ms": g("paced", "decided_latency", "p99_ms"),
        "peak_rss_mib_100k": g("scale", large, "daemon_peak_rss_mib"),
    }
    info = {
        # no target: with nothing due, the sweep should cost the same at 100k as at 1k
        "sweep_idle_100k_vs_1k": ratio(g("scale", large, "sweep_idle_seconds"), g("scale", small, "sweep_idle_seconds")),
        "decided_2_vs_1_daemons": ratio(rates["decided_per_s_2_daemons"], rates["decided_per_s_1_daemons"]),
        "decided_3_vs_1_daemons": ratio(rates["decided_per_s_3_daemons"], rates["decided_per_s_1_daemons"]),
        "p50_decided_ms": g("paced", "decided_latency", "p50_ms"),
        "p99_decided_seen_ms": g("paced", "decided_seen_latency", "p99_ms"),
        "notices_per_reply": g("e2e", "notices_per_reply"),
        "baseline_rss_mib": g("scale", "baseline_rss_mib"),
    }
    return {
        "ratios": ratios, "rates": rates, "info": info,
        "meets_target": {name: meets(name, value) for name, value in ratios.items()},
        "sizes": {"name": sizes.name, "transfers": sizes.transfers, "replies": results["replies"],
                  "connections": sizes.connections, "confirmations": g("world", "confirmations"),
                  "outbound_connections": g("outbound", "connections"), "scale_open": list(sizes.scale),
                  "scale_due": sizes.due, "paced_replies": g("paced", "replies"),
                  "multi_replies": g("multi", "1", "replies")},
        "details": {k: results[k] for k in ("world", "sink", "edge", "e2e", "paced", "multi", "outbound", "scale")
                    if k in results},
        "load_average_before": results.get("load_before"), "load_average_after": results.get("load_after"),
    }


def combine(outs: dict[str, Any], sizes: Sizes, load_before: tuple[float, ...], seconds: float) -> dict[str, Any]:
    """The JSON document: each backend's report under ``backends``, and its figures again under ``ratios``."""
    return {"backends": outs, "ratios": {name: one["ratios"] for name, one in outs.items()},
            "targets": TARGETS, "sizes": sizes.name, "quick": sizes.name != "full", "seconds": seconds,
            "sender_auth": "off" if os.environ.get("BENCH_SENDER_AUTH_OFF") else "verify",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                        "load_average_before": load_before, "load_average_after": os.getloadavg()}}


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_all(out: dict[str, Any], sizes: Sizes) -> str:
    """The figures of every backend side by side, then the rates they come from."""
    names = list(out["backends"])
    backends = [out["backends"][name] for name in names]
    mark = {True: "ok", False: "MISSED", None: "-"}
    first = backends[0]["sizes"] if backends else {}
    lines = [f"transferbot benchmark ({sizes.name}): {first.get('replies')} DKIM-signed replies to {sizes.transfers}"
             f" open transfers over {sizes.connections} connections; {first.get('confirmations')} confirmations;"
             f" sweep with {sizes.due} due at {sizes.scale[0]} and {sizes.scale[1]} open;"
             f" sender authentication {out.get('sender_auth', 'verify')}", ""]
    col = 18
    lines.append(f"  {'figure':<24} {'target':>8}  " + "".join(f"{n:>{col}}" for n in names))
    for name, op, value, what in FIGURES:
        label = name
        cells = []
        for one in backends:
            v = one["ratios"].get(name)
            fmt = ".1f" if name in ("p99_decided_ms", "peak_rss_mib_100k") else ".2f"
            cells.append(f"{_num(v, fmt) + ' ' + mark[one['meets_target'].get(name)]:>{col}}")
        lines.append(f"  {label:<24} {op + ' ' + format(value, 'g'):>8}  " + "".join(cells) + f"   {what}")
    lines += ["", f"  {'rate / measure':<33}  " + "".join(f"{n:>{col}}" for n in names)]

    def row(label: str, get: Callable[[dict[str, Any]], Any], fmt: str = ".0f", unit: str = "/s") -> None:
        values = [get(one) for one in backends]
        if all(v is None for v in values):
            return
        lines.append(f"  {label:<33}  " + "".join(f"{(_num(v, fmt) + unit) if v is not None else '-':>{col}}"
                                                   for v in values))

    r = lambda key: (lambda one: one["rates"].get(key))  # noqa: E731
    d = lambda *path: (lambda one: _get(one["details"], *path))  # noqa: E731
    row("1 bare aiosmtpd sink, accepted", r("sink_accepted_per_s"))
    row("2 edge, accepted durably", r("edge_accepted_per_s"))
    row("  edge p99 ms (client)", d("edge", "p99_ms"), ".1f", "")
    row("3 e2e, accepted (reader running)", r("e2e_accepted_per_s"))
    row("3 e2e, decided (notices queued)", r("e2e_decided_per_s"))
    row("3 e2e, notified (relay has all)", r("e2e_notified_per_s"))
    row("  notices per reply", d("e2e", "notices_per_reply"), ".2f", "")
    row("4 outbound, daemon delivered", r("outbound_sent_per_s"))
    row("4 outbound, plain aiosmtplib loop", r("plain_sent_per_s"))
    row("6 paced at (half of decided)", r("paced_rate_per_s"), ".1f")
    row("  250 -> decided p50 ms", d("paced", "decided_latency", "p50_ms"), ".1f", "")
    row("  250 -> decided p99 ms", d("paced", "decided_latency", "p99_ms"), ".1f", "")
    row("  250 -> seen committed p99 ms", d("paced", "decided_seen_latency", "p99_ms"), ".1f", "")
    for k in ("1", "2", "3"):
        row(f"7 decided, {k} daemon{'s' if k != '1' else ''} (info)", r(f"decided_per_s_{k}_daemons"), ".1f")
    for n in sizes.scale:
        tag = f"{n // 1000}k" if n >= 1000 else str(n)
        row(f"5 {tag} open: sweep s ({sizes.due} due)", d("scale", str(n), "sweep_seconds"), ".3f", "")
        row(f"5 {tag} open: idle sweep s", d("scale", str(n), "sweep_idle_seconds"), ".3f", "")
        row(f"5 {tag} open: daemon start-up sweep s", d("scale", str(n), "daemon_startup_sweep_seconds"), ".3f", "")
        row(f"5 {tag} open: daemon peak RSS MiB", d("scale", str(n), "daemon_peak_rss_mib"), ".1f", "")
        row(f"5 {tag} open: database MiB", d("scale", str(n), "db_mib"), ".1f", "")
    row("5 bare python, same imports, MiB", d("scale", "baseline_rss_mib"), ".1f", "")
    for name, one in zip(names, backends, strict=True):
        lines += _problems(name, one, sizes)
    if sizes.name != "full":
        lines.append(f"\n  {sizes.name}: small counts; the large scale point is {sizes.scale[1]} open transfers, not"
                     " 100,000 (the figures keep their names)")
    m = out["machine"]
    per = ", ".join(f"{name} {_num((one.get('load_average_before') or [None])[0], '.2f')}"
                    f" -> {_num((one.get('load_average_after') or [None])[0], '.2f')}"
                    for name, one in zip(names, backends, strict=True))
    lines.append(f"  1-minute load average: before {m['load_average_before'][0]:.2f}, after"
                 f" {m['load_average_after'][0]:.2f} on {m['cpus']} CPUs ({per}); other work on the machine skews"
                 " every rate")
    return "\n".join(lines)


def _problems(name: str, one: dict[str, Any], sizes: Sizes) -> list[str]:
    """Anything odd the daemons showed: repeated deliveries, warnings and errors in their logs."""
    d = one["details"]
    lines = []
    places: list[tuple[str, tuple[str, ...]]] = [(k, (k,)) for k in ("edge", "e2e", "paced", "outbound")]
    places += [(f"multi {k}", ("multi", k)) for k in ("1", "2", "3")]
    places += [(f"scale {n}", ("scale", str(n))) for n in sizes.scale]
    for label, path in places:
        detail = _get(d, *path)
        if not detail:
            continue
        if detail.get("sent_twice"):
            lines.append(f"  ({name}, {label}) {detail['sent_twice']} messages reached the relay twice, same"
                         " Message-ID (a delivery whose result could not be written was sent again)")
        log = detail.get("log")
        if log and (log["ERROR"] or log["WARNING"]):
            lines.append(f"  ({name}, {label}) the daemon logged {log['ERROR']} errors, {log['WARNING']} warnings: "
                         + "; ".join(f"{count}x {kind}" for kind, count in log["kinds"][:3]))
    if lines:
        lines.insert(0, "")
    return lines


# -- main ----------------------------------------------------------------------------------------

def run_backend(backend: dbs.Backend, work: Path, sizes: Sizes, only: set[str],
                spy: profile.Spy | None) -> dict[str, Any]:
    """Every scenario on one backend: its own world (filed the normal way), its own replies."""
    started = time.monotonic()
    say(f"== {backend.name}: filing {sizes.transfers} transfers (confirmations queued) ...")
    built = world.build_world(backend.new("world-queued"), sizes.transfers)
    replied = backend.clone(built.url, "world-replies")
    world.mark_confirmations_sent(replied)
    replies = world.approval_replies(replied)
    replies_path = world.save_messages(replies, work / f"replies-{backend.name}.pkl")
    outbound_path = world.save_messages(world.queued_messages(built.url), work / f"outbound-{backend.name}.pkl")
    n = len(replies)
    say(f"  {built.transfers} transfers, {n} replies (DKIM-signed), {built.confirmations} confirmations queued"
        f" ({time.monotonic() - started:.1f}s)")
    results: dict[str, Any] = {
        "replies": n, "load_before": os.getloadavg(),
        "world": {"transfers": built.transfers, "confirmations": built.confirmations,
                  "recipients": built.recipients, "build_seconds": built.seconds,
                  "reply_bytes_mean": sum(len(m[2]) for m in replies) / max(1, n)},
    }
    if "sink" in only:
        results["sink"] = median_of(sizes.rounds, lambda: scenario_sink(work, replies_path, n, sizes.connections))
    if "edge" in only:
        results["edge"] = median_of(sizes.rounds, lambda: scenario_edge(work, backend, replied, replies_path, n,
                                                                         sizes.connections))
    if "e2e" in only:
        results["e2e"] = scenario_e2e(work, backend, replied, replies_path, n, sizes.connections)
        if "paced" in only:  # (6) at half the rate the daemon sustained in (3)
            rate = results["e2e"]["per_s"] / 2
            k = max(10, min(n, round(rate * sizes.paced_seconds)))
            results["paced"] = scenario_e2e(work, backend, replied, replies_path, k, sizes.connections, rate=rate,
                                            label="paced")
    if "multi" in only and backend.postgres:  # (7) info: 1, 2 and 3 daemons sharing the database
        k = min(n, sizes.multi_replies)
        results["multi"] = {str(d): scenario_e2e(work, backend, replied, replies_path, k, sizes.connections,
                                                 daemons=d, label=f"multi{d}") for d in (1, 2, 3)}
    if "outbound" in only:
        results["outbound"] = scenario_outbound(work, backend, built.url, outbound_path, built.confirmations,
                                                sizes.rounds)
    if "scale" in only:
        results["scale"] = scenario_scale(work, backend, sizes)
    results["load_after"] = os.getloadavg()
    out = report(results, sizes)
    if spy is not None:
        say(f"profiling ({backend.name}): (2), (3) and (4) again with py-spy attached to the daemon")
        if "edge" in only:
            scenario_edge(work, backend, replied, replies_path, n, sizes.connections, spy=spy)
        if "e2e" in only:
            scenario_e2e(work, backend, replied, replies_path, n, sizes.connections, spy=spy)
        if "outbound" in only:
            scenario_outbound(work, backend, built.url, outbound_path, built.confirmations, spy=spy)
        out["profile"] = spy.summaries()
    out["seconds"] = time.monotonic() - started
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description="transferbot's benchmark (issue 13)")
    parser.add_argument("--quick", action="store_true", help="smaller counts (a check in a few minutes)")
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest counts, for the test suite: every figure computed, none of them meaningful")
    parser.add_argument("--database", default="both", metavar="sqlite|postgresql|both|URL",
                        help="which backend(s) to measure (default: both); a postgresql:// URL measures PostgreSQL"
                             " on that server (as --postgres-url)")
    parser.add_argument("--postgres-url", default=dbs.postgres_url_default(), metavar="URL",
                        help="the PostgreSQL server (a database on it to connect to first); the benchmark makes and"
                             " drops databases of its own there (default: $TRANSFERBOT_BENCH_POSTGRES_URL or"
                             f" {dbs.DEFAULT_POSTGRES_URL})")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--profile", metavar="DIR",
                        help="also profile the daemon (py-spy) during extra runs of (2), (3) and (4); raw stacks in DIR")
    parser.add_argument("--workdir", metavar="DIR", help="where the databases go (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (SQLite databases, logs)")
    parser.add_argument("--synchronous", choices=["full", "normal"],
                        help="[database] synchronous for the daemon on SQLite (default: transferbot's default, full)")
    parser.add_argument("--sender-auth", choices=["verify", "off"], default="verify",
                        help="the daemon's [inbound] sender_auth (default: verify, as transferbot's default; off"
                             " measures what authentication costs)")
    parser.add_argument("--transfers", type=int, help="open transfers in the end-to-end world (overrides the size)")
    parser.add_argument("--connections", type=int, help="client connections for the inbound scenarios")
    parser.add_argument("--only", metavar="LIST", default=",".join(SCENARIOS),
                        help=f"run only these scenarios (comma-separated: {', '.join(SCENARIOS)})")
    args = parser.parse_args(argv)
    if "://" in args.database and args.database.startswith("postgresql"):
        args.postgres_url, args.database = args.database, "postgresql"
    if args.database not in ("sqlite", "postgresql", "both"):
        parser.error(f"--database: {args.database!r} is not sqlite, postgresql, both or a postgresql:// URL")
    if args.synchronous:
        os.environ["BENCH_SYNCHRONOUS"] = args.synchronous
    if args.sender_auth == "off":
        os.environ["BENCH_SENDER_AUTH_OFF"] = "1"  # inherited by every process the benchmark starts
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.transfers or args.connections:
        sizes = replace(sizes, transfers=args.transfers or sizes.transfers,
                        connections=args.connections or sizes.connections)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if only - set(SCENARIOS):
        parser.error(f"--only: unknown scenario {', '.join(sorted(only - set(SCENARIOS)))}")
    names = list(dbs.BACKENDS) if args.database == "both" else [args.database]
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="transferbot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    spy = profile.Spy(Path(args.profile)) if args.profile else None
    if spy is not None and not spy.available():
        say("--profile: py-spy is not installed (pip install py-spy); skipping the profiles")
        spy = None
    started = time.monotonic()
    load_before = os.getloadavg()
    outs: dict[str, Any] = {}
    say(f"work folder {work}; backends: {', '.join(names)}")
    try:
        for name in names:
            backend = dbs.Backend(name, work, args.postgres_url)
            backend.check()
            try:
                outs[name] = run_backend(backend, work, sizes, only, spy)
            finally:
                backend.close()
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            say(f"kept {work}")
    out = combine(outs, sizes, load_before, time.monotonic() - started)
    print(table_all(out, sizes))
    if spy is not None:
        for name, one in outs.items():
            print(f"\n{name}:")
            print(profile.render(one["profile"]))
    print(f"\n({out['seconds']:.0f}s in all)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        say(f"wrote {args.json}")
    return 0
