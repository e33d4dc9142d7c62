"""Inbound mail: stored durably at the edge, then read and acted on once.

``store_many`` is all the SMTP sessions wait for: one short transaction that
commits every message waiting at that moment. ``apply_batch`` runs the
reader's chain on read messages and applies each verdict in a savepoint of one
transaction; a message whose reading or acting raised is kept, marked failed
with the reason, and can be read again (`transferbot inbox retry`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlmodel import Session, col, select

from transferbot import rules
from transferbot.audit import append_event, forget_heads
from transferbot.clock import now as clock_now
from transferbot.domain import Decision, MailKind, Outcome, Role, TransferStatus
from transferbot.models import (
    Entitlement,
    InboundMessage,
    InboundRaw,
    OutboundMessage,
    Party,
    RevokedToken,
    Transfer,
)
from transferbot.reader.chain import OutboundInfo, PartyInfo, Policy, Verdict, run_chain
from transferbot.reader.reading import Reading, digest_of, read_message
from transferbot.service.app import App
from transferbot.service.facts import addresses_of, entitlement_facts, parties_of, transfer_facts
from transferbot.service.letters import defer_rendering, queue_notices, queue_operator_alert, queue_party_mail
from transferbot.service.schedule import reschedule
from transferbot.tokens import check_token

log = logging.getLogger(__name__)

NOTICE_INTERVAL = timedelta(days=1)


# -- the edge's transaction ---------------------------------------------------

_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)


def message_id_of(raw: bytes) -> str:
    """The Message-ID from the header section, without parsing the message (the edge is hot)."""
    head = raw[:65536]
    for blank in (b"\r\n\r\n", b"\n\n"):
        cut = head.find(blank)
        if cut != -1:
            head = head[:cut]
    match = _MESSAGE_ID.search(head)
    if match is None:
        return ""
    value = b" ".join(match.group(1).split())
    return value.decode("ascii", "replace").strip()[:500]


@dataclass(frozen=True)
class Arrival:
    """One message as the SMTP session received it."""

    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str
    received_at: datetime


_INSERT_MESSAGE = (
    "INSERT INTO inboundmessage (received_at, peer, mail_from, rcpt_tos, message_id, digest, size, state, outcome,"
    " checks, reason, from_address, subject, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 'new', 'pending', '[]', '', '',"
    " '', 0)"
)
_INSERT_RAW = "INSERT INTO inboundraw (id, raw) VALUES (?, ?)"


def _stored_time(value: datetime) -> str:
    """A datetime as the UTCDateTime column stores it (naive UTC, SQLAlchemy's SQLite format)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def insert_arrivals(session: Session, arrivals: Sequence[Arrival]) -> list[int]:
    """Add received messages with their envelopes to an open write transaction; their ids, in order.

    The edge's hottest statement goes straight to the DB-API cursor (two prepared statements per
    message): the ORM and Core add more per message here than the commit does."""
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    ids: list[int] = []
    try:
        for a in arrivals:
            cursor.execute(_INSERT_MESSAGE, (
                _stored_time(a.received_at), a.peer[:200], a.mail_from[:500],
                json.dumps([r[:500] for r in a.rcpt_tos]), message_id_of(a.raw), digest_of(a.raw), len(a.raw)))
            inbound_id = int(cursor.lastrowid or 0)
            cursor.execute(_INSERT_RAW, (inbound_id, a.raw))
            ids.append(inbound_id)
    finally:
        cursor.close()
    return ids


def store_many(app: App, arrivals: Sequence[Arrival]) -> list[int]:
    """Commit received messages with their envelopes in one transaction (group commit)."""
    with app.store.write() as session:
        return insert_arrivals(session, arrivals)


def store_inbound(app: App, raw: bytes, mail_from: str, rcpt_tos: list[str], peer: str,
                  received_at: datetime | None = None) -> int:
    """Commit one received message with its envelope."""
    return store_many(app, [Arrival(raw, mail_from, tuple(rcpt_tos), peer, received_at or clock_now())])[0]


@dataclass(frozen=True)
class Stored:
    id: int
    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]


def load_unread(app: App, limit: int) -> list[Stored]:
    """The oldest messages stored but not read yet, with their bytes."""
    with app.store.read() as session:
        rows = session.exec(
            select(InboundMessage.id, InboundMessage.mail_from, InboundMessage.rcpt_tos, InboundRaw.raw)
            .join(InboundRaw, col(InboundRaw.id) == col(InboundMessage.id))
            .where(InboundMessage.state == "new").order_by(col(InboundMessage.id)).limit(limit))
        return [Stored(int(i or 0), bytes(raw), mail_from, tuple(rcpts)) for i, mail_from, rcpts, raw in rows]


def load_raw(session: Session, inbound_id: int) -> bytes:
    row = session.get(InboundRaw, inbound_id)
    return bytes(row.raw) if row is not None else b""


def read_stored(app: App, stored: Stored) -> Reading | str:
    """The pure reading of a stored message, or the reason it could not be read."""
    try:
        return read_message(stored.raw, stored.mail_from, list(stored.rcpt_tos), app.book)
    except Exception as exc:  # noqa: BLE001 - recorded as failed, never dropped
        log.exception("inbound #%s: reading raised", stored.id)
        return f"{type(exc).__name__}: {exc}"


# -- lookups the chain may make ------------------------------------------------

class DbLookup:
    """The chain's read-only view of the database."""

    def __init__(self, app: App, session: Session, inbound_id: int | None) -> None:
        self.app, self.session, self.inbound_id = app, session, inbound_id

    def earlier_copy(self, message_id: str, digest: str) -> int | None:
        query = select(InboundMessage.id).where(InboundMessage.state == "done",
                                                InboundMessage.outcome != Outcome.DUPLICATE.value)
        if message_id:
            query = query.where(InboundMessage.message_id == message_id)
        else:
            query = query.where(InboundMessage.digest == digest, InboundMessage.message_id == "")
        if self.inbound_id is not None:
            query = query.where(col(InboundMessage.id) != self.inbound_id)
        return self.session.exec(query.order_by(col(InboundMessage.id)).limit(1)).first()

    def _info(self, party: Party, revoked: bool = False) -> PartyInfo:
        transfer = self.session.get(Transfer, party.transfer_id)
        assert transfer is not None
        addresses = tuple(a.address for a in addresses_of(self.session, party.id or 0))
        return PartyInfo(party.id or 0, party.transfer_id, party.role, addresses, Decision(party.decision),
                         TransferStatus(transfer.status), revoked)

    def party_by_token(self, token: str) -> PartyInfo | None:
        token = token.lower()
        party = self.session.exec(select(Party).where(Party.token == token)).first()
        if party is not None:
            return self._info(party)
        revoked = self.session.get(RevokedToken, token)
        if revoked is not None:
            old = self.session.get(Party, revoked.party_id)
            return self._info(old, revoked=True) if old else None
        return None

    def party_by_thread(self, message_ids: Sequence[str]) -> PartyInfo | None:
        for message_id in message_ids:
            row = self.session.exec(select(OutboundMessage).where(OutboundMessage.message_id == message_id)).first()
            if row is not None and row.party_id is not None:
                party = self.session.get(Party, row.party_id)
                if party is not None:
                    info = self._info(party)
                    # a thread to mail sent before the contact was replaced does not name the new contact
                    if not set(row.recipients) & set(info.addresses):
                        return PartyInfo(**{**info.__dict__, "revoked": True})
                    return info
        return None

    def outbound(self, keys: Sequence[str], message_ids: Sequence[str]) -> OutboundInfo | None:
        row = None
        for key in keys:
            row = self.session.exec(select(OutboundMessage).where(OutboundMessage.key == key.lower())).first()
            if row:
                break
        if row is None:
            for message_id in message_ids:
                row = self.session.exec(select(OutboundMessage).where(OutboundMessage.message_id == message_id)).first()
                if row:
                    break
        if row is None or row.id is None:
            return None
        return OutboundInfo(row.id, row.transfer_id, row.party_id, tuple(row.recipients), row.kind)

    def token_is_ours(self, token: str) -> bool:
        return check_token(self.app.secret, token)

    def is_own_address(self, address: str) -> bool:
        return address == self.app.config.from_address or self.app.book.is_ours(address)


def policy_of(app: App) -> Policy:
    return Policy(trusted_authserv_id=app.config.inbound.trusted_authserv_id)


def explain(app: App, raw: bytes, mail_from: str = "", rcpt_tos: list[str] | None = None) -> tuple[Reading, Verdict]:
    """How the reader reads one message, without changing anything (for `transferbot read`)."""
    reading = read_message(raw, mail_from, rcpt_tos or [], app.book)
    with app.store.read() as session:
        verdict = run_chain(reading, DbLookup(app, session, None), policy_of(app))
    return reading, verdict


# -- the reader's transaction ---------------------------------------------------

def apply_batch(app: App, batch: Sequence[tuple[int, Reading | str]], defer: bool = False) -> list[str]:
    """Act on read messages in one transaction, each inside a savepoint of its own.

    A message whose acting raised is rolled back alone and marked failed with the
    reason; the others stand. Returns the outcomes, in order. ``defer``: the mail
    it causes is rendered after the commit (letters.defer_rendering)."""
    outcomes: list[str] = []
    with app.store.write() as session:
        if defer:
            defer_rendering(session)
        for inbound_id, reading in batch:
            if isinstance(reading, str):
                outcomes.append(_fail(session, inbound_id, reading))
                continue
            try:
                with session.begin_nested():
                    outcomes.append(_act(app, session, inbound_id, reading))
            except Exception as exc:  # noqa: BLE001 - kept, marked failed, can be read again
                forget_heads(session)
                log.exception("inbound #%s: acting on it raised; marked failed", inbound_id)
                outcomes.append(_fail(session, inbound_id, f"{type(exc).__name__}: {exc}"))
    return outcomes


def _act(app: App, session: Session, inbound_id: int, reading: Reading) -> str:
    row = session.get(InboundMessage, inbound_id)
    if row is None:
        raise KeyError(inbound_id)
    if row.state == "done":
        return row.outcome  # read already (a retry racing the worker): acted on once
    verdict = run_chain(reading, DbLookup(app, session, inbound_id), policy_of(app))
    now = clock_now()
    row.state, row.outcome, row.checks, row.reason = "done", verdict.outcome.value, list(verdict.checks), verdict.reason
    row.from_address = reading.from_address or ""
    row.subject = reading.subject
    row.read_at = now
    row.attempts += 1
    if verdict.party is not None:
        row.transfer_id, row.party_id = verdict.party.transfer_id, verdict.party.party_id
    elif verdict.outbound is not None:
        row.transfer_id, row.party_id = verdict.outbound.transfer_id, verdict.outbound.party_id
    elif verdict.duplicate_of is not None:
        first = session.get(InboundMessage, verdict.duplicate_of)
        if first is not None:
            row.transfer_id, row.party_id = first.transfer_id, first.party_id
    session.add(row)
    session.flush()
    _apply(app, session, row, reading, verdict, now)
    log.info("inbound #%s %s: %s (%s)", row.id, row.message_id or "(no Message-ID)", verdict.outcome.value,
             verdict.decided_by)
    return row.outcome


def _fail(session: Session, inbound_id: int, error: str) -> str:
    row = session.get(InboundMessage, inbound_id)
    if row is None or row.state == "done":
        return row.outcome if row else Outcome.FAILED.value
    row.state, row.outcome, row.reason = "failed", Outcome.FAILED.value, error[:2000]
    row.attempts += 1
    row.read_at = clock_now()
    session.add(row)
    return row.outcome


def read_inbound(app: App, inbound_id: int) -> InboundMessage:
    """Read one stored message and act on it, once, in one transaction."""
    with app.store.read() as session:
        stored = session.get(InboundMessage, inbound_id)
        if stored is None:
            raise KeyError(inbound_id)
        item = Stored(inbound_id, load_raw(session, inbound_id), stored.mail_from, tuple(stored.rcpt_tos))
    reading = read_message(item.raw, item.mail_from, list(item.rcpt_tos), app.book)  # pure: outside the lock
    with app.store.write() as session:
        _act(app, session, inbound_id, reading)
    with app.store.read() as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        return row


def mark_failed(app: App, inbound_id: int, error: str) -> None:
    with app.store.write() as session:
        _fail(session, inbound_id, error)


def retry_inbound(app: App, inbound_id: int) -> InboundMessage:
    """Read a failed (or unread) message again now."""
    with app.store.write() as session:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            raise rules.Refusal(f"unknown inbound message #{inbound_id}")
        if row.state == "done":
            raise rules.Refusal(f"inbound message #{inbound_id} was read already (outcome {row.outcome})")
        row.state = "new"
        session.add(row)
    try:
        return read_inbound(app, inbound_id)
    except Exception as exc:
        mark_failed(app, inbound_id, f"{type(exc).__name__}: {exc}")
        raise


# -- applying a verdict -------------------------------------------------------

def _apply(app: App, session: Session, row: InboundMessage, reading: Reading, verdict: Verdict,
           now: datetime) -> None:
    if verdict.outcome is Outcome.BOUNCE:
        _apply_bounce(app, session, row, reading, verdict, now)
        return
    party_info = verdict.party
    if party_info is None or party_info.revoked:
        return
    transfer = session.get(Transfer, party_info.transfer_id)
    party = session.get(Party, party_info.party_id)
    assert transfer is not None and party is not None
    append_event(session, transfer.id, "reply-received", {
        "inbound": row.id, "message_id": row.message_id, "from": row.from_address, "role": party.role,
        "outcome": verdict.outcome.value, "decided_by": verdict.decided_by, "checks": list(verdict.checks),
    }, now)
    if verdict.outcome in (Outcome.APPROVED, Outcome.DECLINED):
        _apply_decision(app, session, transfer, party, row, reading, verdict, now)
    elif verdict.outcome is Outcome.STATUS:
        queue_party_mail(app, session, transfer, party, MailKind.STATUS, now)
    elif verdict.outcome is Outcome.UNCLEAR:
        if party.last_help_at is None or now - party.last_help_at >= NOTICE_INTERVAL:
            party.last_help_at = now
            session.add(party)
            queue_party_mail(app, session, transfer, party, MailKind.HELP, now,
                             {"problem": verdict.problem, "first_line": reading.decision.first_line[:200]})
    elif verdict.outcome is Outcome.NOT_A_PARTY and verdict.notify == "ignored-sender":
        if party.last_notice_at is None or now - party.last_notice_at >= NOTICE_INTERVAL:
            party.last_notice_at = now
            session.add(party)
            queue_party_mail(app, session, transfer, party, MailKind.IGNORED_SENDER, now,
                             {"problem": verdict.problem, "sender": reading.from_address or "(unknown)"})


def _apply_decision(app: App, session: Session, transfer: Transfer, party: Party, row: InboundMessage,
                    reading: Reading, verdict: Verdict, now: datetime) -> None:
    ent = session.get(Entitlement, transfer.entitlement_id)
    assert ent is not None
    decision = Decision.APPROVED if verdict.outcome is Outcome.APPROVED else Decision.DECLINED
    reason = reading.decision.reason if decision is Decision.DECLINED else ""
    facts = transfer_facts(transfer, parties_of(session, transfer.id))
    change = rules.record_decision(facts, Role(party.role), decision, entitlement_facts(ent), reason)
    for role, value in change.decisions.items():
        target = party if role.value == party.role else None
        assert target is not None
        target.decision, target.decided_at, target.decided_by = value.value, now, row.id
        target.reason = reason
        session.add(target)
    for kind, data in change.events:
        if kind in ("approved", "declined"):
            data = {**data, "inbound": row.id, "message_id": row.message_id, "from": row.from_address}
        append_event(session, transfer.id, kind, data, now)
    if change.move_entitlement:
        ent.reseller_id = transfer.to_reseller_id
        ent.updated_at = now
        session.add(ent)
    transfer.status = change.status.value
    if change.closed:
        transfer.closed_at = now
    reschedule(app.config, session, transfer)
    session.flush()
    queue_notices(app, session, transfer, change.notices, now)
    log.info("%s: %s %s (inbound #%s); transfer %s", transfer.id, party.role, decision.value, row.id, transfer.status)


def _apply_bounce(app: App, session: Session, row: InboundMessage, reading: Reading, verdict: Verdict,
                  now: datetime) -> None:
    bounce = reading.bounce
    assert bounce is not None
    outbound = verdict.outbound
    if outbound is not None and outbound.kind == MailKind.OPERATOR_ALERT.value:
        # Never alert about an alert that bounced: the operator address itself is failing.
        log.error("inbound #%s: an operator alert to %s bounced (%s); check [workflow] operator_address",
                  row.id, ", ".join(outbound.recipients), verdict.reason)
        return
    transfer = session.get(Transfer, outbound.transfer_id) if outbound and outbound.transfer_id else None
    failed = bounce.permanent_addresses
    if outbound is not None and bounce.permanent and not failed:
        failed = list(outbound.recipients)
    if transfer is None:
        if bounce.permanent:
            queue_operator_alert(app, session, None, "bounce",
                                 [("message", row.message_id or f"inbound #{row.id}"), ("reason", verdict.reason)], now)
        return
    party = session.get(Party, outbound.party_id) if outbound and outbound.party_id else None
    data = {"inbound": row.id, "permanent": bounce.permanent, "why": bounce.why,
            "recipients": [r.address for r in bounce.recipients], "role": party.role if party else "operator"}
    append_event(session, transfer.id, "bounce-received", data, now)
    if not bounce.permanent or party is None:
        return
    marked = []
    for address in addresses_of(session, party.id or 0):
        if address.address in failed and address.undeliverable_at is None:
            address.undeliverable_at = now
            detail = next((r.status + " " + r.diagnostic for r in bounce.recipients
                           if address.address in r.addresses), "")
            address.undeliverable_reason = detail.strip()[:300] or bounce.why
            session.add(address)
            marked.append(address.address)
    if marked:
        append_event(session, transfer.id, "address-undeliverable", {"role": party.role, "addresses": marked,
                                                                     "inbound": row.id}, now)
        reschedule(app.config, session, transfer)
        queue_operator_alert(app, session, transfer, "bounce",
                             [("role", party.role), ("address", ", ".join(marked)), ("reason", verdict.reason)], now)

