"""The attacker's tests of what silences a party or speaks for one without its token, and of resend as a
mail cannon, against the running daemon over real SMTP and HTTP.

As in test_attacks, the parties' domains publish SPF naming their own servers (not loopback), a DKIM key
and DMARC p=reject, served by a DNS server on a loopback port; a reply sent from here is authenticated
only when the test signs it. The attacker knows what a party's mailbox shows: a confirmation's
Message-ID, and the party's own reply and bounce addresses.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from tests.conftest import DOMAIN
from tests.dnsserver import DnsServer
from tests.e2e.test_attacks import ALICE, DEALS, OPS, _market, confirmation, decision, internet, notices, read
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from tests.mailauth import sign
from transferbot.app import apikeys
from transferbot.app.context import App
from transferbot.app.controls import replace_contact
from transferbot.app.queries.views import list_inbox, transfer_detail
from transferbot.app.sweep import sweep
from transferbot.app.transfers import request_transfer
from transferbot.cli import main
from transferbot.core.clock import now
from transferbot.devtools.sink import MailSink
from transferbot.store.models import Event, OutboundMessage, Party

BOTH_BACKENDS = True  # tests/conftest.py runs this on SQLite and on PostgreSQL
BARE = f"transfer@{DOMAIN}"
__all__ = ["internet"]  # the fixture, shared with test_attacks


@pytest.fixture
def market(tmp_path: Path, sink: MailSink, internet: DnsServer, database_url: str) -> Iterator[RunningDaemon]:
    app = _market(tmp_path, sink, internet, database_url)
    d = RunningDaemon(app).start()
    yield d
    d.stop()
    app.store.close()


def dsn(to: str, failed: str, original_id: str, status: str = "5.1.1") -> bytes:
    """A delivery status notification as Postfix writes it: the failed recipient, and the headers of the
    returned message (its Message-ID)."""
    b = "4Fq79320B2B6.1795262714/mx.r2.example"
    return (f"From: MAILER-DAEMON@mx.r2.example (Mail Delivery System)\r\nTo: {to}\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nDate: {format_datetime(now())}\r\n"
            f"Message-ID: {make_msgid(domain='mx.r2.example')}\r\nAuto-Submitted: auto-replied\r\n"
            f'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="{b}"\r\n'
            f"\r\n--{b}\r\nContent-Type: text/plain\r\n\r\n<{failed}>: host mx.r2.example said: 550 {status} "
            f"User unknown\r\n"
            f"\r\n--{b}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.r2.example\r\n\r\n"
            f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; 550 {status} <{failed}>: User unknown\r\n"
            f"\r\n--{b}\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: Marketplace <{BARE}>\r\nTo: {failed}\r\n"
            f"Message-ID: {original_id}\r\nSubject: Transfer\r\n\r\n--{b}--\r\n").encode()


def undeliverable(app: App, tid: str, role: str) -> list[str]:
    party = next(p for p in transfer_detail(app, tid)["parties"] if p["role"] == role)
    return [u["address"] for u in party["undeliverable"]]


def outbox_rows(app: App, tid: str, kind: str, role: str | None = None) -> list[OutboundMessage]:
    with app.store.read() as session:
        query = select(OutboundMessage).where(OutboundMessage.transfer_id == tid, OutboundMessage.kind == kind)
        if role is not None:
            party = session.exec(select(Party).where(Party.transfer_id == tid, Party.role == role)).one()
            query = query.where(OutboundMessage.party_id == party.id)
        return list(session.exec(query))


def events(app: App, tid: str, kind: str) -> list[dict[str, Any]]:
    with app.store.read() as session:
        return [dict(e.data) for e in session.exec(select(Event).where(Event.transfer_id == tid, Event.kind == kind))]


def reminded(app: App, tid: str) -> list[str]:
    """Three days on, the silent are reminded: the addresses their reminders are queued for (due then)."""
    sweep(app, now() + timedelta(days=3, minutes=1))
    return sorted(a for row in outbox_rows(app, tid, "reminder") for a in row.recipients)


def cli_config(app: App, tmp_path: Path) -> str:
    path = tmp_path / "cli.toml"
    path.write_text(f'[database]\nurl = "{app.config.database.url}"\n[inbound]\ndomain = "{DOMAIN}"\n'
                    '[workflow]\nsecret = "test-secret"\n')
    return str(path)


# -- bounces: only at a bounce address we issued, and only for the mail and the recipient its key names -------

def test_a_forged_dsn_naming_a_confirmation_silences_nobody(
        market: RunningDaemon, sink: MailSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DSNs naming the reseller's address and its confirmation's Message-ID, sent to the bare address, to the
    reseller's reply address, and to the bounce address of the customer's confirmation."""
    app = market.app
    tid = request_transfer(app, "ent-1", "r2")
    conf, customers = confirmation(sink, OPS, tid), confirmation(sink, ALICE, tid)
    forged = {BARE: "bounce-ignored", reply_address(conf): "bounce-ignored",
              customers.mail_from: "bounce"}  # a key of ours: a bounce of the customer's mail, naming none of hers
    for rcpt in forged:
        send(market.port, dsn(rcpt, OPS, conf.message_id), rcpt, mail_from="")
    rows = wait_until(lambda: (rows := [r for r in list_inbox(app, None) if r["state"] == "done"])[2:] and rows,
                      what="the DSNs read")
    assert {r["rcpt_tos"][0]: r["outcome"] for r in rows} == forged, rows
    for row in rows:
        assert row["transfer"] == tid, row
        if row["outcome"] == "bounce-ignored":
            assert "not at a bounce address of ours: ignored" in row["reason"], row["reason"]
            assert conf.message_id not in row["reason"] and conf.message_id not in " ".join(row["checks"])
    capsys.readouterr()
    assert main(["--config", cli_config(app, tmp_path), "inbox"]) == 0
    assert capsys.readouterr().out.count("bounce-ignored") == 2
    assert undeliverable(app, tid, "new-reseller") == [] and undeliverable(app, tid, "customer") == []
    assert not events(app, tid, "address-undeliverable")
    assert outbox_rows(app, tid, "operator-alert") == [], "a forged bounce alerts nobody"
    assert reminded(app, tid) == sorted([ALICE, DEALS, OPS]), "the party is still reminded"


def test_a_bounce_key_of_a_replaced_contact_cannot_silence_the_new_one(
        market: RunningDaemon, sink: MailSink) -> None:
    """The old contact still knows the bounce address of the mail it was sent: a bounce there is a bounce of
    that mail, and can name only the address that mail went to."""
    app = market.app
    tid = request_transfer(app, "ent-1", "r2")
    old = confirmation(sink, OPS, tid)
    replace_contact(app, tid, "new-reseller", "sales@r2.example")
    new = confirmation(sink, "sales@r2.example", tid)
    send(market.port, dsn(old.mail_from, "sales@r2.example", new.message_id), old.mail_from, mail_from="")
    [row] = wait_until(lambda: [r for r in list_inbox(app, None) if r["state"] == "done"], what="the DSN read")
    assert row["outcome"] == "bounce"
    assert undeliverable(app, tid, "new-reseller") == []
    assert reminded(app, tid) == sorted([ALICE, DEALS, "sales@r2.example"])


def test_a_genuine_dsn_at_the_bounce_address_marks_the_address_undeliverable(
        market: RunningDaemon, sink: MailSink) -> None:
    app = market.app
    tid = request_transfer(app, "ent-1", "r2")
    conf = confirmation(sink, OPS, tid)
    assert conf.mail_from.startswith("bounce+") and conf.mail_from.endswith(f"@{DOMAIN}")
    send(market.port, dsn(conf.mail_from, OPS, conf.message_id), conf.mail_from, mail_from="")
    [row] = wait_until(lambda: [r for r in list_inbox(app, tid) if r["state"] == "done"], what="the DSN read")
    assert row["outcome"] == "bounce" and "5.1.1" in row["reason"], row
    assert undeliverable(app, tid, "new-reseller") == [OPS]
    assert len(outbox_rows(app, tid, "operator-alert")) == 1
    assert reminded(app, tid) == sorted([ALICE, DEALS]), "no reminder to an undeliverable address"


# -- threading without a token --------------------------------------------------------------------------------

@pytest.mark.parametrize("sender_auth", ["off", "verify"])
def test_a_reply_threaded_to_a_partys_mail_without_its_token_counts_only_from_an_authenticated_sender(
        tmp_path: Path, sink: MailSink, internet: DnsServer, database_url: str, sender_auth: str) -> None:
    extra = {"allow_unauthenticated": True} if sender_auth == "off" else {}
    app = _market(tmp_path, sink, internet, database_url, sender_auth=sender_auth, **extra)
    d = RunningDaemon(app).start()
    try:
        tid = request_transfer(app, "ent-1", "r2")
        conf = confirmation(sink, OPS, tid)

        def threaded(signed: bool = False) -> bytes:
            """To the bare address, with no reference line: only In-Reply-To names the party."""
            raw = reply(conf, OPS, "APPROVE", quote=False, to=BARE).as_bytes(policy=SMTP)
            return sign(raw, "r2.example") if signed else raw

        send(d.port, threaded(), BARE, mail_from=OPS)
        [row] = read(app, tid)
        assert (row["outcome"], decision(app, tid, "new-reseller")) == ("not-a-party", "pending"), row["checks"]
        assert "token=thread" in row["checks"]
        if sender_auth == "verify":
            assert row["decided_by"].startswith("authentication=fail"), row["checks"]
            send(d.port, threaded(signed=True), BARE, mail_from=OPS)
            assert read(app, tid, 2)[-1]["outcome"] == "approved", "threaded, from an authenticated sender: counted"
            assert decision(app, tid, "new-reseller") == "approved"
            return
        assert row["decided_by"] == "thread-only=sender not authenticated", row["checks"]
        assert "only the reply address counts" in row["reason"], row["reason"]
        helped = wait_until(lambda: notices(sink, OPS, "help"), what="the help mail")
        text = " ".join(helped[0].text().split())
        assert "did not come to your personal reply address" in text, text
        assert reply_address(helped[0]) == reply_address(conf)
        send(d.port, threaded(signed=True), BARE, mail_from=OPS)  # again the same day: no second help mail
        assert read(app, tid, 2)[-1]["outcome"] == "not-a-party", "with authentication off, a signature proves nothing"
        assert len(outbox_rows(app, tid, "help")) == 1
        send(d.port, reply(conf, OPS, "APPROVE", quote=False).as_bytes(policy=SMTP), reply_address(conf),
             mail_from=OPS)
        assert read(app, tid, 3)[-1]["outcome"] == "approved", "the token still counts"
    finally:
        d.stop()
        app.store.close()


# -- resend: at most once a party an hour, in one rule for the CLI, the API and the dashboard -----------------

def test_twenty_resends_over_http_send_one_confirmation(market: RunningDaemon, sink: MailSink) -> None:
    app = market.app
    _, key = apikeys.create_key(app, "vendor", "vendor's systems")
    tid = request_transfer(app, "ent-1", "r2")
    confirmation(sink, OPS, tid)
    assert market.daemon is not None and market.daemon.http is not None
    with httpx.Client(base_url=f"http://127.0.0.1:{market.daemon.http.port}", timeout=10,
                      headers={"Authorization": f"Bearer {key}"}) as http:
        answers = [http.post(f"/v1/transfers/{tid}/resend", json={"role": "new-reseller"}) for _ in range(20)]
        assert [a.status_code for a in answers] == [200] + [429] * 19, [a.text for a in answers[:3]]
        assert answers[0].json() == {"id": tid, "resent_to": ["new-reseller"]}
        for refused in answers[1:]:
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert 3500 <= int(refused.headers["retry-after"]) <= 3600
            body = refused.json()
            assert body["status"] == 429 and "at most once an hour" in body["detail"], body
        # Without a role: the parties not resent within the hour are, the one that was is not.
        everyone = http.post(f"/v1/transfers/{tid}/resend")
        assert everyone.status_code == 200 and everyone.json()["resent_to"] == ["customer", "isv"]
        assert http.post(f"/v1/transfers/{tid}/resend").status_code == 429
    assert len(outbox_rows(app, tid, "confirmation", "new-reseller")) == 2
    wait_until(lambda: len(notices(sink, OPS, "confirmation")) == 2, what="the one resent confirmation")
    assert len(events(app, tid, "resent")) == 3


def test_a_cli_resend_past_the_limit_is_refused_in_one_line_and_force_is_audited(
        market: RunningDaemon, sink: MailSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = market.app
    tid = request_transfer(app, "ent-1", "r2")
    confirmation(sink, DEALS, tid)
    cfg = cli_config(app, tmp_path)
    assert main(["--config", cfg, "resend", tid, "--role", "isv"]) == 0
    capsys.readouterr()
    assert main(["--config", cfg, "resend", tid, "--role", "isv"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("transferbot: error: ") and "Traceback" not in err, err
    assert "at most once an hour" in err and "--force" in err, err
    assert len(outbox_rows(app, tid, "confirmation", "isv")) == 2
    assert main(["--config", cfg, "resend", tid, "--role", "isv", "--force"]) == 0
    assert len(outbox_rows(app, tid, "confirmation", "isv")) == 3
    first, forced = events(app, tid, "resent")
    assert not first.get("forced")
    assert forced["forced"] is True and forced["role"] == "isv" and forced["by"].startswith("operator"), forced
    wait_until(lambda: len(notices(sink, DEALS, "confirmation")) == 3, what="the forced confirmation")
