"""Faults proved against the real daemon: SIGKILL mid-traffic, and races."""

from __future__ import annotations

import random
import smtplib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlmodel import select

from tests.conftest import DOMAIN, make_config
from tests.helpers import RunningDaemon, dns_toml, reply, reply_address, send, wait_until
from tests.test_serve import Serve
from transferbot.models import OutboundMessage
from transferbot.rules import Refusal
from transferbot.service import registry
from transferbot.service.app import App, open_app
from transferbot.service.arrivals import store_inbound
from transferbot.service.outbox import raw_of
from transferbot.service.transfers import request_transfer
from transferbot.service.views import list_inbox, transfer_detail
from transferbot.sink import MailSink, Received

TRANSFERS = 80  # three parties each: 240 replies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _world(app: App, transfers: int) -> None:
    registry.add_account(app, "vendor", "isv", "Vendor", ["deals@vendor.example.com"])
    registry.add_account(app, "r2", "reseller", "R2", ["ops@r2.example.com"])
    for n in range(transfers):
        registry.add_account(app, f"c{n}", "customer", f"Customer {n}", [f"buyer{n}@c{n}.example.com"])
        registry.add_entitlement(app, f"e{n}", "Analytics", f"c{n}", "vendor")


def _replies(app: App) -> list[tuple[str, str, bytes]]:
    """(rcpt, message-id, raw) of a real approval for every party's confirmation, quoting it."""
    out = []
    with app.store.read() as session:
        rows = [(row, raw_of(app, row.id or 0)) for row in
                session.exec(select(OutboundMessage).where(OutboundMessage.kind == "confirmation"))]
    for row, raw in rows:
        conf = Received(row.envelope_from, tuple(row.recipients), raw,
                        BytesParser(policy=policy.default).parsebytes(raw))  # type: ignore[arg-type]
        msg = reply(conf, row.recipients[0], "APPROVE")
        out.append((reply_address(conf), str(msg["Message-ID"]), msg.as_bytes(policy=SMTP)))
    return out


@pytest.mark.slow
def test_sigkill_three_times_loses_no_reply_and_acts_on_each_once(tmp_path: Path, sink: MailSink) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    port = free_port()
    config = make_config(tmp_path, sink.port, inbound={"port": port, "messages_per_minute_per_sender": 0})
    app = open_app(config, upgrade=True)
    _world(app, TRANSFERS)
    tids = [request_transfer(app, f"e{n}", "r2") for n in range(TRANSFERS)]
    replies = _replies(app)
    rng.shuffle(replies)
    cfg = tmp_path / "transferbot.toml"
    cfg.write_text(  # a short lease: the work a killed daemon had claimed is taken over within seconds
        f'[database]\nurl = "{config.database.url}"\nlease_seconds = 5\npoll_seconds = 0.5\n'
        f'[inbound]\nhost = "127.0.0.1"\nport = {port}\ndomain = "{DOMAIN}"\nmessages_per_minute_per_sender = 0\n{dns_toml()}'
        f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\npoll_seconds = 0.2\n'
        '[workflow]\nsecret = "test-secret"\n[http]\nport = 0\n'
    )
    acknowledged: set[str] = set()
    lock = threading.Lock()
    work = list(replies)

    def client() -> None:
        while True:
            with lock:
                if not work:
                    return
                rcpt, message_id, raw = work.pop()
            while True:  # as an MTA does: retry until the server says 250
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                        smtp.sendmail(raw.split(b"From: ", 1)[1].split(b"\r\n", 1)[0].decode(), [rcpt], raw)
                    with lock:
                        acknowledged.add(message_id)
                    break
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.05)

    serve = Serve(cfg)
    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    kills = sorted(rng.uniform(0.1, 0.8) for _ in range(3))
    for fraction in kills:
        wait_until(lambda f=fraction: len(acknowledged) >= f * len(replies), timeout=60, what=f"{fraction:.0%} sent")
        serve.proc.kill()  # SIGKILL: no clean-up at all
        serve.proc.wait(10)
        serve = Serve(cfg)
    for t in threads:
        t.join(120)
    try:
        wait_until(lambda: all(transfer_detail(app, tid)["status"] == "completed" for tid in tids),
                   timeout=90, what=f"all transfers completed (seed {seed})")
        wait_until(lambda: _outbox_drained(app), timeout=60, what="outbox drained")
    finally:
        assert serve.stop() == 0
    assert len(acknowledged) == len(replies)
    with sqlite3.connect(tmp_path / "tb.db") as db:
        stored = {row[0] for row in db.execute("select message_id from inboundmessage")}
        outcomes = dict(db.execute("select outcome, count(*) from inboundmessage group by outcome").fetchall())
        approvals = db.execute("select count(*) from event where kind = 'approved'").fetchone()[0]
        moved = db.execute("select count(*) from event where kind = 'entitlement-moved'").fetchone()[0]
        on_r2 = db.execute("select count(*) from entitlement where reseller_id = 'r2'").fetchone()[0]
    assert acknowledged <= stored, f"a reply answered 250 is missing (seed {seed})"
    assert outcomes["approved"] == len(replies) and set(outcomes) <= {"approved", "duplicate"}, outcomes
    assert approvals == len(replies) and moved == TRANSFERS and on_r2 == TRANSFERS
    completions: dict[tuple[str, str], int] = {}
    for m in sink.unique():
        if m.message["X-Transferbot-Kind"] == "completed":
            key = (str(m.message["X-Transferbot-Transfer"]), m.rcpt_tos[0])
            completions[key] = completions.get(key, 0) + 1
    assert len(completions) == TRANSFERS * 3 and set(completions.values()) == {1}


def _outbox_drained(app: App) -> bool:
    with app.store.read() as session:
        return all(r.status == "sent" for r in session.exec(select(OutboundMessage)))


def test_every_party_approving_at_the_same_instant_completes_once(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-r1", "r2")
    addresses = ["alice@acme.example.com", "deals@vendor.example.com", "ops@r1.example.com", "ops@r2.example.com"]
    sink.wait_for(lambda ms: len(ms) >= len(addresses))
    confs = {a: next(m for m in sink.unique() if a in m.rcpt_tos and m.message["X-Transferbot-Transfer"] == tid)
             for a in addresses}
    barrier = threading.Barrier(len(addresses))

    def approve(address: str) -> None:
        msg = reply(confs[address], address, "APPROVE")
        barrier.wait()
        send(daemon.port, msg, reply_address(confs[address]))

    threads = [threading.Thread(target=approve, args=(a,)) for a in addresses]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wait_until(lambda: transfer_detail(daemon.app, tid)["status"] == "completed")
    detail = transfer_detail(daemon.app, tid)
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds.count("completed") == 1 and kinds.count("entitlement-moved") == 1 and kinds.count("approved") == 4
    sink.wait_for(lambda ms: sum(m.message["X-Transferbot-Kind"] == "completed" for m in ms) == 4)
    for address in addresses:
        assert len([m for m in sink.to(address) if m.message["X-Transferbot-Kind"] == "completed"]) == 1


def test_concurrent_requests_for_one_entitlement_make_exactly_one_transfer(world: App) -> None:
    apps = [open_app(world.config, upgrade=True) for _ in range(4)]  # four processes' worth of connections
    try:
        for entitlement in ("ent-direct", "ent-r1", "ent-globex"):
            barrier = threading.Barrier(len(apps))
            results: list[str] = []

            def file(app: App, entitlement: str = entitlement, barrier: threading.Barrier = barrier,
                     results: list[str] = results) -> None:
                barrier.wait()
                try:
                    results.append(request_transfer(app, entitlement, "r2"))
                except Refusal as exc:
                    results.append(f"refused: {exc}")

            threads = [threading.Thread(target=file, args=(a,)) for a in apps]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            filed = [r for r in results if r.startswith("TR-")]
            assert len(filed) == 1, results
            assert all("already has an open transfer" in r for r in results if not r.startswith("TR-"))
    finally:
        for a in apps:
            a.store.close()
    with sqlite3.connect(world.config.database.url.removeprefix("sqlite:///")) as db:
        assert db.execute("select count(*) from transfer").fetchone()[0] == 3


def test_messages_stored_but_not_read_are_read_when_the_daemon_starts(
    world: App, sink: MailSink, daemon_factory: Callable[[App], RunningDaemon],
) -> None:
    """As after a crash between the 250 and the reading: the reader catches up on start."""
    tid = request_transfer(world, "ent-direct", "r2")
    first = daemon_factory(world)
    sink.wait_for(lambda ms: [m for m in ms if "alice@acme.example.com" in m.rcpt_tos])
    conf = sink.to("alice@acme.example.com")[0]
    first.stop()
    msg = reply(conf, "alice@acme.example.com", "APPROVE")
    store_inbound(world, msg.as_bytes(policy=SMTP), "alice@acme.example.com", [reply_address(conf)], "127.0.0.1")
    assert [r["state"] for r in list_inbox(world)] == ["new"]
    daemon_factory(world)
    wait_until(lambda: [r["outcome"] for r in list_inbox(world)] == ["approved"], what="read on start")
    assert transfer_detail(world, tid)["parties"][0]["decision"] == "approved"
