"""The outbox's bookkeeping: which rows are due, and what became of each attempt.

Retries back off exponentially (Postfix-style minimum and maximum, scaled for
a workflow) and give up after a fixed age; a permanent refusal or giving up
marks the party's address undeliverable and tells the operator.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.audit import append_event
from transferbot.domain import MailKind, OutboxStatus
from transferbot.models import OutboundMessage, OutboundRaw, Party, Transfer
from transferbot.rules import Refusal
from transferbot.service.app import App
from transferbot.service.facts import addresses_of
from transferbot.service.letters import defer_rendering, queue_operator_alert
from transferbot.service.views import Page, page_of, parse_cursor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes
    attempts: int
    created_at: datetime
    transfer_id: str | None


def backoff(attempts: int, minimum: float, maximum: float) -> float:
    """Seconds to wait after the given number of failed attempts: min·2^(n-1), capped."""
    return min(maximum, minimum * (2 ** max(0, attempts - 1)))


def due(app: App, now: datetime, limit: int, exclude: Collection[int] = ()) -> list[OutboxItem]:
    """The rows to deliver now, oldest first, with their bytes (plain tuples: this runs often)."""
    om = OutboundMessage.__table__  # type: ignore[attr-defined]
    raw = OutboundRaw.__table__  # type: ignore[attr-defined]
    query = (sa.select(om.c.id, om.c.message_id, om.c.envelope_from, om.c.recipients, raw.c.raw, om.c.attempts,
                       om.c.created_at, om.c.transfer_id)
             .join(raw, raw.c.id == om.c.id)
             .where(om.c.status == OutboxStatus.QUEUED.value, om.c.next_attempt_at <= now)
             .order_by(om.c.next_attempt_at, om.c.id).limit(limit + len(exclude)))
    with app.store.read() as session:
        rows = [r for r in session.connection().execute(query) if r[0] not in exclude][:limit]
    return [OutboxItem(r[0], r[1], r[2], tuple(r[3]), bytes(r[4]), r[5], r[6], r[7]) for r in rows]


def raw_of(session: Session, outbound_id: int) -> bytes:
    """The rendered bytes of an outgoing message."""
    row = session.get(OutboundRaw, outbound_id)
    return bytes(row.raw) if row is not None else b""


@dataclass(frozen=True)
class Result:
    """What one delivery attempt came to, as the dispatcher reports it."""

    item_id: int
    status: str  # sent | retry | failed
    at: datetime
    error: str = ""
    refused: dict[str, str] = field(default_factory=dict)
    remaining: tuple[str, ...] = ()


def record(app: App, results: Sequence[Result], defer: bool = False) -> None:
    """Write the results of several deliveries in one transaction (the dispatcher batches them)."""
    with app.store.write() as session:
        record_in(session, app, results, defer)


def all_plain(results: Sequence[Result]) -> bool:
    """Deliveries to every recipient, the common case: recorded with one statement."""
    return all(r.status == "sent" and not r.refused for r in results)


def record_in(session: Session, app: App, results: Sequence[Result], defer: bool = False) -> None:
    """record(), inside a transaction the caller opened."""
    if defer:
        defer_rendering(session)
    plain = [r for r in results if r.status == "sent" and not r.refused]
    if plain:
        _sent_all(session, plain)
    for r in results:
        if r.status == "sent" and r.refused:
            _sent(app, session, r.item_id, r.at, r.refused)
        elif r.status == "retry":
            _retry(app, session, r.item_id, r.error, r.at, r.remaining, r.refused)
        elif r.status == "failed":
            _failed(app, session, r.item_id, r.error, r.at, r.refused or None)


def _sent_all(session: Session, results: Sequence[Result]) -> None:
    """Deliveries to every recipient: one statement for the whole batch (the common case).

    A delivery is bookkeeping of the outbox (status, sent_at, attempts), shown by `show` and the
    certificate; the audit chain records what changed a transfer, not each accepted SMTP delivery."""
    om = OutboundMessage.__table__  # type: ignore[attr-defined]
    session.connection().execute(
        sa.update(om).where(om.c.id == sa.bindparam("b_id"), om.c.status != OutboxStatus.SENT.value).values(
            status=OutboxStatus.SENT.value, sent_at=sa.bindparam("b_at"), last_attempt_at=sa.bindparam("b_at"),
            attempts=om.c.attempts + 1, last_error=""),
        [{"b_id": r.item_id, "b_at": r.at} for r in results])


def mark_sent(app: App, item_id: int, now: datetime, refused: dict[str, str] | None = None) -> None:
    record(app, [Result(item_id, "sent", now, refused=refused or {})])


def _sent(app: App, session: Session, item_id: int, now: datetime, refused: dict[str, str]) -> None:
    """Delivered (to all, or to all but the refused recipients, which are undeliverable)."""
    row = session.get(OutboundMessage, item_id)
    if row is None or row.status == OutboxStatus.SENT.value:
        return
    row.status, row.sent_at, row.attempts, row.last_attempt_at = OutboxStatus.SENT.value, now, row.attempts + 1, now
    row.last_error = "; ".join(f"{a}: {e}" for a, e in refused.items())[:2000]
    session.add(row)
    if refused:
        _undeliverable(app, session, row, refused, now)


def _retry(app: App, session: Session, item_id: int, error: str, now: datetime, remaining: Collection[str],
           refused: dict[str, str]) -> None:
    """A transient failure: schedule the next attempt, or give up when too old.

    ``remaining`` narrows the row to the recipients still to be reached when
    the others accepted it (the same Message-ID is never sent to them twice).
    """
    cfg = app.config.outbound
    row = session.get(OutboundMessage, item_id)
    if row is None or row.status != OutboxStatus.QUEUED.value:
        return
    row.attempts += 1
    row.last_attempt_at = now
    row.last_error = error[:2000]
    if refused:
        _undeliverable(app, session, row, refused, now)
    if remaining:
        row.recipients = [r for r in row.recipients if r in set(remaining)]
    give_up_at = row.give_up_at or row.created_at + timedelta(hours=cfg.give_up_after_hours)
    if now >= give_up_at:
        row.status = OutboxStatus.FAILED.value
        session.add(row)
        log.error("outbox #%s %s: gave up after %d attempts: %s", row.id, row.message_id, row.attempts, error)
        _undeliverable(app, session, row, {r: f"gave up: {error}" for r in row.recipients}, now)
        return
    row.next_attempt_at = now + timedelta(seconds=backoff(row.attempts, cfg.retry_min_seconds,
                                                           cfg.retry_max_seconds))
    session.add(row)
    log.warning("outbox #%s %s: attempt %d failed (%s); next at %s", row.id, row.message_id, row.attempts,
                error, row.next_attempt_at.isoformat())


def _failed(app: App, session: Session, item_id: int, error: str, now: datetime,
            refused: dict[str, str] | None) -> None:
    """A permanent refusal: the row fails, its addresses are undeliverable, the operator is told."""
    row = session.get(OutboundMessage, item_id)
    if row is None or row.status != OutboxStatus.QUEUED.value:
        return
    row.status, row.attempts, row.last_error = OutboxStatus.FAILED.value, row.attempts + 1, error[:2000]
    row.last_attempt_at = now
    session.add(row)
    log.error("outbox #%s %s: permanent failure: %s", row.id, row.message_id, error)
    _undeliverable(app, session, row, refused or {r: error for r in row.recipients}, now)


def _undeliverable(app: App, session: Session, row: OutboundMessage, refused: dict[str, str],
                   now: datetime) -> None:
    transfer = session.get(Transfer, row.transfer_id) if row.transfer_id else None
    party = session.get(Party, row.party_id) if row.party_id else None
    marked: list[str] = []
    if party is not None:
        for address in addresses_of(session, party.id or 0):
            if address.address in refused and address.undeliverable_at is None:
                address.undeliverable_at = now
                address.undeliverable_reason = refused[address.address][:300]
                session.add(address)
                marked.append(address.address)
    if transfer is not None:
        append_event(session, transfer.id, "mail-failed", {
            "message_id": row.message_id, "mail": row.kind, "role": party.role if party else "operator",
            "refused": refused}, now)
        if marked and party is not None:
            append_event(session, transfer.id, "address-undeliverable",
                         {"role": party.role, "addresses": marked, "outbound": row.id}, now)
    if row.kind != MailKind.OPERATOR_ALERT.value:
        facts = [("message", row.message_id)]
        if party is not None:
            facts.append(("role", party.role))
        facts += [("address", a) for a in refused] + [("error", e) for e in list(refused.values())[:1]]
        queue_operator_alert(app, session, transfer, "delivery-failed", facts, now)


def outbox_summary(r: OutboundMessage) -> dict[str, Any]:
    """One outgoing message for `outbox`."""
    return {"id": r.id, "created_at": r.created_at.isoformat(), "kind": r.kind, "transfer": r.transfer_id,
            "to": r.recipients, "subject": r.subject, "message_id": r.message_id, "status": r.status,
            "attempts": r.attempts, "next_attempt_at": r.next_attempt_at.isoformat(),
            "last_attempt_at": r.last_attempt_at.isoformat() if r.last_attempt_at else None,
            "last_error": r.last_error or None, "sent_at": r.sent_at.isoformat() if r.sent_at else None}


def outbox_page(app: App, status: str | None = None, limit: int = 500, cursor: str | None = None) -> Page:
    """Outgoing messages, newest first, ``limit`` at a time before ``cursor``."""
    before = parse_cursor(cursor)
    with app.store.read() as session:
        query = select(OutboundMessage).order_by(col(OutboundMessage.id).desc())
        count = select(sa.func.count()).select_from(OutboundMessage)
        if status:
            query = query.where(OutboundMessage.status == status)
            count = count.where(OutboundMessage.status == status)
        if before is not None:
            query = query.where(col(OutboundMessage.id) < before)
        rows = list(session.exec(query.limit(limit)))
        more = session.exec(count.where(col(OutboundMessage.id) < rows[-1].id)).one() if rows else 0  # type: ignore[call-overload]
        return page_of([outbox_summary(r) for r in rows], int(more))


def retry_outbox(app: App, item_id: int | None, all_failed: bool, now: datetime) -> list[int]:
    """Put failed rows back in the queue, due now."""
    with app.store.write() as session:
        if all_failed:
            rows = list(session.exec(select(OutboundMessage).where(OutboundMessage.status == OutboxStatus.FAILED.value)))
        else:
            row = session.get(OutboundMessage, item_id)
            if row is None:
                raise Refusal(f"unknown outbox message #{item_id}")
            if row.status != OutboxStatus.FAILED.value:
                raise Refusal(f"outbox message #{item_id} is {row.status}, not failed")
            rows = [row]
        for row in rows:
            row.status, row.next_attempt_at = OutboxStatus.QUEUED.value, now
            row.give_up_at = now + timedelta(hours=app.config.outbound.give_up_after_hours)
            session.add(row)
        return [r.id or 0 for r in rows]
