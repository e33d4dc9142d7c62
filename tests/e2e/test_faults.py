"""Faults proved against the real daemon: SIGKILL mid-traffic, and races."""

from __future__ import annotations

import random
import smtplib
import socket
import threading
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from email.policy import SMTP
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from tests.conftest import DOMAIN, make_config
from tests.e2e.test_serve import Serve
from tests.helpers import RunningDaemon, dns_toml, reply, reply_address, send, wait_until
from transferbot.app import registry
from transferbot.app.arrivals import store_inbound
from transferbot.app.context import App, open_app
from transferbot.app.outbox import raw_of
from transferbot.app.queries.certificate import verify
from transferbot.app.queries.views import list_inbox, transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.core.errors import Refusal
from transferbot.devtools.sink import MailSink, Received
from transferbot.store.models import OutboundMessage

TRANSFERS = 50  # three parties each: 150 replies
BOTH_BACKENDS = True  # tests/conftest.py runs these on SQLite and on PostgreSQL


def query(app: App, sql: str) -> list[tuple[object, ...]]:
    """Rows of one SQL query, whichever database the app is on."""
    with app.store.read() as session:
        return [tuple(r) for r in session.connection().execute(sa.text(sql))]


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
def test_sigkill_three_times_loses_no_reply_and_acts_on_each_once(tmp_path: Path, sink: MailSink,
                                                                  database_url: str) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    port = free_port()
    config = make_config(tmp_path, sink.port, inbound={"port": port, "messages_per_minute_per_sender": 0},
                         database={"url": database_url})
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
        'timeout_seconds = 3\n[webhooks]\ntimeout_seconds = 3\n'
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
        wait_until(lambda: _completed(app) == len(tids), timeout=90, what=f"all transfers completed (seed {seed})")
        wait_until(lambda: _outbox_drained(app), timeout=60, what="outbox drained")
    finally:
        assert serve.stop() == 0
    assert len(acknowledged) == len(replies)
    stored = {row[0] for row in query(app, "select message_id from inboundmessage")}
    outcomes = dict(query(app, "select outcome, count(*) from inboundmessage group by outcome"))
    [(approvals,)] = query(app, "select count(*) from event where kind = 'approved'")
    [(moved,)] = query(app, "select count(*) from event where kind = 'entitlement-moved'")
    [(on_r2,)] = query(app, "select count(*) from entitlement where reseller_id = 'r2'")
    assert acknowledged <= stored, f"a reply answered 250 is missing (seed {seed})"
    assert outcomes["approved"] == len(replies) and set(outcomes) <= {"approved", "duplicate"}, outcomes
    assert approvals == len(replies) and moved == TRANSFERS and on_r2 == TRANSFERS
    completions: dict[tuple[str, str], int] = {}
    for m in sink.unique():
        if m.message["X-Transferbot-Kind"] == "completed":
            key = (str(m.message["X-Transferbot-Transfer"]), m.rcpt_tos[0])
            completions[key] = completions.get(key, 0) + 1
    assert len(completions) == TRANSFERS * 3 and set(completions.values()) == {1}


def _completed(app: App) -> int:
    """How many transfers are completed (one query: the daemons are busy)."""
    return int(query(app, "select count(*) from transfer where status = 'completed'")[0][0])  # type: ignore[call-overload]


def _outbox_drained(app: App) -> bool:
    return query(app, "select count(*) from outboundmessage where status != 'sent'") == [(0,)]


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
    assert query(world, "select count(*) from transfer") == [(3,)]


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


@pytest.mark.slow
def test_three_daemons_on_one_postgresql_database_survive_sigkill_and_act_on_each_reply_once(
        tmp_path: Path, sink: MailSink, postgres_url: str) -> None:
    """Three `serve` processes (three MX hosts of one domain) share a database; replies are spread over
    their ports, and one of them, chosen at random, is SIGKILLed and restarted five times."""
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    transfers = 40
    config = make_config(tmp_path, sink.port, inbound={"messages_per_minute_per_sender": 0},
                         database={"url": postgres_url})
    app = open_app(config, upgrade=True)
    _world(app, transfers)
    tids = [request_transfer(app, f"e{n}", "r2") for n in range(transfers)]
    replies = _replies(app)
    rng.shuffle(replies)
    ports = [free_port() for _ in range(3)]
    configs = []
    for n, port in enumerate(ports):
        cfg = tmp_path / f"daemon{n}.toml"
        cfg.write_text(
            f'[database]\nurl = "{postgres_url}"\nlease_seconds = 4.5\npoll_seconds = 0.5\npool_size = 4\n'
            f'[inbound]\nhost = "127.0.0.1"\nport = {port}\ndomain = "{DOMAIN}"\n'
            f'messages_per_minute_per_sender = 0\n{dns_toml()}'
            f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\npoll_seconds = 0.2\n'
            'timeout_seconds = 3\n[webhooks]\ntimeout_seconds = 3\n'
            '[workflow]\nsecret = "test-secret"\nsweep_seconds = 2\n[http]\nport = 0\n')
        configs.append(cfg)
    daemons = [Serve(cfg) for cfg in configs]
    acknowledged: set[str] = set()
    lock = threading.Lock()
    work = list(replies)

    def client(first: int) -> None:
        turn = first
        while True:
            with lock:
                if not work:
                    return
                rcpt, message_id, raw = work.pop()
            while True:  # as an MTA does with several MX hosts: the next one when one does not answer
                port = ports[turn % 3]
                turn += 1
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                        smtp.sendmail(raw.split(b"From: ", 1)[1].split(b"\r\n", 1)[0].decode(), [rcpt], raw)
                    with lock:
                        acknowledged.add(message_id)
                    break
                except (OSError, smtplib.SMTPException):
                    time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    victims = []
    for fraction in sorted(rng.uniform(0.05, 0.9) for _ in range(5)):
        wait_until(lambda f=fraction: len(acknowledged) >= f * len(replies), timeout=90, what=f"{fraction:.0%} sent")
        victim = rng.randrange(3)
        victims.append(victim)
        daemons[victim].proc.kill()  # SIGKILL: its leases are left to run out
        daemons[victim].proc.wait(10)
        daemons[victim] = Serve(configs[victim])
    for t in threads:
        t.join(120)
    try:
        try:
            wait_until(lambda: _completed(app) == len(tids), timeout=120,
                       what=f"all transfers completed (seed {seed}, killed {victims})")
            wait_until(lambda: _outbox_drained(app), timeout=90, what="outbox drained")
        except AssertionError as exc:
            states = query(app, "select state, outcome, count(*) from inboundmessage group by state, outcome")
            states += query(app, "select id, reason from inboundmessage where state = 'failed'")
            errors = [line for d in daemons for line in d.lines if "ERROR" in line or "Traceback" in line]
            raise AssertionError(f"{exc}; inbound {states}; daemon errors: {errors[-10:]}") from None
    finally:
        codes = [d.stop() for d in daemons]
    assert codes == [0, 0, 0]
    assert len(acknowledged) == len(replies)
    stored = {row[0] for row in query(app, "select message_id from inboundmessage")}
    assert acknowledged <= stored, f"a reply answered 250 is missing (seed {seed})"
    outcomes = dict(query(app, "select outcome, count(*) from inboundmessage group by outcome"))
    assert outcomes.get("approved") == len(replies) and set(outcomes) <= {"approved", "duplicate"}, outcomes
    assert query(app, "select count(*) from event where kind = 'approved'") == [(len(replies),)]
    assert query(app, "select count(*) from event where kind = 'entitlement-moved'") == [(transfers,)]
    assert query(app, "select count(*) from event where kind = 'completed'") == [(transfers,)]
    assert query(app, "select count(*) from entitlement where reseller_id = 'r2'") == [(transfers,)]
    # Every mail queued once; delivered at least once. A daemon killed between handing a mail to the relay
    # and recording it leaves the lease to run out, and another daemon sends the same message (same
    # Message-ID) again: a duplicate at worst, never a loss, never a second message.
    completions: dict[tuple[str, str], set[str]] = {}
    confirmations: dict[tuple[str, str], set[str]] = {}
    for m in sink.unique():
        key = (str(m.message["X-Transferbot-Transfer"]), m.rcpt_tos[0])
        if m.message["X-Transferbot-Kind"] == "completed":
            completions.setdefault(key, set()).add(m.message_id)
        if m.message["X-Transferbot-Kind"] == "confirmation":
            confirmations.setdefault(key, set()).add(m.message_id)
    assert len(completions) == transfers * 3 and all(len(ids) == 1 for ids in completions.values())
    assert len(confirmations) == transfers * 3 and all(len(ids) == 1 for ids in confirmations.values())
    resent = len(sink.messages) - len(sink.unique())
    assert resent <= 5 * 4 * 16, f"{resent} messages were handed to the relay twice"
    for tid in tids:
        assert verify(app, tid)[0], tid
    app.store.close()
