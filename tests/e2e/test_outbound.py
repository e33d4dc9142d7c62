"""Outbound through the outbox: relay outages, refusals, deferrals, and the operator's view of it."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import ssl
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from tests.conftest import make_config
from tests.helpers import RunningDaemon, wait_until
from transferbot.app import outbox, registry
from transferbot.app.arrivals import store_inbound
from transferbot.app.context import App, open_app
from transferbot.app.effects.mail import Mailer
from transferbot.app.effects.work import Work
from transferbot.app.queries.views import transfer_detail
from transferbot.app.replies import read_inbound
from transferbot.app.transfers import request_transfer
from transferbot.cli import main
from transferbot.core.backoff import backoff
from transferbot.core.clock import now
from transferbot.core.domain import MailKind
from transferbot.devtools.sink import MailSink
from transferbot.outbound import rendering
from transferbot.outbound.rendering import Outgoing
from transferbot.store.models import OutboundMessage


def _world(app: App) -> None:
    registry.add_account(app, "acme", "customer", "Acme", ["alice@acme.example.com", "bob@acme.example.com"])
    registry.add_account(app, "vendor", "isv", "Vendor", ["deals@vendor.example.com"])
    registry.add_account(app, "r2", "reseller", "R2", ["ops@r2.example.com"])
    registry.add_entitlement(app, "ent-1", "Analytics", "acme", "vendor")


def rows(app: App) -> list[OutboundMessage]:
    with app.store.read() as session:
        return list(session.exec(select(OutboundMessage).order_by(OutboundMessage.id)))  # type: ignore[arg-type]


def test_backoff_doubles_up_to_the_maximum() -> None:
    assert [backoff(n, 30, 3600) for n in (1, 2, 3, 4, 8, 20)] == [30, 60, 120, 240, 3600, 3600]


def test_a_relay_outage_delays_mail_with_backoff_and_loses_none(tmp_path: Path) -> None:
    sink = MailSink().start_in_thread()
    port = sink.port
    sink.stop_thread()  # the relay is down
    app = open_app(make_config(tmp_path, port, outbound={"retry_min_seconds": 0.2, "retry_max_seconds": 0.8}), upgrade=True)
    _world(app)
    request_transfer(app, "ent-1", "r2")
    daemon = RunningDaemon(app).start()
    try:
        seen: dict[int, float] = {}

        def gaps() -> bool:
            for row in rows(app):
                if row.attempts and row.last_attempt_at and row.status == "queued":
                    seen.setdefault(row.attempts, (row.next_attempt_at - row.last_attempt_at).total_seconds())
            return len(seen) >= 4

        wait_until(gaps, timeout=15, interval=0.01, what="four failed attempts")
        assert [round(seen[n], 2) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 0.8], "exponential, capped"
        assert all("Connect" in r.last_error or "refused" in r.last_error.lower() for r in rows(app))
        back = MailSink(port=port).start_in_thread()  # the relay is back
        try:
            back.wait_for(lambda ms: len(ms) == 3, timeout=10)
            wait_until(lambda: all(r.status == "sent" for r in rows(app)))
            assert all(r.attempts >= 5 for r in rows(app))
        finally:
            back.stop_thread()
    finally:
        daemon.stop()
        app.store.close()


def test_a_permanent_refusal_fails_that_mail_only_and_tells_the_operator(app: App, sink: MailSink) -> None:
    _world(app)
    sink.rcpt_codes["ops@r2.example.com"] = "550 5.1.1 <ops@r2.example.com>: no such user"
    sink.rcpt_codes["bob@acme.example.com"] = "550 5.1.1 <bob@acme.example.com>: no such user"
    tid = request_transfer(app, "ent-1", "r2")
    daemon = RunningDaemon(app).start()
    try:
        sink.wait_for(lambda ms: {m.rcpt_tos[0] for m in ms} >= {"alice@acme.example.com", "deals@vendor.example.com"})
        alert = sink.wait_for(lambda ms: [m for m in ms if m.message["X-Transferbot-Kind"] == "operator-alert"])
        wait_until(lambda: {r.status for r in rows(app) if r.kind == "confirmation"} == {"sent", "failed"})
    finally:
        daemon.stop()
    by_kind = {(r.kind, tuple(r.recipients)): r for r in rows(app)}
    failed = by_kind[("confirmation", ("ops@r2.example.com",))]
    assert failed.status == "failed" and "550" in failed.last_error and failed.attempts == 1
    customer = by_kind[("confirmation", ("alice@acme.example.com", "bob@acme.example.com"))]
    assert customer.status == "sent", "delivered to the address that works"
    detail = transfer_detail(app, tid)
    parties = {p["role"]: p for p in detail["parties"]}
    assert [u["address"] for u in parties["new-reseller"]["undeliverable"]] == ["ops@r2.example.com"]
    assert [u["address"] for u in parties["customer"]["undeliverable"]] == ["bob@acme.example.com"]
    assert not parties["isv"]["undeliverable"]
    assert any(m.rcpt_tos == ("ops@marketplace.example.com",) for m in alert)
    assert any(e["kind"] == "address-undeliverable" for e in detail["events"])


def test_a_deferred_recipient_is_retried_alone(tmp_path: Path, sink: MailSink) -> None:
    app = open_app(make_config(tmp_path, sink.port, outbound={"retry_min_seconds": 0.2, "retry_max_seconds": 0.2}), upgrade=True)
    _world(app)
    sink.rcpt_codes["bob@acme.example.com"] = "451 4.2.0 try later"
    request_transfer(app, "ent-1", "r2")
    daemon = RunningDaemon(app).start()
    try:
        sink.wait_for(lambda ms: len(ms) == 3)
        wait_until(lambda: any(r.attempts >= 2 and r.recipients == ["bob@acme.example.com"] for r in rows(app)))
        del sink.rcpt_codes["bob@acme.example.com"]
        wait_until(lambda: all(r.status == "sent" for r in rows(app)))
    finally:
        daemon.stop()
        app.store.close()
    to_alice = [m for m in sink.messages if "alice@acme.example.com" in m.rcpt_tos]
    to_bob = [m for m in sink.messages if "bob@acme.example.com" in m.rcpt_tos]
    assert len(to_alice) == 1 and len(to_bob) == 1, "alice is not mailed twice; bob gets it once it works"
    assert to_alice[0].message_id == to_bob[0].message_id


def test_the_outbox_command_lists_and_retries_failed_mail(tmp_path: Path, app: App, sink: MailSink,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _world(app)
    sink.rcpt_codes["ops@r2.example.com"] = "554 5.7.1 rejected"
    request_transfer(app, "ent-1", "r2")
    daemon = RunningDaemon(app).start()
    try:
        wait_until(lambda: any(r.status == "failed" for r in rows(app)))
    finally:
        daemon.stop()
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[database]\nurl = "{app.config.database.url}"\n[workflow]\nsecret = "test-secret"\n')
    capsys.readouterr()
    assert main(["--config", str(cfg), "outbox", "--status", "failed", "--json"]) == 0
    page = json.loads(capsys.readouterr().out)
    failed = page["items"]
    assert page["more"] == 0 and page["next_cursor"] is None
    assert len(failed) == 1 and failed[0]["to"] == ["ops@r2.example.com"] and "554" in failed[0]["last_error"]
    assert main(["--config", str(cfg), "outbox", "retry", str(failed[0]["id"])]) == 0
    assert "1 message(s) queued again" in capsys.readouterr().out
    assert main(["--config", str(cfg), "outbox", "retry", str(failed[0]["id"])]) == 1
    assert "queued, not failed" in capsys.readouterr().err
    assert main(["--config", str(cfg), "outbox", "retry", "--all-failed"]) == 0
    assert main(["--config", str(cfg), "outbox"]) == 0
    assert "ops@r2.example.com" in capsys.readouterr().out
    del sink.rcpt_codes["ops@r2.example.com"]
    daemon = RunningDaemon(app).start()
    try:
        wait_until(lambda: all(r.status == "sent" for r in rows(app) if r.kind == "confirmation"))
    finally:
        daemon.stop()
    retried = next(r for r in rows(app) if r.id == failed[0]["id"])
    assert retried.give_up_at is not None and retried.give_up_at > retried.created_at + timedelta(hours=1)


def test_starttls_and_auth_to_the_relay(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    relay = MailSink(tls_context=server_context, credentials=("transferbot", "s3cret")).start_in_thread()
    try:
        app = open_app(make_config(tmp_path, relay.port, outbound={
            "starttls": True, "ca_file": str(tmp_path / "ca.pem"), "host": "127.0.0.1",
            "username": "transferbot", "password": "s3cret"}), upgrade=True)
        _world(app)
        request_transfer(app, "ent-1", "r2")
        daemon = RunningDaemon(app).start()
        try:
            got = relay.wait_for(lambda ms: len(ms) == 3)
        finally:
            daemon.stop()
            app.store.close()
        assert all(m.tls and m.login == "transferbot" for m in got)
    finally:
        relay.stop_thread()


def test_a_wrong_relay_password_is_retried_not_lost(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    relay = MailSink(tls_context=server_context, credentials=("transferbot", "right")).start_in_thread()
    try:
        app = open_app(make_config(tmp_path, relay.port, outbound={
            "starttls": True, "ca_file": str(tmp_path / "ca.pem"), "username": "transferbot", "password": "wrong"}), upgrade=True)
        _world(app)
        request_transfer(app, "ent-1", "r2")
        daemon = RunningDaemon(app).start()
        try:
            wait_until(lambda: all(r.attempts >= 1 for r in rows(app)))
        finally:
            daemon.stop()
        assert {r.status for r in rows(app)} == {"queued"}, "our configuration is wrong, not the recipients"
        assert all("535" in r.last_error for r in rows(app))
        app.store.close()
    finally:
        relay.stop_thread()


def test_a_bounced_operator_alert_raises_no_further_alert(app: App, sink: MailSink) -> None:
    """The operator address failing must not make transferbot mail it again about itself, forever."""
    with app.store.write() as session:
        mailer = Mailer(app, Work(session), None, [], now())
        mailer.to_operator("bounce", [("message", "<x@y>")])
        [alert] = mailer.done()
        key = alert.key
    dsn = (b"From: MAILER-DAEMON@marketplace.example.com\r\nTo: " + app.book.bounce(key).encode() +
           b"\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain\r\n\r\nThe operator mailbox does not exist.\r\n"
           b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.marketplace.example.com\r\n\r\n"
           b"Final-Recipient: rfc822; ops@marketplace.example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
           b"--B--\r\n")
    inbound = store_inbound(app, dsn, "", [app.book.bounce(key)], "127.0.0.1")
    assert read_inbound(app, inbound).outcome == "bounce"
    assert [r.kind for r in rows(app)] == ["operator-alert"], "no alert about the alert"


@pytest.mark.parametrize(("outbound", "expected"), [
    ({}, "transfers.example.com"),  # the inbound domain, not aiosmtplib's "localhost"
    ({"helo_name": "mta-out.transfers.example.com"}, "mta-out.transfers.example.com"),
])
def test_the_relay_is_greeted_with_our_own_name(tmp_path: Path, sink: MailSink, outbound: dict[str, str],
                                                 expected: str) -> None:
    app = open_app(make_config(tmp_path, sink.port, outbound=outbound), upgrade=True)
    _world(app)
    request_transfer(app, "ent-1", "r2")
    daemon = RunningDaemon(app).start()
    try:
        got = sink.wait_for(lambda ms: ms[:1])
    finally:
        daemon.stop()
        app.store.close()
    assert {m.helo for m in got} == {expected}


def test_a_backlog_is_rendered_by_a_helper_process_into_the_same_bytes(tmp_path: Path, sink: MailSink,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Forty transfers filed while the daemon is down: 120 confirmations claimed at once go to the helper
    process; each arrives with exactly the bytes the daemon renders itself (raw_of), once."""
    app = open_app(make_config(tmp_path, sink.port, outbound={"render_processes": 1}), upgrade=True)
    registry.add_account(app, "acme", "customer", "Acme Müller GmbH", ["alice@acme.example.com"], "de")
    registry.add_account(app, "vendor", "isv", "Vendor", ["deals@vendor.example.com"])
    registry.add_account(app, "r2", "reseller", "R2 SARL", ["ops@r2.example.com"], "fr")
    for n in range(40):
        registry.add_entitlement(app, f"ent-{n}", f"Analytics {n}", "acme", "vendor")
        request_transfer(app, f"ent-{n}", "r2")
    caplog.set_level("INFO", logger="transferbot.runners.mail_dispatcher")
    daemon = RunningDaemon(app).start()
    try:
        got = sink.wait_for(lambda ms: len(ms) >= 120, timeout=60)
        wait_until(lambda: {r.status for r in rows(app)} == {"sent"}, timeout=30)
    finally:
        daemon.stop()
    assert any("helper process(es) render a backlog" in r.getMessage() for r in caplog.records)
    assert len(got) == 120 and len(sink.messages) == 120, "each once"
    by_id = {r.message_id: r.id for r in rows(app)}
    for received in got:
        assert received.raw.replace(b"\r\n", b"\n").rstrip(b"\n") == \
            outbox.raw_of(app, by_id[received.message_id]).replace(b"\r\n", b"\n").rstrip(b"\n")


def test_a_helper_process_ends_when_its_daemon_is_killed(tmp_path: Path) -> None:
    """SIGKILL gives the daemon no chance to stop its helpers: they notice and end by themselves."""
    script = ("import multiprocessing, sys, time\n"
              "from concurrent.futures import ProcessPoolExecutor\n"
              "from transferbot.outbound import rendering\n"
              "if __name__ == '__main__':\n"
              "    pool = ProcessPoolExecutor(1, initializer=rendering.helper_started,\n"
              "                               mp_context=multiprocessing.get_context('spawn'))\n"
              "    print(pool.submit(__import__('os').getpid).result(), flush=True)\n"
              "    time.sleep(60)\n")
    path = tmp_path / "daemon.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    helper = int(proc.stdout.readline())
    os.kill(helper, 0)  # alive while its daemon is
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def gone() -> bool:
        try:
            os.kill(helper, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{helper}/stat") as stat:  # reaped by init soon after; a zombie has ended too
            return stat.read().split(")")[1].split()[0] == "Z"

    deadline = time.monotonic() + 10
    while not gone():
        assert time.monotonic() < deadline, "the helper process outlived its daemon"
        time.sleep(0.05)


def stamped(raw: bytes) -> bytes:
    """A finish that marks what it finished (top level: a helper process unpickles it by name)."""
    return b"X-Finished: yes\r\n" + raw


def _alert_row() -> Outgoing:
    spec = {"from_address": "transfer@transfers.example.com", "from_name": "Marketplace", "locale": "en",
            "extra": {"alert": "a bounce of mail we cannot place", "alert_facts": [["Message-ID", "<x@y>"]]}}
    return Outgoing(1, MailKind.OPERATOR_ALERT.value, "k-1", "<a1@transfers.example.com>", ("ops@market.example",),
                    datetime(2026, 12, 1, tzinfo=UTC), None, spec, None)


def test_every_rendered_message_passes_the_finish_hook_here_and_in_a_helper_process() -> None:
    row = _alert_row()
    plain = rendering.Renderer().render(row, None)[1]
    assert rendering.Renderer(finish=stamped).render(row, None)[1] == b"X-Finished: yes\r\n" + plain
    with ProcessPoolExecutor(1, initializer=rendering.helper_started, initargs=(stamped,),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        [(_subject, helper_bytes)] = pool.submit(rendering.render_batch, [(row, None)]).result(timeout=60)
    assert helper_bytes == b"X-Finished: yes\r\n" + plain
