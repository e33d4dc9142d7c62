"""The whole lifecycle over real SMTP: the daemon on loopback, a sink relay, replies by smtplib."""

from __future__ import annotations

import re
import smtplib

import pytest

from tests.conftest import DOMAIN
from tests.helpers import RunningDaemon, reply, reply_address, send, wait_until
from transferbot.app.context import App
from transferbot.app.queries.views import list_inbox, transfer_detail
from transferbot.app.transfers import request_transfer
from transferbot.devtools.sink import MailSink, Received

BOTH_BACKENDS = True  # tests/conftest.py runs these on SQLite and on PostgreSQL

ADDRESSES = {"customer": "alice@acme.example.com", "isv": "deals@vendor.example.com",
             "current-reseller": "ops@r1.example.com", "new-reseller": "ops@r2.example.com"}


def mail(sink: MailSink, address: str, kind: str, transfer: str, count: int = 1) -> list[Received]:
    def found() -> list[Received]:
        got = [m for m in sink.to(address)
               if m.message["X-Transferbot-Kind"] == kind and m.message["X-Transferbot-Transfer"] == transfer]
        return got if len(got) >= count else []
    return wait_until(found, what=f"{kind} mail for {address} ({transfer})")


def outcome_of(app: App, transfer: str, n: int) -> list[str]:
    rows = wait_until(lambda: [r for r in list_inbox(app, transfer) if r["state"] == "done"][n - 1:] and
                      [r for r in list_inbox(app, transfer) if r["state"] == "done"], what=f"{n} inbound read")
    return [r["outcome"] for r in rows]


def approve_all(daemon: RunningDaemon, sink: MailSink, tid: str, roles: list[str]) -> None:
    for n, role in enumerate(roles, start=1):
        confirmation = mail(sink, ADDRESSES[role], "confirmation", tid)[0]
        send(daemon.port, reply(confirmation, ADDRESSES[role], "APPROVE"), reply_address(confirmation))
        assert outcome_of(daemon.app, tid, n)[-1] == "approved"


@pytest.mark.parametrize(("entitlement", "target", "kind", "roles", "moved_to"), [
    ("ent-direct", "r2", "direct-to-reseller", ["customer", "isv", "new-reseller"], "r2"),
    ("ent-r1", None, "reseller-to-direct", ["customer", "isv", "current-reseller"], None),
    ("ent-r1", "r2", "reseller-change", ["customer", "isv", "current-reseller", "new-reseller"], "r2"),
])
def test_each_kind_completes_when_every_party_approves(
    daemon: RunningDaemon, sink: MailSink, entitlement: str, target: str | None, kind: str, roles: list[str],
    moved_to: str | None,
) -> None:
    tid = request_transfer(daemon.app, entitlement, target)
    detail = transfer_detail(daemon.app, tid)
    assert detail["kind"] == kind
    assert [p["role"] for p in detail["parties"]] == roles

    approve_all(daemon, sink, tid, roles[:-1])
    assert transfer_detail(daemon.app, tid)["status"] == "pending"
    assert transfer_detail(daemon.app, tid)["entitlement"]["reseller"] == ("r1" if entitlement == "ent-r1" else None)

    approve_all_last = roles[-1]
    confirmation = mail(sink, ADDRESSES[approve_all_last], "confirmation", tid)[0]
    send(daemon.port, reply(confirmation, ADDRESSES[approve_all_last], "approve"), reply_address(confirmation))
    wait_until(lambda: transfer_detail(daemon.app, tid)["status"] == "completed", what="completion")

    detail = transfer_detail(daemon.app, tid)
    assert detail["entitlement"]["reseller"] == moved_to
    assert all(p["decision"] == "approved" for p in detail["parties"])
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds.count("entitlement-moved") == 1 and kinds.count("completed") == 1
    assert kinds.index("entitlement-moved") < kinds.index("completed")
    for role in roles:
        notice = mail(sink, ADDRESSES[role], "completed", tid)[0]
        confirmation = mail(sink, ADDRESSES[role], "confirmation", tid)[0]
        assert notice.message["In-Reply-To"] == confirmation.message_id
        assert notice.message["References"] == confirmation.message_id
        assert tid in notice.subject


def test_confirmation_names_everything_a_party_needs(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-r1", "r2", "Customer asked on the phone")
    tokens = set()
    for address in ADDRESSES.values():
        m = mail(sink, address, "confirmation", tid)[0]
        assert tid in m.subject and "Analytics Pro" in m.subject
        assert m.message["Message-ID"] and m.message["Date"]
        assert m.message["Auto-Submitted"] == "auto-generated"
        reply_to = reply_address(m)
        token = re.fullmatch(rf"transfer\+([a-z2-7]{{24}})@{re.escape(DOMAIN)}", reply_to)
        assert token, reply_to
        tokens.add(token.group(1))
        text, html = m.text(), m.html()
        for needle in ("Analytics Pro", "Acme Corp", "Reseller One", "Reseller Two", "Vendor Inc", "APPROVE",
                       "DECLINE", f"[ref:{token.group(1)}]", "Customer asked on the phone"):
            assert needle in text, needle
            assert needle in html, needle
        assert m.message.get_content_type() == "multipart/alternative"
    assert len(tokens) == 4, "each party has its own token"
    # The customer's confirmation goes to all of its addresses.
    customer = mail(sink, "bob@acme.example.com", "confirmation", tid)[0]
    assert set(customer.rcpt_tos) == {"alice@acme.example.com", "bob@acme.example.com"}


def test_a_decline_closes_the_transfer_and_everyone_is_told_who(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-r1", "r2")
    approve_all(daemon, sink, tid, ["customer"])
    confirmation = mail(sink, ADDRESSES["current-reseller"], "confirmation", tid)[0]
    send(daemon.port, reply(confirmation, ADDRESSES["current-reseller"],
                            "DECLINE\nWe still have a support contract running until March."),
         reply_address(confirmation))
    wait_until(lambda: transfer_detail(daemon.app, tid)["status"] == "declined", what="declined")
    detail = transfer_detail(daemon.app, tid)
    assert detail["entitlement"]["reseller"] == "r1", "the entitlement is untouched"
    assert {p["role"]: p["decision"] for p in detail["parties"]} == {
        "customer": "approved", "isv": "pending", "current-reseller": "declined", "new-reseller": "pending"}
    for address in ADDRESSES.values():
        notice = mail(sink, address, "declined", tid)[0]
        assert "Reseller One" in notice.flat() and "Current reseller" in notice.flat()
        assert "support contract running until March" in notice.flat()
    # A later approval changes nothing and is recorded as such.
    isv_conf = mail(sink, ADDRESSES["isv"], "confirmation", tid)[0]
    send(daemon.port, reply(isv_conf, ADDRESSES["isv"], "APPROVE"), reply_address(isv_conf))
    assert outcome_of(daemon.app, tid, 3)[-1] == "closed"
    assert transfer_detail(daemon.app, tid)["status"] == "declined"


def test_rcpt_outside_our_addresses_is_refused_at_rcpt(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    good = reply_address(mail(sink, ADDRESSES["customer"], "confirmation", tid)[0])
    with smtplib.SMTP("127.0.0.1", daemon.port, timeout=10) as client:
        client.ehlo("client.example.com")
        client.mail("alice@acme.example.com")
        for bad in ("someone@elsewhere.example.org", f"info@{DOMAIN}", f"transfer+notatoken@{DOMAIN}",
                    f"transfer+{'a' * 24}@{DOMAIN}", f"bounce@{DOMAIN}"):
            code, text = client.rcpt(bad)
            assert code == 550, (bad, code, text)
        assert client.rcpt(good)[0] == 250
        assert client.rcpt(f"transfer@{DOMAIN}")[0] == 250, "the bare reply address is accepted"
        assert client.rcpt(good.upper())[0] == 250, "local parts are case-insensitive"


def test_reply_from_an_unregistered_sender_is_not_counted(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    confirmation = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    forged = reply(confirmation, "Alice <alice@acme-lookalike.example.com>", "APPROVE")
    send(daemon.port, forged, reply_address(confirmation), mail_from="alice@acme-lookalike.example.com")
    assert outcome_of(daemon.app, tid, 1) == ["not-a-party"]
    detail = transfer_detail(daemon.app, tid)
    assert detail["parties"][0]["decision"] == "pending"
    notice = mail(sink, ADDRESSES["customer"], "ignored-sender", tid)[0]
    assert "alice@acme-lookalike.example.com" in notice.flat()
    assert not sink.to("alice@acme-lookalike.example.com"), "never answer the sender"
    # The second registered address of the same account may answer for it.
    send(daemon.port, reply(confirmation, "bob@acme.example.com", "APPROVE"), reply_address(confirmation))
    assert outcome_of(daemon.app, tid, 2)[-1] == "approved"


def test_a_token_of_another_transfers_party_records_nothing(daemon: RunningDaemon, sink: MailSink) -> None:
    mine = request_transfer(daemon.app, "ent-r1", "r2")
    theirs = request_transfer(daemon.app, "ent-globex", "r2")
    their_customer = mail(sink, "it@globex.example.com", "confirmation", theirs)[0]
    my_conf = mail(sink, ADDRESSES["customer"], "confirmation", mine)[0]
    # Alice (customer of `mine`) answers to Globex's token: she is not that party.
    send(daemon.port, reply(my_conf, ADDRESSES["customer"], "APPROVE", to=reply_address(their_customer)),
         reply_address(their_customer))
    assert outcome_of(daemon.app, theirs, 1) == ["not-a-party"]
    assert transfer_detail(daemon.app, theirs)["parties"][0]["decision"] == "pending"
    assert transfer_detail(daemon.app, mine)["parties"][0]["decision"] == "pending"


def test_a_second_approval_is_counted_once(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    confirmation = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    first = reply(confirmation, ADDRESSES["customer"], "APPROVE")
    send(daemon.port, first, reply_address(confirmation))
    send(daemon.port, first, reply_address(confirmation))  # the same message delivered twice
    send(daemon.port, reply(confirmation, ADDRESSES["customer"], "Approved, again"), reply_address(confirmation))
    assert outcome_of(daemon.app, tid, 3) == ["approved", "duplicate", "already-decided"]
    detail = transfer_detail(daemon.app, tid)
    assert [e["kind"] for e in detail["events"]].count("approved") == 1
    assert len(mail(sink, ADDRESSES["customer"], "receipt", tid)) == 1


def test_a_quoted_decline_under_a_fresh_approve_is_an_approval(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    confirmation = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    msg = reply(confirmation, ADDRESSES["customer"], "Approve")
    body = msg.get_content().replace("wrote:\n", "wrote:\n> DECLINE\n> I decline this transfer.\n", 1)
    msg.set_content(body)
    send(daemon.port, msg, reply_address(confirmation))
    assert outcome_of(daemon.app, tid, 1) == ["approved"]


def test_the_bare_address_with_threading_headers_finds_the_party(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    confirmation = mail(sink, ADDRESSES["isv"], "confirmation", tid)[0]
    bare = f"transfer@{DOMAIN}"
    send(daemon.port, reply(confirmation, ADDRESSES["isv"], "APPROVE", to=bare), bare)
    assert outcome_of(daemon.app, tid, 1) == ["approved"]
    checks = list_inbox(daemon.app, tid)[0]["checks"]
    assert "token=thread" in checks


def test_an_approval_of_another_move_is_not_counted_and_the_help_mail_names_the_difference(
        daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-r1", "r2")  # from Reseller One to Reseller Two
    confirmation = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    send(daemon.port, reply(confirmation, ADDRESSES["customer"],
                            "Approved, please go ahead with the move back to Reseller One GmbH."),
         reply_address(confirmation))
    assert outcome_of(daemon.app, tid, 1) == ["unclear"]
    assert transfer_detail(daemon.app, tid)["parties"][0]["decision"] == "pending"
    help_mail = mail(sink, ADDRESSES["customer"], "help", tid)[0]
    text = " ".join(help_mail.text().split())
    assert "your reply names Reseller One GmbH, but this transfer moves the order to Reseller Two" in text
    assert "bought through the reseller Reseller One" in text and "Analytics Pro" in text  # the details, again
    # The same approval naming this transfer's new reseller counts.
    send(daemon.port, reply(confirmation, ADDRESSES["customer"], "Approved, please go ahead with the move to "
                                                                 "RESELLER TWO."), reply_address(confirmation))
    assert outcome_of(daemon.app, tid, 2)[-1] == "approved"


def test_agreed_counts_as_an_approval(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    confirmation = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    send(daemon.port, reply(confirmation, ADDRESSES["customer"], "Agreed"), reply_address(confirmation))
    assert outcome_of(daemon.app, tid, 1) == ["approved"]
    assert transfer_detail(daemon.app, tid)["parties"][0]["decision"] == "approved"
    assert mail(sink, ADDRESSES["customer"], "receipt", tid)


def test_a_lone_yes_to_the_confirmation_counts_and_to_the_receipt_does_not(daemon: RunningDaemon, sink: MailSink) -> None:
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    isv = mail(sink, ADDRESSES["isv"], "confirmation", tid)[0]
    send(daemon.port, reply(isv, ADDRESSES["isv"], "APPROVE"), reply_address(isv))
    receipt = mail(sink, ADDRESSES["isv"], "receipt", tid)[0]
    send(daemon.port, reply(receipt, ADDRESSES["isv"], "Yes"), reply_address(receipt))  # to "your approval is recorded"
    assert outcome_of(daemon.app, tid, 2) == ["approved", "unclear"]  # a receipt asks for nothing
    confirmation = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    send(daemon.port, reply(confirmation, ADDRESSES["customer"], "Yes."), reply_address(confirmation))
    assert outcome_of(daemon.app, tid, 3)[-1] == "approved"
    assert transfer_detail(daemon.app, tid)["parties"][0]["decision"] == "approved"
