"""The attacker's tests: consent that cannot be forged, and an edge that no single message can disturb.

Every test runs the real daemon on loopback with sender authentication as configured by default
("verify"): DKIM signatures are made at test time with keys the test generates, and SPF, DKIM and
DMARC records are served by a DNS server the test runs on a loopback port. The parties' domains
publish what a well-run domain publishes: SPF naming their own servers (not loopback, so a reply
sent from here passes only with a DKIM signature), a DKIM key, and DMARC p=reject.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import threading
from collections.abc import Iterator
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from tests.conftest import DOMAIN, make_config
from tests.dnsserver import DnsServer
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from tests.mailauth import publish_key, sign
from transferbot.app import registry
from transferbot.app.context import App, open_app
from transferbot.app.controls import replace_contact
from transferbot.app.queries.views import list_inbox, transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.cli import main
from transferbot.devtools.sink import MailSink, Received
from transferbot.store.models import Event, InboundMessage

ALICE, DEALS, OPS = "alice@acme.example", "deals@vendor.example", "ops@r2.example"
PARTY_DOMAINS = ("acme.example", "vendor.example", "r2.example")
MX = "mx.market.example"


def publish(dns: DnsServer, domain: str, *, spf: str | None = "v=spf1 ip4:192.0.2.25 -all",
            dmarc: str | None = "v=DMARC1; p=reject", dkim: bool = True) -> None:
    """What a domain publishes (None: nothing of that kind)."""
    for name in (domain, f"_dmarc.{domain}", f"sel._domainkey.{domain}"):
        dns.remove(name)
    if spf:
        dns.txt(domain, spf)
    if dmarc:
        dns.txt(f"_dmarc.{domain}", dmarc)
    if dkim:
        publish_key(dns, domain)


@pytest.fixture
def internet(dns_server: DnsServer) -> DnsServer:
    for domain in PARTY_DOMAINS:
        publish(dns_server, domain)
    publish(dns_server, "mailer.example", dmarc=None)
    dns_server.txt("evil.example", "v=spf1 +all")  # the forger's own domain passes its own SPF
    return dns_server


def _market(tmp_path: Path, sink: MailSink, dns: DnsServer, database: str | None = None, **inbound: Any) -> App:
    """The marketplace of these tests (on ``database``, a URL; else a SQLite file in ``tmp_path``)."""
    config = make_config(tmp_path, sink.port, inbound={
        "dns_resolvers": [dns.address], "dns_timeout_seconds": 0.5, "dns_retry_seconds": 0.3,
        "messages_per_minute_per_sender": 0, **inbound}, **({"database": {"url": database}} if database else {}))
    app = open_app(config, upgrade=True)
    registry.add_account(app, "acme", "customer", "Acme GmbH", [ALICE])
    registry.add_account(app, "vendor", "isv", "Vendor Inc", [DEALS])
    registry.add_account(app, "r1", "reseller", "Reseller One", ["ops@r1.example"])
    registry.add_account(app, "r2", "reseller", "Reseller Two", [OPS])
    registry.add_entitlement(app, "ent-1", "Analytics Pro", "acme", "vendor")
    registry.add_entitlement(app, "ent-2", "Storage Plus", "acme", "vendor")
    return app


@pytest.fixture
def market(tmp_path: Path, sink: MailSink, internet: DnsServer) -> Iterator[RunningDaemon]:
    app = _market(tmp_path, sink, internet)
    d = RunningDaemon(app).start()
    yield d
    d.stop()
    app.store.close()


def confirmation(sink: MailSink, address: str, tid: str) -> Received:
    def found() -> list[Received]:
        return [m for m in sink.to(address) if m.message["X-Transferbot-Kind"] == "confirmation"
                and m.message["X-Transferbot-Transfer"] == tid]
    return wait_until(found, what=f"confirmation for {address}")[0]


def notices(sink: MailSink, address: str, kind: str) -> list[Received]:
    return [m for m in sink.to(address) if m.message["X-Transferbot-Kind"] == kind]


def answer(conf: Received, sender: str, text: str = "APPROVE", *, from_header: str | None = None,
           headers: dict[str, str] | None = None, signer: str | None = None) -> bytes:
    msg = reply(conf, sender, text, extra_headers=headers)
    if from_header is not None:
        msg.replace_header("From", from_header)
    raw = msg.as_bytes(policy=SMTP)
    return sign(raw, signer) if signer else raw


def read(app: App, tid: str, n: int = 1) -> list[dict[str, Any]]:
    return wait_until(lambda: (rows := [r for r in list_inbox(app, tid) if r["state"] == "done"])[n - 1:] and rows,
                      what=f"{n} replies read")


def decision(app: App, tid: str, role: str) -> str:
    return next(p["decision"] for p in transfer_detail(app, tid)["parties"] if p["role"] == role)


# -- sender authentication in the default configuration ("verify") --------------------------------------------

def test_a_dkim_signed_reply_counts(market: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    send(market.port, answer(conf, DEALS, signer="vendor.example"), reply_address(conf), mail_from=DEALS)
    [row] = read(market.app, tid)
    assert row["outcome"] == "approved", row["checks"]
    assert row["auth"].startswith("auth=pass") and "dkim=pass(vendor.example)" in row["auth"]
    assert decision(market.app, tid, "isv") == "approved"


def test_a_forged_from_with_the_right_token_is_refused_and_the_party_is_told(
        market: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    send(market.port, answer(conf, DEALS), reply_address(conf), mail_from="mallory@evil.example")
    [row] = read(market.app, tid)
    assert row["outcome"] == "not-a-party" and row["decided_by"].startswith("authentication=fail"), row["checks"]
    assert "p=reject" in row["reason"] and "evil.example" in row["reason"], row["reason"]
    assert row["mail_from"] == "mallory@evil.example"
    assert decision(market.app, tid, "isv") == "pending"
    told = wait_until(lambda: notices(sink, DEALS, "ignored-sender"), what="the ISV told")
    text = " ".join(told[0].text().split())
    assert "could not be authenticated" in text and "DKIM" in text and "vendor.example" in text
    for other in (ALICE, OPS):
        assert not notices(sink, other, "ignored-sender")


def test_a_dkim_signature_by_another_domain_does_not_count(market: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    send(market.port, answer(conf, DEALS, signer="mailer.example"), reply_address(conf), mail_from=DEALS)
    [row] = read(market.app, tid)
    assert row["outcome"] == "not-a-party"
    assert "DKIM signature by mailer.example does not align with vendor.example" in row["reason"], row["reason"]
    told = wait_until(lambda: notices(sink, DEALS, "ignored-sender"), what="the ISV told")
    assert "mailer.example" in " ".join(told[0].text().split())


def test_spf_aligned_for_a_domain_without_dmarc_counts(market: RunningDaemon, sink: MailSink,
                                                         internet: DnsServer) -> None:
    publish(internet, "vendor.example", spf="v=spf1 ip4:127.0.0.1 -all", dmarc=None, dkim=False)
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    send(market.port, answer(conf, DEALS), reply_address(conf), mail_from=DEALS)
    [row] = read(market.app, tid)
    assert row["outcome"] == "approved", (row["checks"], row["reason"])
    assert "spf=pass" in row["auth"] and "dmarc=none" in row["auth"]


def test_a_domain_that_publishes_nothing_is_not_counted_and_the_party_is_told_what_to_publish(
        market: RunningDaemon, sink: MailSink, internet: DnsServer) -> None:
    publish(internet, "vendor.example", spf=None, dmarc=None, dkim=False)
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    send(market.port, answer(conf, DEALS), reply_address(conf), mail_from=DEALS)
    [row] = read(market.app, tid)
    assert row["outcome"] == "not-a-party" and "publishes no DMARC record" in row["reason"]
    told = wait_until(lambda: notices(sink, DEALS, "ignored-sender"), what="the ISV told")
    assert "Publish an SPF record for vendor.example" in " ".join(told[0].text().split())


def test_dns_timing_out_makes_the_reply_wait_then_it_counts(market: RunningDaemon, sink: MailSink,
                                                            internet: DnsServer) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    for name in ("vendor.example", "_dmarc.vendor.example", "sel._domainkey.vendor.example"):
        internet.fault(name, "drop")
    send(market.port, answer(conf, DEALS, signer="vendor.example"), reply_address(conf), mail_from=DEALS)
    waiting = wait_until(lambda: [r for r in list_inbox(market.app, tid) if "waiting to authenticate" in r["reason"]]
                         or [r for r in list_inbox(market.app, None) if "waiting to authenticate" in r["reason"]],
                         what="the reply waiting")
    assert waiting[0]["state"] == "new" and decision(market.app, tid, "isv") == "pending"
    internet.clear_faults()
    [row] = read(market.app, tid)
    assert row["outcome"] == "approved"
    with market.app.store.read() as session:
        stored = session.exec(select(InboundMessage).where(InboundMessage.id == row["id"])).one()
        assert stored.auth_tries >= 1
        approvals = session.exec(select(Event).where(Event.transfer_id == tid, Event.kind == "approved")).all()
        assert len(approvals) == 1


def test_a_from_with_two_addresses_is_nobodys_reply(market: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    raw = answer(conf, DEALS, from_header=f"{DEALS}, mallory@evil.example", signer="vendor.example")
    send(market.port, raw, reply_address(conf), mail_from=DEALS)
    [row] = read(market.app, tid)
    assert row["outcome"] == "not-a-party" and "sender=From holds 2 addresses" in row["checks"], row["checks"]
    assert decision(market.app, tid, "isv") == "pending"


def test_an_envelope_sender_unlike_the_from_is_recorded_and_authentication_decides(
        market: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    conf = confirmation(sink, DEALS, tid)
    send(market.port, answer(conf, DEALS, signer="vendor.example"), reply_address(conf),
         mail_from="bounces+x@esp.example")
    [row] = read(market.app, tid)
    assert row["outcome"] == "approved" and row["mail_from"] == "bounces+x@esp.example"
    assert "sender=registered (envelope bounces+x@esp.example)" in row["checks"]


def test_a_forged_authentication_results_header_counts_for_nothing_when_we_are_the_mx(
        tmp_path: Path, sink: MailSink, internet: DnsServer) -> None:
    app = _market(tmp_path, sink, internet, trusted_authserv_id=MX)  # set, but transferbot is the MX ("verify")
    d = RunningDaemon(app).start()
    try:
        tid = request_transfer(app, "ent-1", "r2")
        conf = confirmation(sink, DEALS, tid)
        forged = {"Authentication-Results": f"{MX}; dkim=pass header.d=vendor.example; "
                                            "dmarc=pass header.from=vendor.example"}
        send(d.port, answer(conf, DEALS, headers=forged), reply_address(conf), mail_from="mallory@evil.example")
        [row] = read(app, tid)
        assert row["outcome"] == "not-a-party" and row["decided_by"].startswith("authentication=fail")
    finally:
        d.stop()
        app.store.close()


# -- behind an MX ("trusted-relay") ---------------------------------------------------------------------------

@pytest.mark.parametrize(("relays", "headers", "outcome"), [
    # A forged header from a client that is not the relay: ignored, whatever it says.
    (["192.0.2.0/24"], [f"{MX}; dkim=pass header.d=vendor.example; dmarc=pass header.from=vendor.example"],
     "not-a-party"),
    (["192.0.2.0/24"], ["MX.MARKET.EXAMPLE 1; dkim=pass header.i=@vendor.example"], "not-a-party"),
    # From the relay: only the topmost header with its authserv-id counts.
    (["127.0.0.0/8"], [f"{MX}; dmarc=fail header.from=vendor.example",
                       f"{MX}; dkim=pass header.d=vendor.example; dmarc=pass header.from=vendor.example"],
     "not-a-party"),
    (["127.0.0.0/8"], [f"{MX}; dkim=pass header.d=vendor.example; dmarc=pass header.from=vendor.example",
                       f"{MX}; dmarc=fail header.from=vendor.example"], "approved"),
    # A domain that publishes only SPF approves from behind the MX.
    (["127.0.0.0/8"], [f"{MX}; spf=pass smtp.mailfrom={DEALS}; dmarc=none header.from=vendor.example"],
     "approved"),
    (["127.0.0.0/8"], ["MX.MARKET.EXAMPLE 1; dkim=pass header.i=@vendor.example"], "approved"),
    (["127.0.0.0/8"], [f"{MX}; dmarc=pass header.from=evil.example"], "not-a-party"),
])
def test_behind_an_mx_only_the_relays_topmost_header_counts(
        tmp_path: Path, sink: MailSink, internet: DnsServer, relays: list[str], headers: list[str],
        outcome: str) -> None:
    app = _market(tmp_path, sink, internet, sender_auth="trusted-relay", trusted_relays=relays,
                  trusted_authserv_id=MX)
    d = RunningDaemon(app).start()
    try:
        tid = request_transfer(app, "ent-1", "r2")
        conf = confirmation(sink, DEALS, tid)
        msg = reply(conf, DEALS, "APPROVE")
        for value in reversed(headers):  # the topmost goes in last, on top
            msg._headers.insert(0, ("Authentication-Results", value))  # type: ignore[attr-defined]
        send(d.port, msg.as_bytes(policy=SMTP), reply_address(conf), mail_from=DEALS)
        [row] = read(app, tid)
        assert row["outcome"] == outcome, (row["checks"], row["reason"])
    finally:
        d.stop()
        app.store.close()


# -- one message cannot hurt another --------------------------------------------------------------------------

def _raw_session(port: int, lines: list[bytes]) -> list[bytes]:
    """An SMTP client that sends what it is told, bytes and all; returns each reply line after the banner."""
    answers: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        for line in lines:
            s.sendall(line + b"\r\n")
            while True:
                got = f.readline()
                if got[3:4] != b"-":
                    answers.append(got.strip())
                    break
    return answers


@pytest.mark.slow
def test_malformed_envelopes_among_genuine_replies_disturb_none_of_them(
        tmp_path: Path, sink: MailSink, daemon_factory: Any) -> None:
    _malformed_among_genuine(tmp_path, sink, daemon_factory, f"sqlite:///{tmp_path / 'tb.db'}")


@pytest.mark.slow
def test_malformed_envelopes_among_genuine_replies_disturb_none_of_them_on_postgresql(
        tmp_path: Path, sink: MailSink, daemon_factory: Any, postgres_url: str) -> None:
    """The edge stores a group with multi-row INSERTs there: a group that fails is stored one by one."""
    _malformed_among_genuine(tmp_path, sink, daemon_factory, postgres_url)


def _malformed_among_genuine(tmp_path: Path, sink: MailSink, daemon_factory: Any, url: str) -> None:
    app = open_app(make_config(tmp_path, sink.port, database={"url": url},
                               inbound={"messages_per_minute_per_sender": 0, "max_connections_per_client": 0}),
                   upgrade=True)
    registry.add_account(app, "vendor", "isv", "Vendor Inc", ["deals@vendor.example.com"])
    registry.add_account(app, "r2", "reseller", "Reseller Two", ["ops@r2.example.com"])
    for n in range(7):
        registry.add_account(app, f"c{n}", "customer", f"Customer {n}", [f"buyer@c{n}.example.com"])
        registry.add_entitlement(app, f"e{n}", "Analytics", f"c{n}", "vendor")
    tids = [request_transfer(app, f"e{n}", "r2") for n in range(7)]
    d = daemon_factory(app)
    confs = wait_until(lambda: [m for m in sink.unique() if m.message["X-Transferbot-Kind"] == "confirmation"]
                       if len(sink.unique()) >= 21 else [], what="21 confirmations")
    genuine = [(reply_address(c), c.rcpt_tos[0], reply(c, c.rcpt_tos[0], "APPROVE").as_bytes(policy=SMTP))
               for c in confs[:20]]
    bare = f"transfer@{DOMAIN}".encode()
    malformed = [
        [b"EHLO attacker", b"MAIL FROM:<\xff@h.example>", b"RCPT TO:<postmaster@" + DOMAIN.encode() + b">", b"DATA"],
        [b"EHLO attacker", b"MAIL FROM:<\xff\xfe@h.example>", b"RCPT TO:<" + bare + b">"],
        [b"EHLO attacker", b"MAIL FROM:<ok@h.example>", b"RCPT TO:<transfer+\xff@" + DOMAIN.encode() + b">"],
        [b"EHLO attacker", b"MAIL FROM:<a\x00b@h.example>", b"RCPT TO:<" + bare + b">"],
    ] * 5
    results: dict[str, dict[str, Any]] = {}
    odd: list[list[bytes]] = []
    lock = threading.Lock()

    def good(rcpt: str, sender: str, raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", d.port, timeout=20) as client:
            refused = client.sendmail(sender, [rcpt], raw)
        with lock:
            results[sender + rcpt] = refused

    def bad(lines: list[bytes]) -> None:
        answers = _raw_session(d.port, lines)
        with lock:
            odd.append(answers)

    threads = [threading.Thread(target=good, args=g) for g in genuine] + \
              [threading.Thread(target=bad, args=(m,)) for m in malformed]
    for i in range(0, len(threads), 2):  # interleaved: genuine and malformed sessions at the same moment
        threads[i].start()
    for i in range(1, len(threads), 2):
        threads[i].start()
    for t in threads:
        t.join(60)
    assert len(results) == 20 and all(r == {} for r in results.values()), results
    for answers in odd:
        codes = [a[:3] for a in answers]
        assert b"553" in codes or b"501" in codes or b"500" in codes, answers
        assert all(not c.startswith(b"4") for c in codes), answers
    wait_until(lambda: sum(p["decision"] == "approved" for t in tids for p in transfer_detail(app, t)["parties"])
               == 20, timeout=30, what="all 20 approvals recorded")


def test_an_exception_in_a_session_is_a_451_not_a_500(market: RunningDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    assert market.daemon is not None

    def boom(*_args: object) -> bool:
        raise RuntimeError("our bug")

    monkeypatch.setattr(market.daemon.handler.rates, "allow", boom)
    answers = _raw_session(market.port, [b"EHLO client", b"MAIL FROM:<alice@acme.example>"])
    assert answers[-1].startswith(b"451 "), answers


# -- contacts --------------------------------------------------------------------------------------------------

def test_replace_contact_refuses_another_partys_address_writing_nothing(
        market: RunningDaemon, sink: MailSink, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[database]\nurl = "{market.app.config.database.url}"\n[inbound]\ndomain = "{DOMAIN}"\n'
                   '[workflow]\nsecret = "test-secret"\n')
    before = len(transfer_detail(market.app, tid)["events"])
    capsys.readouterr()
    assert main(["--config", str(cfg), "replace-contact", tid, "new-reseller", DEALS]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is an address of the isv" in err and "Traceback" not in err
    assert len(transfer_detail(market.app, tid)["events"]) == before


def test_the_replaced_contact_is_told_and_later_replies_from_it_are_answered_once_a_day(
        market: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    old_conf = confirmation(sink, OPS, tid)
    replace_contact(market.app, tid, "new-reseller", "sales@r2.example")
    told = wait_until(lambda: notices(sink, OPS, "contact-replaced"), what="the old contact told")
    text = " ".join(told[0].text().split())
    assert "Reseller Two" in text and "sales@r2.example" not in told[0].raw.decode("utf-8", "replace")
    assert told[0].message["Reply-To"] is None and "[ref:" not in text
    for n in (1, 2):  # the old contact declines twice, with its old token
        send(market.port, answer(old_conf, OPS, "DECLINE - we never agreed", signer="r2.example"),
             reply_address(old_conf), mail_from=OPS)
        rows = read(market.app, tid, n)
    assert [r["outcome"] for r in rows] == ["not-a-party", "not-a-party"]
    assert transfer_detail(market.app, tid)["status"] == "pending"
    shown = transfer_detail(market.app, tid)
    assert sum(e["kind"] == "reply-received" and e.get("replaced_contact") for e in shown["events"]) == 2
    assert len(shown["inbound"]) == 2
    wait_until(lambda: len(notices(sink, OPS, "contact-replaced")) == 2, what="told again, once")
    assert len(notices(sink, OPS, "contact-replaced")) == 2


# -- privacy ---------------------------------------------------------------------------------------------------

def _everything_in(m: Received) -> str:
    """Every part of a message, decoded, attachments included."""
    out = [m.raw.decode("utf-8", "replace")]
    for part in m.message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append(payload.decode("utf-8", "replace"))
    return "\n".join(out)


def test_no_mail_of_a_completed_transfer_reveals_another_partys_address_token_or_message_ids(
        market: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(market.app, "ent-1", "r2")
    confs = {a: confirmation(sink, a, tid) for a in (ALICE, DEALS, OPS)}
    # The ISV first answers in the customer's thread, from its own address: not counted for the customer.
    send(market.port, answer(confs[ALICE], DEALS, signer="vendor.example"), reply_address(confs[ALICE]),
         mail_from=DEALS)
    read(market.app, tid, 1)
    for address, signer in ((ALICE, "acme.example"), (DEALS, "vendor.example"), (OPS, "r2.example")):
        send(market.port, answer(confs[address], address, signer=signer), reply_address(confs[address]),
             mail_from=address)
    wait_until(lambda: transfer_detail(market.app, tid)["status"] == "completed", what="completed")
    wait_until(lambda: all(notices(sink, a, "completed") for a in (ALICE, DEALS, OPS)), what="completion notices")
    detail = transfer_detail(market.app, tid)
    tokens = {p["email"]: reply_address(confs[p["email"]]).split("+")[1].split("@")[0] for p in detail["parties"]}
    ids = {a: {o["message_id"] for o in detail["outbound"] if a in o["to"]} for a in (ALICE, DEALS, OPS)}
    for address in (ALICE, DEALS, OPS):
        mails = [m for m in sink.to(address) if m.message["X-Transferbot-Transfer"] == tid]
        assert mails
        for m in mails:
            body = _everything_in(m)
            for other in (ALICE, DEALS, OPS):
                if other == address:
                    continue
                assert other not in body, (m.subject, other)
                assert tokens[other] not in body, (m.subject, "token of", other)
                assert not any(mid.strip("<>") in body for mid in ids[other]), (m.subject, "Message-ID of", other)
    completed = notices(sink, ALICE, "completed")[0]
    html = next(p for p in completed.message.walk() if p.get_filename(""). endswith(".html"))
    assert html.get_content_charset() == "utf-8"
    assert base64.b64decode(html.get_payload()).decode("utf-8").startswith("<!DOCTYPE html>")
    ignored = notices(sink, ALICE, "ignored-sender")[0]
    assert "another party" in " ".join(ignored.text().split())


def test_a_failed_group_commit_fails_no_other_message_in_it() -> None:
    """The database refuses one message of a group: the others are stored alone, and only that one fails."""
    import asyncio

    import sqlalchemy as sa

    from transferbot.core.clock import now
    from transferbot.inbound.intake import Arrival, GroupCommit, Unstorable

    stored: list[bytes] = []
    groups: list[int] = []

    async def commit(batch: Any) -> list[int]:
        groups.append(len(batch))
        await asyncio.sleep(0)
        if any(a.raw == b"poison" for a in batch):
            raise sa.exc.DataError("INSERT …", {}, ValueError("cannot store this"))
        stored.extend(a.raw for a in batch)
        return [len(stored) - len(batch) + i + 1 for i in range(len(batch))]

    async def scenario() -> list[Any]:
        group = GroupCommit(commit)
        arrivals = [Arrival(b"genuine %d" % n if n != 3 else b"poison", "a@x.example", ("t@y.example",), "127.0.0.1",
                            now()) for n in range(8)]
        return await asyncio.gather(*(group.store(a) for a in arrivals), return_exceptions=True)

    results = asyncio.run(scenario())
    assert isinstance(results[3], Unstorable)
    assert all(isinstance(r, int) for i, r in enumerate(results) if i != 3), results
    assert len(stored) == 7 and b"poison" not in stored
    assert max(groups) > 1, "they were committed as a group first"
