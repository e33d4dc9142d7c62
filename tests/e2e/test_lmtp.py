"""LMTP behind the MX: the daemon speaking LMTP (RFC 2033) on a loopback port or a unix socket, to real clients.

Python's smtplib.LMTP sends a whole transfer's replies (it reads one reply after DATA, which is right for one
recipient); a raw client reads the per-recipient replies of a message with several.
"""

from __future__ import annotations

import smtplib
import socket
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DOMAIN, make_config, populate
from tests.helpers import RunningDaemon, reply, reply_address, wait_until
from transferbot.app.context import App, open_app
from transferbot.app.queries.views import list_inbox, transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.config import ConfigError
from transferbot.devtools.sink import MailSink, Received

BARE = f"transfer@{DOMAIN}"
SMALL = b"From: alice@acme.example.com\r\nSubject: hi\r\n\r\nAPPROVE\r\n"
MX = "mx.market.example"
ADDRESSES = {"customer": "alice@acme.example.com", "isv": "deals@vendor.example.com",
             "new-reseller": "ops@r2.example.com"}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder for a socket: a unix socket's path is at most 107 bytes, and pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="tb-lmtp-") as folder:
        yield Path(folder)


def lmtp_app(tmp_path: Path, sink: MailSink, **inbound: Any) -> App:
    config = make_config(tmp_path, sink.port, inbound={"protocol": "lmtp", **inbound})
    return populate(open_app(config, upgrade=True))


def connect(d: RunningDaemon) -> socket.socket:
    path = d.app.config.inbound.socket
    if path is not None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(path))
        return s
    return socket.create_connection(("127.0.0.1", d.port), timeout=10)


class RawLmtp:
    """An LMTP client that says what it is told and reads as many replies as it expects."""

    def __init__(self, d: RunningDaemon) -> None:
        self.sock = connect(d)
        self.file = self.sock.makefile("rb")
        assert self.read().startswith(b"220")

    def read(self) -> bytes:
        line = self.file.readline()
        while line[3:4] == b"-":
            line = self.file.readline()
        return line.strip()

    def say(self, line: bytes, replies: int = 1) -> list[bytes]:
        self.sock.sendall(line + b"\r\n")
        return [self.read() for _ in range(replies)]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def lmtp_client(d: RunningDaemon) -> smtplib.LMTP:
    path = d.app.config.inbound.socket
    client = smtplib.LMTP(str(path) if path is not None else "127.0.0.1", d.port or 2003, timeout=10)
    client.ehlo("mx.market.example")  # smtplib's LMTP greets with LHLO
    return client


def confirmation(sink: MailSink, address: str, tid: str) -> Received:
    return wait_until(lambda: [m for m in sink.to(address) if m.message["X-Transferbot-Kind"] == "confirmation"
                               and m.message["X-Transferbot-Transfer"] == tid], what=f"confirmation for {address}")[0]


def test_three_recipients_one_refused_get_three_replies_and_the_message_is_stored_once(
        tmp_path: Path, sink: MailSink) -> None:
    app = lmtp_app(tmp_path, sink)
    d = RunningDaemon(app).start()
    try:
        tid = request_transfer(app, "ent-direct", "r2")
        token_address = reply_address(confirmation(sink, ADDRESSES["customer"], tid))
        client = RawLmtp(d)
        assert client.say(b"EHLO mx.market.example")[0].startswith(b"500"), "LMTP greets with LHLO"
        assert client.say(b"LHLO mx.market.example")[0].startswith(b"250")
        assert client.say(b"MAIL FROM:<alice@acme.example.com>")[0].startswith(b"250")
        assert client.say(f"RCPT TO:<{token_address}>".encode())[0].startswith(b"250")
        assert client.say(f"RCPT TO:<nobody@{DOMAIN}>".encode())[0].startswith(b"550")
        assert client.say(f"RCPT TO:<{BARE}>".encode())[0].startswith(b"250")
        assert client.say(b"DATA")[0].startswith(b"354")
        client.sock.sendall(SMALL)
        after_data = client.say(b".", replies=2)
        assert [r[:3] for r in after_data] == [b"250", b"250"], after_data
        assert after_data[0] == after_data[1] and b"#" in after_data[0], "one message, stored once"
        assert client.say(b"NOOP")[0].startswith(b"250"), "no third reply was left in the stream"
        client.say(b"QUIT")
        client.close()
        [row] = wait_until(lambda: list_inbox(app), what="the message stored")
        assert set(row["rcpt_tos"]) == {token_address, BARE}
    finally:
        d.stop()
        app.store.close()


def relayed(conf: Received, sender: str, verdict: str = "pass") -> bytes:
    """A party's reply as our MX hands it on: with the Authentication-Results header it adds on top."""
    msg = reply(conf, sender, "APPROVE")
    domain = sender.rpartition("@")[2]
    msg._headers.insert(0, ("Authentication-Results",  # type: ignore[attr-defined]
                            f"{MX}; dkim={verdict} header.d={domain}; dmarc={verdict} header.from={domain}"))
    return msg.as_bytes(policy=SMTP)


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_a_whole_transfers_approvals_over_lmtp_complete_it(
        tmp_path: Path, sink: MailSink, short_dir: Path, where: str) -> None:
    listen = {"socket": str(short_dir / "tb.sock"), "trusted_relays": ["unix"]} if where == "unix" else \
        {"trusted_relays": ["127.0.0.0/8"]}
    app = lmtp_app(tmp_path, sink, sender_auth="trusted-relay", trusted_authserv_id=MX, **listen)
    d = RunningDaemon(app).start()
    try:
        tid = request_transfer(app, "ent-direct", "r2")
        for role, address in ADDRESSES.items():
            conf = confirmation(sink, address, tid)
            with lmtp_client(d) as client:
                assert client.sendmail(address, [reply_address(conf)], relayed(conf, address)) == {}, role
        wait_until(lambda: transfer_detail(app, tid)["status"] == "completed", what="completion")
        assert all(p["decision"] == "approved" for p in transfer_detail(app, tid)["parties"])
        peers = {row["peer"] for row in list_inbox(app, tid)}
        assert peers == ({"unix"} if where == "unix" else {"127.0.0.1"})
    finally:
        d.stop()
        app.store.close()


def test_behind_postfix_on_a_unix_socket_the_relays_authentication_results_count(
        tmp_path: Path, sink: MailSink, short_dir: Path) -> None:
    app = lmtp_app(tmp_path, sink, socket=str(short_dir / "tb.sock"), sender_auth="trusted-relay",
                   trusted_relays=["unix"], trusted_authserv_id=MX)
    d = RunningDaemon(app).start()
    try:
        tid = request_transfer(app, "ent-direct", "r2")
        deals, alice = ADDRESSES["isv"], ADDRESSES["customer"]
        conf, other = confirmation(sink, deals, tid), confirmation(sink, alice, tid)
        with lmtp_client(d) as client:
            assert client.sendmail(deals, [reply_address(conf)], relayed(conf, deals)) == {}
            assert client.sendmail(alice, [reply_address(other)], relayed(other, alice, "fail")) == {}
        rows = wait_until(lambda: (r := [x for x in list_inbox(app, tid) if x["state"] == "done"])[1:] and r,
                          what="both replies read")
        by_sender = {r["mail_from"]: r for r in rows}
        assert by_sender[deals]["outcome"] == "approved", by_sender[deals]["checks"]
        assert by_sender[alice]["outcome"] != "approved", "the relay reported a failure"
        parties = {p["role"]: p["decision"] for p in transfer_detail(app, tid)["parties"]}
        assert parties == {"customer": "pending", "isv": "approved", "new-reseller": "pending"}
    finally:
        d.stop()
        app.store.close()


def test_a_stale_socket_is_replaced_and_its_mode_applied(tmp_path: Path, sink: MailSink, short_dir: Path) -> None:
    path = short_dir / "tb.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, as after a daemon that was killed
    assert path.is_socket()
    app = lmtp_app(tmp_path, sink, socket=str(path), socket_mode="0600")
    d = RunningDaemon(app).start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with lmtp_client(d) as client:
            assert client.sendmail("a@acme.example.com", [BARE], SMALL) == {}
        assert len(list_inbox(app)) == 1
        d.stop()
        assert not path.exists(), "a daemon that stops removes its socket"
    finally:
        d.stop()
        app.store.close()


def test_a_socket_another_daemon_listens_on_is_left_to_it(tmp_path: Path, sink: MailSink, short_dir: Path) -> None:
    path = short_dir / "tb.sock"
    app = lmtp_app(tmp_path, sink, socket=str(path))
    first = RunningDaemon(app).start()
    try:
        with pytest.raises(ConfigError, match=r"^inbound\.socket: another server is listening on .*tb\.sock"):
            RunningDaemon(app).start()
        with lmtp_client(first) as client:
            assert client.sendmail("a@acme.example.com", [BARE], SMALL) == {}, "the first still has its socket"
    finally:
        first.stop()
        app.store.close()


def test_a_file_that_is_not_a_socket_is_not_removed_and_the_error_names_the_key(
        tmp_path: Path, sink: MailSink, short_dir: Path) -> None:
    path = short_dir / "tb.sock"
    path.write_text("not a socket")
    app = lmtp_app(tmp_path, sink, socket=str(path))
    try:
        with pytest.raises(ConfigError, match=r"^inbound\.socket: cannot listen on .*tb\.sock"):
            RunningDaemon(app).start()
        assert path.read_text() == "not a socket"
    finally:
        app.store.close()


def test_our_trouble_is_451_for_each_recipient_never_250(tmp_path: Path, sink: MailSink) -> None:
    app = lmtp_app(tmp_path, sink, max_message_bytes=10_000)
    config = app.config.model_copy(update={"database": app.config.database.model_copy(update={"busy_timeout_ms": 200})})
    app.store.close()
    app = open_app(config)
    d = RunningDaemon(app).start()
    try:
        client = RawLmtp(d)
        client.say(b"LHLO mx.market.example")

        def transaction(body: bytes) -> list[bytes]:
            client.say(b"MAIL FROM:<alice@acme.example.com>")
            client.say(f"RCPT TO:<{BARE}>".encode())
            client.say(f"RCPT TO:<{BARE}>".encode())
            assert client.say(b"DATA")[0].startswith(b"354")
            client.sock.sendall(body)
            return [r[:3] for r in client.say(b".", replies=2)]

        blocker = sqlite3.connect(tmp_path / "tb.db", timeout=5, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        assert transaction(SMALL) == [b"451", b"451"]
        blocker.execute("ROLLBACK")
        blocker.close()
        assert transaction(SMALL + (b"x" * 98 + b"\r\n") * 200) == [b"552", b"552"], "too big: each recipient told"
        assert transaction(SMALL) == [b"250", b"250"], "the relay's retry succeeds"
        assert client.say(b"NOOP")[0].startswith(b"250")
        client.close()
        assert len(list_inbox(app)) == 1
    finally:
        d.stop()
        app.store.close()
