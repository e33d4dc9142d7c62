"""The inbound edge under pressure and attack: each limit answered with its proper SMTP code."""

from __future__ import annotations

import smtplib
import socket
import sqlite3
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DOMAIN, make_config
from tests.helpers import RunningDaemon, wait_until
from transferbot.app import registry
from transferbot.app.context import App, open_app
from transferbot.app.queries.views import list_inbox
from transferbot.app.transfers import request_transfer
from transferbot.devtools.sink import MailSink

BARE = f"transfer@{DOMAIN}"
SMALL = b"From: alice@acme.example.com\r\nSubject: hi\r\n\r\nAPPROVE\r\n"


@pytest.fixture
def edge(tmp_path: Path, sink: MailSink) -> Iterator[RunningDaemon]:
    config = make_config(tmp_path, sink.port, inbound={
        "max_message_bytes": 200_000, "max_recipients": 5, "idle_timeout_seconds": 1.0,
        "max_connections_per_client": 4, "messages_per_minute_per_sender": 10})
    app = open_app(config, upgrade=True)
    d = RunningDaemon(app).start()
    yield d
    d.stop()
    app.store.close()


def connect(port: int, timeout: float = 10) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    client.ehlo("client.example.com")
    return client


def stored(app: App) -> int:
    return len(list_inbox(app))


def test_ehlo_advertises_size_and_oversized_mail_gets_552(edge: RunningDaemon) -> None:
    with connect(edge.port) as client:
        client.ehlo("c.example.com")
        assert client.has_extn("size") and client.esmtp_features["size"] == "200000"
        code, _ = client.docmd("MAIL FROM:<a@acme.example.com> SIZE=900000")
        assert code == 552
        client.rset()
        client.mail("a@acme.example.com")
        client.rcpt(BARE)
        code, _ = client.data(SMALL + (b"x" * 98 + b"\r\n") * 3000)
        assert code == 552
        # The session goes on: a normal message afterwards is accepted.
        assert client.sendmail("a@acme.example.com", [BARE], SMALL) == {}
    assert stored(edge.app) == 1


def test_a_huge_message_does_not_freeze_other_sessions(edge: RunningDaemon) -> None:
    big = socket.create_connection(("127.0.0.1", edge.port), timeout=30)
    reader = big.makefile("rb")

    def ask(line: bytes) -> bytes:
        big.sendall(line)
        reply = reader.readline()
        while reply[3:4] == b"-":
            reply = reader.readline()
        return reply

    assert reader.readline().startswith(b"220")
    assert ask(b"EHLO big.example.com\r\n").startswith(b"250")
    assert ask(b"MAIL FROM:<big@acme.example.com>\r\n").startswith(b"250")
    assert ask(f"RCPT TO:<{BARE}>\r\n".encode()).startswith(b"250")
    assert ask(b"DATA\r\n").startswith(b"354")
    chunk = (b"y" * 900 + b"\r\n") * 1000  # ~0.9 MB
    for _ in range(25):
        big.sendall(chunk)
    # Half of a 50 MB message is in; another session is served in the meantime.
    with connect(edge.port) as client:
        assert client.sendmail("small@acme.example.com", [BARE], SMALL) == {}
    for _ in range(30):
        big.sendall(chunk)
    assert ask(b".\r\n").startswith(b"552"), "50 MB is refused as too big"
    big.close()
    wait_until(lambda: stored(edge.app) == 1)


def test_too_many_recipients_get_452(edge: RunningDaemon) -> None:
    with connect(edge.port) as client:
        client.mail("a@acme.example.com")
        codes = [client.rcpt(BARE)[0] for _ in range(1000)]
    assert codes[:5] == [250] * 5 and set(codes[5:]) == {452}


def test_overlong_lines_are_refused(edge: RunningDaemon) -> None:
    with connect(edge.port) as client:
        client.mail("a@acme.example.com")
        client.rcpt(BARE)
        code, _ = client.data(SMALL + b"z" * 5000 + b"\r\n")
    assert code == 500
    assert stored(edge.app) == 0


def test_a_slowloris_client_is_cut_off_and_others_are_served(edge: RunningDaemon) -> None:
    slow = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
    assert slow.recv(1024).startswith(b"220")
    slow.sendall(b"EHLO sl")  # never finishes the line
    started = time.monotonic()
    with connect(edge.port) as client:
        assert client.sendmail("a@acme.example.com", [BARE], SMALL) == {}
    slow.settimeout(10)
    data = b""
    while chunk := slow.recv(1024):  # the server closes the idle session (timeout: 1 s)
        data += chunk
    assert time.monotonic() - started < 8
    slow.close()


def test_a_flood_from_one_sender_is_slowed_with_450_and_others_still_pass(edge: RunningDaemon) -> None:
    codes = []
    with connect(edge.port) as client:
        for _ in range(15):
            code, _ = client.mail("flood@spam.example.com")
            codes.append(code)
            if code == 250:
                client.rcpt(BARE)
                client.data(SMALL)
            else:
                client.rset()
        assert client.sendmail("other@acme.example.com", [BARE], SMALL) == {}
    assert codes[:10] == [250] * 10 and set(codes[10:]) == {450}
    assert stored(edge.app) == 11


def test_too_many_connections_from_one_address_get_421(edge: RunningDaemon) -> None:
    held = [connect(edge.port) for _ in range(4)]
    try:
        extra = socket.create_connection(("127.0.0.1", edge.port), timeout=10)
        assert extra.recv(1024).startswith(b"421")
        extra.close()
    finally:
        for client in held:
            client.close()
    wait_until(lambda: not edge.daemon.edge.sessions, what="sessions closed")  # type: ignore[union-attr]
    with connect(edge.port) as client:
        assert client.noop()[0] == 250


def test_smtp_smuggling_stays_inside_one_message(edge: RunningDaemon) -> None:
    smuggled = (b"From: a@acme.example.com\r\nSubject: one\r\n\r\nAPPROVE\r\n"
                b"\n.\n"
                b"MAIL FROM:<evil@attacker.example.com>\r\nRCPT TO:<" + BARE.encode() + b">\r\nDATA\r\n"
                b"From: evil@attacker.example.com\r\n\r\nDECLINE\r\n"
                b"\r\n.\n"
                b"still the first message\r\n")
    with connect(edge.port) as client:
        client.mail("a@acme.example.com")
        client.rcpt(BARE)
        code, _ = client.data(smuggled)
    assert code == 250
    wait_until(lambda: stored(edge.app) == 1 and list_inbox(edge.app)[0]["state"] == "done")
    rows = list_inbox(edge.app)
    assert len(rows) == 1 and rows[0]["mail_from"] == "a@acme.example.com"


def test_a_locked_database_gets_451_and_nothing_is_lost(tmp_path: Path, sink: MailSink) -> None:
    config = make_config(tmp_path, sink.port, database={"busy_timeout_ms": 200})
    app = open_app(config, upgrade=True)
    d = RunningDaemon(app).start()
    try:
        blocker = sqlite3.connect(tmp_path / "tb.db", timeout=5, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with connect(d.port) as client:
            client.mail("a@acme.example.com")
            client.rcpt(BARE)
            code, text = client.data(SMALL)
            assert code == 451, text
            blocker.execute("ROLLBACK")
            blocker.close()
            assert client.sendmail("a@acme.example.com", [BARE], SMALL) == {}, "the sender's retry succeeds"
        assert stored(app) == 1
    finally:
        d.stop()
        app.store.close()


def test_starttls_with_a_certificate_made_at_test_time(tmp_path: Path, sink: MailSink) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    config = make_config(tmp_path, sink.port, inbound={"tls_cert": str(tmp_path / "server.pem"),
                                                       "tls_key": str(tmp_path / "server.pem"),
                                                       "require_starttls": True})
    app = open_app(config, upgrade=True)
    d = RunningDaemon(app).start()
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with smtplib.SMTP("127.0.0.1", d.port, timeout=10) as client:
            client.ehlo("c.example.com")
            assert client.has_extn("starttls")
            assert client.mail("a@acme.example.com")[0] == 530, "TLS is required first"
            client.starttls(context=context)
            client.ehlo("c.example.com")
            assert client.sendmail("a@acme.example.com", [BARE], SMALL) == {}
        assert stored(app) == 1
    finally:
        d.stop()
        app.store.close()


def test_names_and_notes_cannot_inject_headers(app: App, sink: MailSink, tmp_path: Path) -> None:
    registry.add_account(app, "c", "customer", "C", ["c@c.example.com"])
    registry.add_account(app, "v", "isv", "V", ["v@v.example.com"])
    registry.add_account(app, "r", "reseller", "R", ["r@r.example.com"])
    registry.add_entitlement(app, "e", "Product", "c", "v")
    request_transfer(app, "e", "r", "see below\r\nBcc: evil@attacker.example.com\r\n\r\nfake body")
    d = RunningDaemon(app).start()
    try:
        received = sink.wait_for(lambda ms: len(ms) == 3)
    finally:
        d.stop()
    for m in received:
        assert m.message["Bcc"] is None
        assert "evil@attacker.example.com" not in m.rcpt_tos
        assert "Bcc: evil@attacker.example.com" in m.text(), "the note stays in the body, as text"
