"""The reply corpus (tests/replies): replies as real mail clients and mail servers write them.

Every case is an .eml file with placeholders (tokens and Message-IDs are made
per run) and an entry in tests/replies/manifest.toml saying how it arrives
and what must become of it. Each case is read twice:

* through the reader directly (``inbox.explain``), on a transfer of its own;
* through the running daemon over SMTP (one daemon without and one with
  ``trusted_authserv_id``), then checking the stored outcome, the transfer,
  and every mail it caused, in the outbox and as delivered to the sink relay.

Both start from copies of one database holding a transfer per case, so that
cases do not interfere and the file stays fast.
"""

from __future__ import annotations

import base64
import binascii
import email
import hashlib
import re
import shutil
import tomllib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from tests.conftest import DOMAIN, make_config
from tests.helpers import RunningDaemon, mark_all_sent, send, wait_until
from tests.paths import TESTS
from tests.postgres import DATABASES
from transferbot.app import registry
from transferbot.app.arrivals import store_inbound
from transferbot.app.context import App, open_app
from transferbot.app.queries.views import transfer_detail
from transferbot.app.replies import explain, read_inbound
from transferbot.app.transfers import request_transfer
from transferbot.core.clock import now
from transferbot.core.domain import OutboxStatus
from transferbot.devtools.sink import MailSink
from transferbot.store.models import InboundMessage, OutboundMessage, Party, PartyAddress, Transfer

CORPUS = TESTS / "replies"
BARE = f"transfer@{DOMAIN}"
OPERATOR = "ops@marketplace.example.com"
AUTHSERV = "mx.transfers.example.com"
ANSWERS = {"help", "status", "ignored-sender"}  # the mails that answer a reply
NEVER_ANSWERED = {"auto-reply", "bounce", "bounce-ignored", "loop", "no-transfer", "duplicate", "already-decided", "closed"}

# The accounts the .eml files are written from (their addresses are in the files).
ACCOUNTS: tuple[tuple[str, str, str, list[str], str, str], ...] = (
    ("acme", "customer", "Acme Corp", ["alice@acme.example.com", "bob@acme.example.com"], "en", "UTC"),
    ("lumiere", "customer", "Lumière SARL", ["claire.dubois@lumiere.example.fr", "compta@lumiere.example.fr"], "fr",
     "Europe/Paris"),
    ("kraft", "customer", "Kraft-Werke GmbH", ["j.mueller@kraft-werke.example.de", "einkauf@kraft-werke.example.de"],
     "de", "Europe/Berlin"),
    ("vendor", "isv", "Vendor Inc", ["deals@vendor.example.com"], "en", "UTC"),
    ("r2", "reseller", "Reseller Two", ["ops@r2.example.com"], "en", "UTC"),
)


# -- the manifest ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One corpus entry: the file, how it arrives, and what must become of it."""

    file: str
    client: str
    lang: str
    customer: str
    role: str
    rcpt: str  # token | bare | bounce
    outcome: str
    decision: str  # the party's decision afterwards
    mail_from: str | None = None  # None: the From address; "": the null sender
    first_line: str | None = None
    reason: str | None = None
    notify: str | None = None  # the one answer it must cause: help | status | ignored-sender
    before: str | None = None  # approved | unclear | closed: what happened on the transfer first
    copies: int = 1
    auth: bool = False  # read with [inbound] trusted_authserv_id set
    undeliverable: tuple[str, ...] | None = None
    operator_alert: bool = False
    note: str = ""
    blocked: str = ""  # a known failure in code outside the reader's checks (kept, marked xfail)

    @property
    def id(self) -> str:
        return self.file.removesuffix(".eml")

    @property
    def transfer_status(self) -> str:
        return "declined" if self.decision == "declined" or self.before == "closed" else "pending"


def load_cases() -> list[Case]:
    data = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))
    cases = []
    for entry in data["case"]:
        if "undeliverable" in entry:
            entry["undeliverable"] = tuple(entry["undeliverable"])
        cases.append(Case(**entry))
    return cases


CASES = load_cases()


def params() -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.blocked, strict=True)] if c.blocked else [])
            for c in CASES]


# -- filling the placeholders -------------------------------------------------------------------

_PLACEHOLDER = re.compile(rb"\{(?:=\r?\n)?\{((?:(?:=\r?\n)?[A-Z_])+)(?:=\r?\n)?\}(?:=\r?\n)?\}")


def _substitute(data: bytes, values: Mapping[str, str]) -> bytes:
    """Replace {{NAME}}, also where a quoted-printable soft line break splits it."""
    def one(match: re.Match[bytes]) -> bytes:
        name = re.sub(rb"=\r?\n", b"", match.group(1)).decode("ascii")
        return values[name].encode("ascii")
    return _PLACEHOLDER.sub(one, data)


def fill(template: bytes, values: Mapping[str, str]) -> bytes:
    """The message as it is sent: placeholders filled in every part, base64 parts re-encoded, CRLF lines."""
    raw = template
    for part in email.message_from_bytes(template, policy=policy.compat32).walk():
        if part.is_multipart() or str(part.get("Content-Transfer-Encoding", "")).lower() != "base64":
            continue
        encoded = str(part.get_payload()).strip()
        try:
            decoded = base64.b64decode(encoded)
        except binascii.Error:
            continue
        if b"{{" in decoded:
            raw = raw.replace(encoded.encode("ascii"), base64.encodebytes(_substitute(decoded, values)).strip(), 1)
    raw = _substitute(raw, values)
    assert b"{{" not in raw, "a placeholder was left unfilled"
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- the world ------------------------------------------------------------------------------------

def populate(app: App) -> None:
    for account_id, kind, name, emails, locale, tz in ACCOUNTS:
        registry.add_account(app, account_id, kind, name, emails, locale=locale, timezone=tz)


@dataclass(frozen=True)
class Target:
    """The transfer made for one case and the values its placeholders take."""

    transfer: str
    party_id: int
    token: str
    conf_message_id: str
    bounce_to: str
    addresses: tuple[str, ...]
    locale: str

    def values(self, app: App) -> dict[str, str]:
        return {"TOKEN": self.token, "REPLY_TO": app.book.reply(self.token), "CONF_MESSAGE_ID": self.conf_message_id,
                "TRANSFER": self.transfer, "DATE": format_datetime(now()), "BOUNCE_TO": self.bounce_to}


def party_target(app: App, transfer: str, role: str) -> Target:
    with app.store.read() as session:
        party = session.exec(select(Party).where(Party.transfer_id == transfer, Party.role == role)).one()
        conf = session.exec(select(OutboundMessage)
                            .where(OutboundMessage.message_id == party.confirmation_message_id)).one()
        addresses = session.exec(select(PartyAddress.address).where(PartyAddress.party_id == party.id)
                                 .order_by(col(PartyAddress.position))).all()
        return Target(transfer, party.id or 0, party.token, party.confirmation_message_id, conf.envelope_from,
                      tuple(addresses), party.locale)


def new_transfer(app: App, case: Case, index: int) -> str:
    entitlement = f"ent-{index:03d}"
    registry.add_entitlement(app, entitlement, "Analytics Pro", case.customer, "vendor")
    return request_transfer(app, entitlement, "r2")


def transfer_of(app: App, index: int) -> str:
    with app.store.read() as session:
        return session.exec(select(Transfer.id).where(Transfer.entitlement_id == f"ent-{index:03d}")).one()


def simple_reply(app: App, target: Target, sender: str, text: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = app.book.reply(target.token)
    msg["Subject"] = f"Re: [{target.transfer}] Please approve the transfer of Analytics Pro"
    msg["Date"] = format_datetime(now())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["In-Reply-To"] = target.conf_message_id
    msg.set_content(text)
    return msg.as_bytes(policy=policy.SMTP)


def setup_messages(app: App, case: Case, transfer: str, target: Target) -> list[tuple[bytes, str, str, str]]:
    """What happened on the transfer before the case: (raw, envelope sender, recipient, expected outcome)."""
    if case.before is None:
        return []
    if case.before == "closed":
        isv = party_target(app, transfer, "isv")
        raw = simple_reply(app, isv, isv.addresses[0], "DECLINE\nWe filed this by mistake.")
        return [(raw, isv.addresses[0], app.book.reply(isv.token), "declined")]
    text, outcome = {"approved": ("APPROVE", "approved"), "unclear": ("Hello?", "unclear")}[case.before]
    raw = simple_reply(app, target, target.addresses[0], text)
    return [(raw, target.addresses[0], app.book.reply(target.token), outcome)]


@dataclass
class Prepared:
    case: Case
    target: Target
    raw: bytes
    mail_from: str
    rcpt_tos: list[str]
    setups: list[tuple[bytes, str, str, str]] = field(default_factory=list)


def prepare(app: App, case: Case, index: int) -> Prepared:
    transfer = transfer_of(app, index)
    target = party_target(app, transfer, case.role)
    raw = fill((CORPUS / case.file).read_bytes(), target.values(app))
    sender = case.mail_from
    if sender is None:
        sender = parseaddr(str(email.message_from_bytes(raw, policy=policy.default)["From"]))[1]
    rcpt = {"token": app.book.reply(target.token), "bare": BARE, "bounce": target.bounce_to}[case.rcpt]
    return Prepared(case, target, raw, sender, [rcpt], setup_messages(app, case, transfer, target))


def open_copy(world: str, tmp: Path, sink_port: int | None, auth: bool) -> App:
    """An app on a copy of the world database (making ninety transfers takes seconds; copying them does not)."""
    if world.startswith("sqlite:///"):
        path = world.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                shutil.copyfile(f"{path}{suffix}", tmp / f"tb.db{suffix}")
        url = f"sqlite:///{tmp / 'tb.db'}"
    else:
        url = DATABASES.clone(world)
    # The corpus sends dozens of messages from the same few senders at once: no per-sender rate limit here.
    inbound: dict[str, Any] = {"messages_per_minute_per_sender": 0}
    if auth:  # transferbot behind an MX on loopback that writes Authentication-Results
        inbound.update(sender_auth="trusted-relay", trusted_relays=["127.0.0.0/8"], trusted_authserv_id=AUTHSERV)
    return open_app(make_config(tmp, sink_port, inbound=inbound, database={"synchronous": "normal", "url": url}),
                    upgrade=True)


BOTH_BACKENDS = True  # tests/conftest.py runs these on SQLite and on PostgreSQL


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, backend: str) -> str:
    """A database with the accounts and one transfer per case, its confirmations sent (as the dispatcher would)."""
    tmp = tmp_path_factory.mktemp("world")
    url = f"sqlite:///{tmp / 'tb.db'}" if backend == "sqlite" else DATABASES.new()
    app = open_app(make_config(tmp, None, database={"synchronous": "normal", "url": url}), upgrade=True)
    try:
        populate(app)
        for index, case in enumerate(CASES):
            new_transfer(app, case, index)
        mark_all_sent(app)
    finally:
        app.store.close()
    return url


# -- the corpus itself ----------------------------------------------------------------------------

def test_the_corpus_is_complete_and_consistent() -> None:
    files = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.eml")}
    listed = [c.file for c in CASES]
    assert sorted(listed) == sorted(set(listed)), "a file is listed twice"
    assert files == set(listed), "every .eml is in the manifest and every entry has its file"
    assert len(CASES) >= 60
    ids = [str(email.message_from_bytes((CORPUS / c.file).read_bytes(), policy=policy.default).get("Message-ID", ""))
           for c in CASES]
    present = [i for i in ids if i]
    assert len(present) == len(set(present)), "Message-IDs are unique across the corpus"
    outcomes = {c.outcome for c in CASES}
    assert {"approved", "declined", "unclear", "status", "auto-reply", "bounce", "bounce-ignored", "not-a-party",
            "already-decided", "closed", "no-transfer", "loop"} <= outcomes
    for case in CASES:
        assert case.rcpt in ("token", "bare", "bounce"), case.id
        assert case.lang in ("en", "fr", "de", "es", "it", "nl", "pt"), case.id
        assert case.before in (None, "approved", "unclear", "closed"), case.id
        assert case.outcome not in ("approved", "declined") or case.decision == case.outcome, case.id
        assert case.outcome not in NEVER_ANSWERED or case.notify is None, case.id


# -- (a) through the reader -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def reader_apps(world: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, App]]:
    apps = {auth: open_copy(world, tmp_path_factory.mktemp("auth" if auth else "plain"), None, auth)
            for auth in (False, True)}
    yield apps
    for app in apps.values():
        app.store.close()


def _explain_failure(reading: Any, verdict: Any) -> str:
    return (f"outcome {verdict.outcome.value} by {verdict.decided_by}; checks {list(verdict.checks)}; "
            f"fresh text {reading.fresh_text[:300]!r}")


@pytest.mark.parametrize("case", params())
def test_reader_reads_the_case(case: Case, reader_apps: dict[bool, App]) -> None:
    app = reader_apps[case.auth]
    prepared = prepare(app, case, CASES.index(case))
    for raw, sender, rcpt, expected in prepared.setups:
        row = read_inbound(app, store_inbound(app, raw, sender, [rcpt], "127.0.0.1"))
        assert row.outcome == expected, row.checks
    if case.copies > 1:
        first = read_inbound(app, store_inbound(app, prepared.raw, prepared.mail_from, prepared.rcpt_tos, "127.0.0.1"))
        assert first.outcome == case.outcome, first.checks
    reading, verdict, _auth = explain(app.config, prepared.raw, prepared.mail_from, prepared.rcpt_tos, "127.0.0.1", app=app)
    expected = "duplicate" if case.copies > 1 else case.outcome
    assert verdict.outcome.value == expected, _explain_failure(reading, verdict)
    if case.copies > 1:
        return
    if case.first_line is not None:
        assert reading.decision.first_line == case.first_line, _explain_failure(reading, verdict)
    if case.reason is not None:
        assert reading.decision.reason == case.reason, _explain_failure(reading, verdict)
    if case.outcome == "unclear":
        assert verdict.notify == "help"
    elif case.outcome in ("status", "not-a-party"):
        assert verdict.notify == case.notify
    else:
        assert verdict.notify is None, "nothing to answer"
    if case.outcome == "bounce":
        assert reading.bounce is not None and verdict.outbound is not None, "the bounce names our confirmation"
        assert verdict.outbound.party_id == prepared.target.party_id
        assert reading.bounce.permanent is bool(case.undeliverable)
        assert set(case.undeliverable or ()) <= set(reading.bounce.permanent_addresses)
    elif case.outcome not in ("no-transfer", "loop"):
        # named by its token or thread, or (a machine answering our bounce address) by the mail its VERP key names
        named = verdict.party.party_id if verdict.party else verdict.outbound.party_id if verdict.outbound else None
        assert named == prepared.target.party_id, verdict.checks


# -- (b) through the running daemon --------------------------------------------------------------

@dataclass
class DaemonRun:
    sink: MailSink
    apps: dict[bool, App]
    prepared: dict[str, Prepared]


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _done(app: App) -> int:
    with app.store.read() as session:
        return len(list(session.exec(select(InboundMessage.id).where(InboundMessage.state != "new"))))


def _queued(app: App) -> int:
    with app.store.read() as session:
        return len(list(session.exec(select(OutboundMessage.id)
                                     .where(OutboundMessage.status == OutboxStatus.QUEUED.value))))


def feed(d: RunningDaemon, prepared: list[Prepared]) -> None:
    """Send what happened first, then every case (each copy in turn), and wait until all is read and sent."""
    setups = [s for p in prepared for s in p.setups]
    for raw, sender, rcpt, _expected in setups:
        send(d.port, raw, rcpt, mail_from=sender)
    wait_until(lambda: _done(d.app) == len(setups), what="the earlier replies read")
    for p in prepared:
        for _ in range(p.case.copies):
            send(d.port, p.raw, p.rcpt_tos, mail_from=p.mail_from)
    total = len(setups) + sum(p.case.copies for p in prepared)
    wait_until(lambda: _done(d.app) == total, timeout=30, what="every case read")
    wait_until(lambda: _queued(d.app) == 0, timeout=30, what="every mail they caused sent")


@pytest.fixture(scope="module")
def daemon_run(world: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonRun]:
    """Both daemons (with and without trusted_authserv_id) fed their cases over SMTP, everything read and sent."""
    sink = MailSink().start_in_thread()
    apps = {auth: open_copy(world, tmp_path_factory.mktemp("smtp-auth" if auth else "smtp"), sink.port, auth)
            for auth in (False, True)}
    daemons: dict[bool, RunningDaemon] = {}
    try:
        for auth, app in apps.items():
            daemons[auth] = RunningDaemon(app).start()
        prepared = {c.id: prepare(apps[c.auth], c, i) for i, c in enumerate(CASES)}
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = [pool.submit(feed, d, [p for p in prepared.values() if p.case.auth is auth])
                    for auth, d in daemons.items()]
            for job in jobs:
                job.result()
        yield DaemonRun(sink, apps, prepared)
    finally:
        for d in daemons.values():
            d.stop()
        for app in apps.values():
            app.store.close()
        sink.stop_thread()


def _rows(app: App, raw: bytes) -> list[InboundMessage]:
    with app.store.read() as session:
        return list(session.exec(select(InboundMessage).where(InboundMessage.digest == _digest(raw))
                                 .order_by(col(InboundMessage.id))))


@pytest.mark.parametrize("case", params())
def test_daemon_acts_on_the_case(case: Case, daemon_run: DaemonRun) -> None:
    app, p = daemon_run.apps[case.auth], daemon_run.prepared[case.id]
    rows = _rows(app, p.raw)
    assert [r.outcome for r in rows] == [case.outcome] + ["duplicate"] * (case.copies - 1), [r.checks for r in rows]
    detail = transfer_detail(app, p.target.transfer)
    party = next(x for x in detail["parties"] if x["role"] == case.role)
    assert party["decision"] == case.decision
    assert detail["status"] == case.transfer_status
    if case.outcome == "declined":
        assert (party["reason"] or "") == (case.reason or ""), "the reason is passed on"
        notices = [o for o in detail["outbound"] if o["kind"] == "declined"]
        assert notices and all(o["status"] == "sent" for o in notices)
    if case.outcome not in ("no-transfer", "loop"):
        assert all(r.transfer_id == p.target.transfer for r in rows), "filed under its transfer"

    # The answers it caused: exactly what the case calls for, only to registered addresses, in the party's locale.
    answers = [o for o in detail["outbound"] if o["kind"] in ANSWERS]
    expected = (["help"] if case.before == "unclear" else []) + ([case.notify] if case.notify else [])
    assert [o["kind"] for o in answers] == expected
    delivered = [m for m in daemon_run.sink.unique() if m.message["X-Transferbot-Transfer"] == p.target.transfer
                 and m.message["X-Transferbot-Kind"] in ANSWERS]
    assert sorted(str(m.message["X-Transferbot-Kind"]) for m in delivered) == sorted(expected)
    registered = set(party["emails"])
    sender = (rows[0].from_address or "").lower()
    for answer in answers:
        assert set(answer["to"]) <= registered and answer["to"], "answered at the registered addresses only"
        assert sender in registered or sender not in answer["to"], "never at an unregistered sender"
        got = daemon_run.sink.by_message_id.get(answer["message_id"])
        assert got is not None and str(got.message["Content-Language"]) == p.target.locale
    if sender and sender not in registered:
        assert not daemon_run.sink.to(sender), "an unregistered sender is never mailed"

    # Bounces: a permanent one marks exactly the failed address, which `show` displays, and tells the operator.
    if case.undeliverable is not None:
        assert {u["address"] for u in party["undeliverable"]} == set(case.undeliverable)
    else:
        assert not party["undeliverable"]
    alerts = [o for o in detail["outbound"] if o["kind"] == "operator-alert"]
    if case.operator_alert:
        assert alerts and all(o["to"] == [OPERATOR] for o in alerts)
        assert any(m.message["X-Transferbot-Transfer"] == p.target.transfer for m in daemon_run.sink.to(OPERATOR))
    else:
        assert not alerts


@pytest.mark.parametrize(("file", "diagnostic"), [
    ("bounce/postfix-en-5.1.1-permanent.eml",
     "5.1.1 <alice@acme.example.com>: Recipient address rejected: User unknown"),
    ("bounce/exchange-de-5.1.10-permanent.eml", "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found"),
])
def test_the_operator_alert_for_a_bounce_quotes_the_remote_servers_diagnostic(
        file: str, diagnostic: str, daemon_run: DaemonRun) -> None:
    """As the alert for a refused RCPT quotes the relay's answer, the alert for a DSN quotes the remote server's."""
    case = next(c for c in CASES if c.file == file)
    p = daemon_run.prepared[case.id]
    alerts = [m for m in daemon_run.sink.to(OPERATOR) if m.message["X-Transferbot-Transfer"] == p.target.transfer]
    assert alerts
    text = " ".join(alerts[0].text().split())
    assert diagnostic in text, text
