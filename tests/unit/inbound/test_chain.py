"""The reader's chain on its own, with a lookup of the test's own (no database), and the Message-ID the
edge stores being the one the reader reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from email.policy import SMTP

import pytest

from tests.e2e.test_lifecycle import ADDRESSES, mail
from tests.helpers import reply, reply_address, send, wait_until
from transferbot.app.queries.views import list_inbox
from transferbot.app.transfers import request_transfer
from transferbot.core.addresses import AddressBook
from transferbot.core.domain import Decision, Outcome, TransferStatus
from transferbot.inbound.reader.chain import CHAIN, OutboundInfo, PartyInfo, Policy, Verdict, run_chain
from transferbot.inbound.reader.details import TransferNames
from transferbot.inbound.reader.reading import read_message
from transferbot.inbound.senderauth import AuthOutcome, unauthenticated
from transferbot.inbound.wire import message_id_of

BOOK = AddressBook("transfers.example.com")
TOKEN = "a" * 24
ALICE = "alice@acme.example"
PASS = AuthOutcome("pass", from_domain="acme.example", why="DKIM signature by acme.example passes")


@dataclass
class FakeLookup:
    """A lookup answering from the test's own facts."""

    party: PartyInfo | None = None
    copies: dict[str, int] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    threads: dict[str, PartyInfo] = field(default_factory=dict)  # Message-ID of our mail -> the party it went to
    mails: dict[str, OutboundInfo] = field(default_factory=dict)  # bounce key or Message-ID -> our mail
    names: TransferNames = TransferNames("direct-to-reseller", "Analytics Pro", "Acme Corp", "Vendor Inc", "",
                                         "Reseller Two")

    def earlier_copy(self, message_id: str, digest: str) -> int | None:
        self.asked.append("earlier_copy")
        return self.copies.get(message_id)

    def party_by_token(self, token: str) -> PartyInfo | None:
        self.asked.append("party_by_token")
        return self.party if token == TOKEN else None

    def party_by_thread(self, message_ids: Sequence[str]) -> PartyInfo | None:
        return next((self.threads[m] for m in message_ids if m in self.threads), None)

    def outbound(self, keys: Sequence[str], message_ids: Sequence[str]) -> OutboundInfo | None:
        return next((self.mails[k] for k in (*keys, *message_ids) if k in self.mails), None)

    def token_is_ours(self, token: str) -> bool:
        return token == TOKEN

    def is_own_address(self, address: str) -> bool:
        return address.endswith("@transfers.example.com")

    def transfer_names(self, transfer_id: str) -> TransferNames | None:
        self.asked.append("transfer_names")
        return self.names


def customer(decision: Decision = Decision.PENDING, status: TransferStatus = TransferStatus.PENDING) -> PartyInfo:
    return PartyInfo(1, "TR-1", "customer", (ALICE,), decision, status)


def raw(first_line: str, *, sender: str = ALICE, message_id: str = "<r1@acme.example>", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: transfer+{TOKEN}@transfers.example.com\r\nSubject: Re: transfer\r\n"
            f"Message-ID: {message_id}\r\n{extra}\r\n{first_line}\r\n\r\n> quoted\r\n").encode()


def verdict(data: bytes, lookup: FakeLookup, auth: AuthOutcome | None = PASS, policy: str = "verify") -> Verdict:
    reading = read_message(data, ALICE, [f"transfer+{TOKEN}@transfers.example.com"], BOOK)
    return run_chain(reading, lookup, Policy(sender_auth=policy), auth)


def test_the_chain_is_declared_in_order_and_every_check_is_named() -> None:
    assert [name for name, _ in CHAIN] == ["duplicate", "bounce", "loop", "token", "auto-reply", "party", "closed",
                                           "sender", "authentication", "thread-only", "decision", "already-decided",
                                           "record"]


@pytest.mark.parametrize(("line", "outcome"), [("APPROVE", Outcome.APPROVED), ("Declined - too expensive",
                                                                               Outcome.DECLINED),
                                               ("STATUS", Outcome.STATUS), ("maybe later", Outcome.UNCLEAR)])
def test_a_registered_authenticated_party_decides(line: str, outcome: Outcome) -> None:
    v = verdict(raw(line), FakeLookup(customer()))
    assert v.outcome is outcome and v.party is not None and v.party.party_id == 1
    assert v.checks[3] == "token=envelope" and v.checks[7] == "sender=registered"


def test_each_check_decides_what_it_is_named_for() -> None:
    assert verdict(raw("APPROVE"), FakeLookup(customer(), copies={"<r1@acme.example>": 7})).decided_by == "duplicate"
    assert verdict(raw("APPROVE"), FakeLookup(None)).outcome is Outcome.NO_TRANSFER
    closed = verdict(raw("APPROVE"), FakeLookup(customer(status=TransferStatus.EXPIRED)))
    assert closed.outcome is Outcome.CLOSED
    other = verdict(raw("APPROVE", sender="mallory@evil.example"), FakeLookup(customer()))
    assert (other.outcome, other.decided_by, other.notify) == (Outcome.NOT_A_PARTY, "sender", "ignored-sender")
    twice = verdict(raw("APPROVE", sender=f"{ALICE}, mallory@evil.example"), FakeLookup(customer()))
    assert (twice.outcome, twice.decided_by) == (Outcome.NOT_A_PARTY, "sender")
    again = verdict(raw("APPROVE"), FakeLookup(customer(Decision.APPROVED)))
    assert again.outcome is Outcome.ALREADY_DECIDED
    ooo = verdict(raw("APPROVE", extra="Auto-Submitted: auto-replied\r\n"), FakeLookup(customer()))
    assert ooo.outcome is Outcome.AUTO_REPLY and ooo.party is not None  # filed under its transfer all the same


def test_authentication_decides_after_the_sender_and_before_the_words() -> None:
    failed = AuthOutcome("fail", from_domain="acme.example", why="DMARC fails for acme.example (p=reject)")
    v = verdict(raw("APPROVE"), FakeLookup(customer()), auth=failed)
    assert (v.outcome, v.decided_by, v.problem) == (Outcome.NOT_A_PARTY, "authentication", "authentication")
    assert "DMARC fails" in v.reason
    unchecked = verdict(raw("APPROVE"), FakeLookup(customer()), auth=None)
    assert unchecked.outcome is Outcome.NOT_A_PARTY, "no outcome is never a pass"
    off = verdict(raw("APPROVE"), FakeLookup(customer()), auth=unauthenticated(), policy="off")
    assert off.outcome is Outcome.APPROVED and "authentication=off (inbound.allow_unauthenticated)" in off.checks


def test_an_approval_that_names_another_reseller_is_unclear_and_says_which_names_differ() -> None:
    lookup = FakeLookup(customer())
    v = verdict(raw("Approved, please go ahead with the move to Reseller One Ltd."), lookup)
    assert (v.outcome, v.decided_by, v.problem, v.notify) == (Outcome.UNCLEAR, "decision", "mismatch", "help")
    assert v.detail == {"slot": "to", "named": "Reseller One Ltd.", "expected": "Reseller Two", "direct": "",
                        "isv": "Vendor Inc"}
    assert "names Reseller One Ltd., but this transfer moves the order to Reseller Two" in v.reason
    assert v.decision is not None and v.decision.words == "move to Reseller One Ltd."
    right = verdict(raw("Approved, please go ahead with the move to reseller two gmbh."), lookup)
    assert right.outcome is Outcome.APPROVED


def test_the_transfers_names_are_asked_for_only_when_an_approval_states_details() -> None:
    lookup = FakeLookup(customer())
    assert verdict(raw("Approved, thanks."), lookup).outcome is Outcome.APPROVED
    assert verdict(raw("Declined, we move to Reseller One instead."), lookup).outcome is Outcome.DECLINED
    assert "transfer_names" not in lookup.asked


def test_a_clearsigned_reply_is_decided_by_its_signed_text_and_the_signature_is_noted() -> None:
    signed = ("-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nAPPROVE\r\n\r\n"
              "-----BEGIN PGP SIGNATURE-----\r\n\r\niQEzBAEBCAAd\r\n=Xq7f\r\n-----END PGP SIGNATURE-----")
    v = verdict(raw(signed), FakeLookup(customer()))
    assert v.outcome is Outcome.APPROVED
    assert "signed=pgp-clearsigned (read inside the signature; kept, not verified)" in v.checks


def test_the_edge_and_the_reader_read_the_same_message_id_from_8_bit_bytes() -> None:
    data = raw("STATUS", message_id="<caf\xe9-\xff\x00@acme.example>".encode("latin-1").decode("latin-1"))
    data = data.replace(b"caf\xc3\xa9-\xc3\xbf\x00", b"caf\xe9-\xff\x00")  # the bytes as a broken client sends them
    assert b"\xff" in data
    assert read_message(data, ALICE, [], BOOK).message_id == message_id_of(data) != ""


def test_a_status_reply_with_an_8_bit_message_id_delivered_twice_is_answered_once(daemon, sink) -> None:  # type: ignore[no-untyped-def]
    tid = request_transfer(daemon.app, "ent-direct", "r2")
    conf = mail(sink, ADDRESSES["customer"], "confirmation", tid)[0]
    msg = reply(conf, ADDRESSES["customer"], "STATUS")
    data = msg.as_bytes(policy=SMTP)
    old_id = str(msg["Message-ID"]).encode()
    data = data.replace(old_id, b"<st\xe4tus-\xfe@acme.example.com>")
    for _ in range(2):
        send(daemon.port, data, reply_address(conf), mail_from=ADDRESSES["customer"])
    rows = wait_until(lambda: [r for r in list_inbox(daemon.app, tid) if r["state"] == "done"][1:] and
                      list_inbox(daemon.app, tid), what="both copies read")
    assert [r["outcome"] for r in rows] == ["status", "duplicate"]
    answered = wait_until(lambda: mail(sink, ADDRESSES["customer"], "status", tid), what="the status mail")
    assert len(answered) == 1


KEY, OURS = "b" * 24, "<conf-1.tr-1@transfers.example.com>"
CONFIRMATION = OutboundInfo(7, "TR-1", 1, (ALICE,), "confirmation")


def dsn_to(rcpt: str) -> Verdict:
    data = (f"From: MAILER-DAEMON@mx.acme.example\r\nTo: {rcpt}\r\nSubject: Undelivered Mail\r\n"
            "Message-ID: <dsn-1@mx.acme.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.example\r\n\r\n"
            f"Final-Recipient: rfc822; {ALICE}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {OURS}\r\n\r\n--b--\r\n").encode()
    reading = read_message(data, "", [rcpt], BOOK)
    return run_chain(reading, FakeLookup(customer(), mails={KEY: CONFIRMATION, OURS: CONFIRMATION}), Policy(), None)


def test_a_bounce_counts_only_at_the_bounce_address_of_a_mail_of_ours() -> None:
    genuine = dsn_to(BOOK.bounce(KEY))
    assert (genuine.outcome, genuine.outbound) == (Outcome.BOUNCE, CONFIRMATION)
    assert genuine.checks[1] == "bounce=permanent (delivery status notification)"
    for rcpt, where in ((BOOK.reply(), "not at a bounce address of ours"),
                        (BOOK.reply(TOKEN), "not at a bounce address of ours"),
                        (BOOK.bounce("c" * 24), "its bounce address names no mail of ours")):
        ignored = dsn_to(rcpt)
        assert ignored.outcome is Outcome.BOUNCE_IGNORED and ignored.party is None, rcpt
        assert ignored.outbound == CONFIRMATION, "filed under the mail it names, all the same"
        assert ignored.reason.endswith(f"; {where}: ignored (it marks no address undeliverable)"), ignored.reason
        assert OURS not in ignored.reason and OURS not in " ".join(ignored.checks)


def test_a_reply_named_by_its_thread_alone_counts_only_from_an_authenticated_sender() -> None:
    def threaded(policy: str, auth: AuthOutcome | None) -> Verdict:
        data = (f"From: {ALICE}\r\nTo: transfer@transfers.example.com\r\nSubject: Re: transfer\r\n"
                f"Message-ID: <r2@acme.example>\r\nIn-Reply-To: {OURS}\r\n\r\nAPPROVE\r\n").encode()
        reading = read_message(data, ALICE, ["transfer@transfers.example.com"], BOOK)
        return run_chain(reading, FakeLookup(threads={OURS: customer()}), Policy(sender_auth=policy), auth)

    off = threaded("off", unauthenticated())
    assert (off.outcome, off.decided_by, off.notify, off.problem) == (
        Outcome.NOT_A_PARTY, "thread-only", "help", "no-token"), off.checks
    assert "token=thread" in off.checks and "only the reply address counts" in off.reason
    assert threaded("verify", PASS).outcome is Outcome.APPROVED
    relayed = AuthOutcome("pass", mode="trusted-relay", from_domain="acme.example", authserv_id="mx.example")
    assert threaded("trusted-relay", relayed).outcome is Outcome.APPROVED
    by_token = verdict(raw("APPROVE"), FakeLookup(customer()), auth=unauthenticated(), policy="off")
    assert by_token.outcome is Outcome.APPROVED and "thread-only=no" in by_token.checks


CONFIRMATION_ID = "<c1.tr-1@transfers.example.com>"


@pytest.mark.parametrize(("answered", "outcome"), [
    (OutboundInfo(10, "TR-1", 1, (ALICE,), "confirmation"), Outcome.APPROVED),
    (OutboundInfo(10, "TR-1", 1, (ALICE,), "reminder"), Outcome.APPROVED),
    (OutboundInfo(10, "TR-1", 1, (ALICE,), "last-call"), Outcome.APPROVED),
    (OutboundInfo(10, "TR-1", 1, (ALICE,), "receipt"), Outcome.UNCLEAR),  # asked for nothing
    (OutboundInfo(10, "TR-1", 2, ("deals@vendor.example",), "confirmation"), Outcome.UNCLEAR),  # another party's
    (None, Outcome.UNCLEAR),  # answers no mail of ours
])
def test_a_yes_alone_approves_only_a_mail_that_asked_this_party_to_approve(answered: OutboundInfo | None,
                                                                            outcome: Outcome) -> None:
    lookup = FakeLookup(customer(), mails={CONFIRMATION_ID: answered} if answered else {})
    for word in ("Yes", "Oui.", "Ja!"):
        v = verdict(raw(word, extra=f"In-Reply-To: {CONFIRMATION_ID}\r\n"), lookup)
        assert v.outcome is outcome, (word, v.checks)
        assert any(c.startswith("yes-alone=") for c in v.checks)
    assert verdict(raw("Yes?", extra=f"In-Reply-To: {CONFIRMATION_ID}\r\n"), lookup).outcome is Outcome.UNCLEAR
