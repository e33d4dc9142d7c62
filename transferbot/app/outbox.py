"""The outbox's bookkeeping: which rows are due, who delivers them, and what became of each attempt.

A daemon claims due rows under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), renders and
delivers them, and records each result, which ends the lease. A daemon that dies mid-delivery
leaves leases that run out; another daemon then takes the rows. Only a crash between a delivery and
its record sends the same message (same Message-ID, same bytes) again. Retries back off
exponentially (Postfix-style minimum and maximum, scaled for a workflow) and give up after a fixed
age; a permanent refusal or giving up marks the party's address undeliverable and tells the operator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.effects import transition
from transferbot.app.effects.facts import addresses_of, facts_of, lock_transfer, parties_of
from transferbot.app.effects.mail import alert_operator
from transferbot.app.effects.work import Work
from transferbot.core import rules
from transferbot.core.backoff import backoff
from transferbot.core.domain import MailKind, OutboxStatus, Role
from transferbot.core.errors import Conflict, Unknown
from transferbot.outbound.rendering import Outgoing, Renderer, RenderSpec
from transferbot.store.models import MailSnapshot, OutboundMessage, OutboundRaw, Party, table_of
from transferbot.store.paging import Page, decode_id, page_of
from transferbot.store.queues import OUTBOX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """A row to deliver: what renders it (or the bytes release 0.1 rendered), and its envelope."""

    row: Outgoing
    envelope_from: str
    attempts: int
    legacy_raw: bytes | None = None
    taken_over: bool = False


def claim_due(session: Session, owner: str, now: datetime, lease_seconds: float, limit: int,
              snapshots: dict[int, dict[str, Any]]) -> list[Claimed]:
    """Lease up to ``limit`` due rows to ``owner``; ``snapshots`` caches the shared facts by id (immutable)."""
    leases = OUTBOX.claim(session, owner, now, lease_seconds, limit)
    if not leases:
        return []
    taken = {lease.id for lease in leases if lease.taken_over}
    om, conn = OUTBOX.table, session.connection()
    rows = list(conn.execute(
        sa.select(om.c.id, om.c.kind, om.c.key, om.c.message_id, om.c.recipients, om.c.created_at, om.c.transfer_id,
                  om.c.render, om.c.snapshot_id, om.c.envelope_from, om.c.attempts)
        .where(om.c.id.in_([lease.id for lease in leases])).order_by(*OUTBOX.ordering())))
    wanted = {r.snapshot_id for r in rows if r.snapshot_id is not None and r.snapshot_id not in snapshots}
    if wanted:
        snaps = table_of(MailSnapshot)
        for snap_id, data in conn.execute(sa.select(snaps.c.id, snaps.c.data).where(snaps.c.id.in_(wanted))):
            snapshots[snap_id] = data
    legacy = {r.id for r in rows if not r.render.get("v")}
    raws: dict[int, bytes] = {}
    if legacy:
        raw = table_of(OutboundRaw)
        raws = {i: bytes(b) for i, b in conn.execute(sa.select(raw.c.id, raw.c.raw).where(raw.c.id.in_(legacy)))}
    return [Claimed(Outgoing(r.id, r.kind, r.key, r.message_id, tuple(r.recipients), _aware(r.created_at),
                             r.transfer_id, r.render, r.snapshot_id), r.envelope_from, r.attempts,
                    legacy_raw=raws.get(r.id, b"") if r.id in legacy else None, taken_over=r.id in taken)
            for r in rows]


def release(session: Session, owner: str, ids: Sequence[int]) -> None:
    """Give back rows claimed but not attempted (a daemon stopping): due again at once for any daemon."""
    OUTBOX.release(session, owner, ids)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Result:
    """What one delivery attempt came to, as the dispatcher reports it."""

    item_id: int
    status: str  # sent | retry | failed
    at: datetime
    error: str = ""
    refused: dict[str, str] = field(default_factory=dict)
    remaining: tuple[str, ...] = ()
    subject: str = ""


def record(session: Session, app: App, results: Sequence[Result]) -> None:
    """Write the results of several deliveries in this transaction (the dispatcher batches them)."""
    plain = [r for r in results if r.status == OutboxStatus.SENT and not r.refused]
    if plain:
        _sent_all(session, plain)
    for r in results:
        if r.status == OutboxStatus.SENT and r.refused:
            _sent(app, session, r, r.refused)
        elif r.status == "retry":
            _retry(app, session, r)
        elif r.status == OutboxStatus.FAILED:
            _failed(app, session, r)


def all_plain(results: Sequence[Result]) -> bool:
    """Deliveries to every recipient, the common case: recorded with one statement."""
    return all(r.status == OutboxStatus.SENT and not r.refused for r in results)


def _sent_all(session: Session, results: Sequence[Result]) -> None:
    """Deliveries to every recipient: one statement for the whole batch.

    A delivery is bookkeeping of the outbox (status, sent_at, attempts), shown by `show` and the
    certificate; the audit chain records what changed a transfer, not each accepted SMTP delivery."""
    om = table_of(OutboundMessage)
    session.connection().execute(
        sa.update(om).where(om.c.id == sa.bindparam("b_id"), om.c.status != OutboxStatus.SENT.value).values(
            status=OutboxStatus.SENT.value, sent_at=sa.bindparam("b_at"), last_attempt_at=sa.bindparam("b_at"),
            attempts=om.c.attempts + 1, last_error="", subject=sa.bindparam("b_subject"), lease_owner="",
            lease_until=None),
        [{"b_id": r.item_id, "b_at": r.at, "b_subject": r.subject} for r in results])


def _locked_row(session: Session, item_id: int) -> OutboundMessage | None:
    return session.exec(select(OutboundMessage).where(OutboundMessage.id == item_id).with_for_update()).first()


def _sent(app: App, session: Session, r: Result, refused: dict[str, str]) -> None:
    """Delivered to all but the refused recipients, which are undeliverable."""
    row = _locked_row(session, r.item_id)
    if row is None or row.status == OutboxStatus.SENT.value:
        return
    row.status, row.sent_at, row.attempts, row.last_attempt_at = OutboxStatus.SENT.value, r.at, row.attempts + 1, r.at
    row.last_error = "; ".join(f"{a}: {e}" for a, e in refused.items())[:2000]
    row.subject, row.lease_owner, row.lease_until = r.subject or row.subject, "", None
    session.add(row)
    undeliverable(app, session, row, refused, r.at)


def _retry(app: App, session: Session, r: Result) -> None:
    """A transient failure: schedule the next attempt, or give up when too old.

    ``remaining`` narrows the row to the recipients still to be reached when the others accepted it
    (the same Message-ID is never sent to them twice)."""
    cfg = app.config.outbound
    row = _locked_row(session, r.item_id)
    if row is None or row.status != OutboxStatus.QUEUED.value:
        return
    row.attempts += 1
    row.last_attempt_at, row.last_error, row.lease_owner, row.lease_until = r.at, r.error[:2000], "", None
    if r.refused:
        undeliverable(app, session, row, r.refused, r.at)
    if r.remaining:
        row.recipients = [a for a in row.recipients if a in set(r.remaining)]
    give_up_at = row.give_up_at or row.created_at + timedelta(hours=cfg.give_up_after_hours)
    if r.at >= give_up_at:
        row.status = OutboxStatus.FAILED.value
        session.add(row)
        log.error("outbox #%s %s: gave up after %d attempts: %s", row.id, row.message_id, row.attempts, r.error)
        undeliverable(app, session, row, {a: f"gave up: {r.error}" for a in row.recipients}, r.at)
        return
    row.next_attempt_at = r.at + timedelta(seconds=backoff(row.attempts, cfg.retry_min_seconds,
                                                           cfg.retry_max_seconds))
    session.add(row)
    log.warning("outbox #%s %s: attempt %d failed (%s); next at %s", row.id, row.message_id, row.attempts,
                r.error, row.next_attempt_at.isoformat())


def _failed(app: App, session: Session, r: Result) -> None:
    """A permanent refusal: the row fails, its addresses are undeliverable, the operator is told."""
    row = _locked_row(session, r.item_id)
    if row is None or row.status != OutboxStatus.QUEUED.value:
        return
    row.status, row.attempts, row.last_error = OutboxStatus.FAILED.value, row.attempts + 1, r.error[:2000]
    row.last_attempt_at, row.lease_owner, row.lease_until = r.at, "", None
    session.add(row)
    log.error("outbox #%s %s: permanent failure: %s", row.id, row.message_id, r.error)
    undeliverable(app, session, row, r.refused or {a: r.error for a in row.recipients}, r.at)


def undeliverable(app: App, session: Session, row: OutboundMessage, refused: dict[str, str], now: datetime) -> None:
    """Addresses that refused a mail for good: marked on the party (through the rules and the one
    transition), and the operator told, never about an alert (its address is the operator's own)."""
    alert = rules.Alert("delivery-failed", _alert_facts(row, refused, session))
    t = lock_transfer(session, row.transfer_id) if row.transfer_id else None
    if t is None:
        if row.kind != MailKind.OPERATOR_ALERT.value:
            alert_operator(app, session, alert.name, list(alert.facts), now)
        return
    parties = parties_of(session, t.id)
    party = next((p for p in parties if p.id == row.party_id), None)
    failed = ("mail-failed", {"message_id": row.message_id, "mail": row.kind,
                              "role": party.role if party else "operator", "refused": refused})
    change = rules.Change(events=(failed,))
    if party is not None:
        ours = {a.address for a in addresses_of(session, party.id or 0) if a.undeliverable_at is None}
        marks = {a: why for a, why in refused.items() if a in ours}
        if marks:
            marked = rules.undeliverable(facts_of(session, t, parties), Role(party.role), marks, {"outbound": row.id})
            change = rules.Change(updates=marked.updates, events=(failed, *marked.events))
    if row.kind != MailKind.OPERATOR_ALERT.value:
        change = rules.Change(updates=change.updates, events=change.events, alerts=(alert,))
    transition.apply(app, session, t, change, now, parties=parties)


def _alert_facts(row: OutboundMessage, refused: dict[str, str], session: Session) -> tuple[tuple[str, str], ...]:
    party = session.get(Party, row.party_id) if row.party_id else None
    facts = [("message", row.message_id)]
    if party is not None:
        facts.append(("role", party.role))
    facts += [("address", a) for a in refused] + [("error", e) for e in list(refused.values())[:1]]
    return tuple(facts)


def outbox_summary(r: OutboundMessage) -> dict[str, Any]:
    """One outgoing message for `outbox`."""
    return {"id": r.id, "created_at": r.created_at.isoformat(), "kind": r.kind, "transfer": r.transfer_id,
            "to": r.recipients, "subject": r.subject, "message_id": r.message_id, "status": r.status,
            "attempts": r.attempts, "next_attempt_at": r.next_attempt_at.isoformat(),
            "last_attempt_at": r.last_attempt_at.isoformat() if r.last_attempt_at else None,
            "last_error": r.last_error or None, "sent_at": r.sent_at.isoformat() if r.sent_at else None}


def outbox_page(app: App, status: str | None = None, limit: int = 500, cursor: str | None = None) -> Page:
    """Outgoing messages, newest first, ``limit`` at a time before ``cursor``."""
    before = decode_id(cursor, "--cursor")
    with app.store.read() as session:
        query = select(OutboundMessage).order_by(col(OutboundMessage.id).desc())
        count = select(sa.func.count()).select_from(OutboundMessage)
        if status:
            query = query.where(OutboundMessage.status == status)
            count = count.where(OutboundMessage.status == status)
        if before is not None:
            query = query.where(col(OutboundMessage.id) < before)
        rows = list(session.exec(query.limit(limit)))
        more = session.exec(count.where(col(OutboundMessage.id) < rows[-1].id)).one() if rows else 0
        return page_of([outbox_summary(r) for r in rows], int(more))


def retry_outbox(app: App, item_id: int | None, all_failed: bool, now: datetime, by: str = "operator") -> list[int]:
    """Put failed rows back in the queue, due now; each transfer's audit trail says who did (``by``)."""
    def work(session: Session) -> list[int]:
        if all_failed:
            rows = list(session.exec(select(OutboundMessage).where(
                OutboundMessage.status == OutboxStatus.FAILED.value)))
        else:
            row = session.get(OutboundMessage, item_id)
            if row is None:
                raise Unknown(f"unknown outbox message #{item_id}")
            if row.status != OutboxStatus.FAILED.value:
                raise Conflict(f"outbox message #{item_id} is {row.status}, not failed")
            rows = [row]
        unit = Work(session)  # one for every row's change: the names and chain heads are read once
        for row in rows:
            row.status, row.next_attempt_at, row.lease_owner, row.lease_until = OutboxStatus.QUEUED.value, now, "", None
            row.give_up_at = now + timedelta(hours=app.config.outbound.give_up_after_hours)
            session.add(row)
            t = lock_transfer(session, row.transfer_id) if row.transfer_id else None
            if t is not None:
                change = rules.retried("mail-retried", {"outbound": row.id, "message_id": row.message_id,
                                                        "mail": row.kind}, by)
                transition.apply(app, session, t, change, now, work=unit)
        if rows:
            log.info("outbox: %d failed message(s) queued again by %s: %s", len(rows), by,
                     ", ".join(f"#{r.id}" for r in rows))
        return [r.id or 0 for r in rows]

    return app.store.run(work)


def raw_of(app: App, outbound_id: int) -> bytes:
    """The bytes of an outgoing message, rendered now exactly as the dispatcher renders them."""
    with app.store.read() as session:
        row = session.get(OutboundMessage, outbound_id)
        if row is None:
            return b""
        if not row.render.get("v"):
            legacy = session.get(OutboundRaw, outbound_id)
            return bytes(legacy.raw) if legacy else b""
        shared = session.get(MailSnapshot, row.snapshot_id).data if row.snapshot_id else None  # type: ignore[union-attr]
        item = Outgoing(row.id or 0, row.kind, row.key, row.message_id, tuple(row.recipients), row.created_at,
                        row.transfer_id, cast(RenderSpec, row.render), row.snapshot_id)
    return Renderer().render(item, shared)[1]

