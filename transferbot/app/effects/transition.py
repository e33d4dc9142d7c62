"""The one function that applies a change to a transfer, inside the caller's transaction.

Every use case (a request filed, a reply read, a sweep, an operator's action, a bounce or a failed
delivery) loads the facts, asks the rules for a ``Change`` and hands it here: status, the
entitlement move, decisions, party bookkeeping, audit events, the next due time, and the mail and
webhook events the change causes, all or nothing. The caller has locked the transfer row (facts.lock_transfer).
What the change appends (events, mail) goes to a unit of work (effects.work.Work): the caller's, when
its changes share one, else one of the change's own.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, delete

from transferbot.app import webhooks
from transferbot.app.context import App
from transferbot.app.effects import schedule
from transferbot.app.effects.audit import append_event
from transferbot.app.effects.facts import Addresses, complete_addresses, parties_of
from transferbot.app.effects.mail import Mailer, Queued
from transferbot.app.effects.work import Work
from transferbot.core.domain import Decision, Role, TransferStatus
from transferbot.core.rules import Change, PartyUpdate
from transferbot.core.tokens import new_token
from transferbot.store.models import Entitlement, InboundMessage, Party, PartyAddress, RevokedToken, Transfer, table_of

log = logging.getLogger(__name__)


class EntitlementMoved(Exception):
    """The entitlement is no longer where the transfer said: nothing is applied (the caller retries and
    the rules see where it is now)."""


def apply(app: App, session: Session, t: Transfer, change: Change, now: datetime, *, work: Work | None = None,
          parties: list[Party] | None = None, cause: InboundMessage | None = None,
          addresses: Addresses | None = None) -> list[Queued]:
    """Write ``change`` to ``t`` and queue the mail and webhook events it causes; returns the mail queued.

    ``work``: the use case's unit of work on ``session``, when its changes share one (a deferred Work, the
    sweep's or the reader's batch, writes their events and mail when it is flushed); without it the change
    is a unit of its own, written before this returns. ``parties`` and ``addresses`` (each party's, by
    id), when the caller has them loaded, save queries; the addresses are kept up to date here (a
    replaced contact). Should the change raise, what it appended to a Work that is not deferred is
    dropped; a deferred Work's caller rolls back and forgets the whole batch (Work.forget)."""
    if work is None:
        work = Work(session)
    elif work.session is not session:
        raise ValueError("the unit of work belongs to another session")
    try:
        return _apply(app, work, t, change, now, parties, cause, addresses)
    except BaseException:
        if not work.deferred:
            work.forget()  # nothing this change appended is written
        raise


def _apply(app: App, work: Work, t: Transfer, change: Change, now: datetime, parties: list[Party] | None,
           cause: InboundMessage | None, addresses: Addresses | None) -> list[Queued]:
    session = work.session
    parties = parties if parties is not None else parties_of(session, t.id)
    addresses = complete_addresses(session, parties, addresses)
    before = t.status
    by_role = {Role(p.role): p for p in parties}
    if change.move_entitlement:
        _move_entitlement(session, t, now)
    if change.status is not None and change.status.value != t.status:
        t.status = change.status.value
    if change.closed:
        t.closed_at = now
    for role, decision in change.decisions.items():
        party = by_role[role]
        party.decision, party.decided_at = decision.value, now
        party.decided_by = cause.id if cause is not None else None
        party.reason = change.reason if decision is Decision.DECLINED else ""
        session.add(party)
    for update in change.updates:
        _update_party(app, session, by_role[update.role], update, now, addresses)
    for kind, data in change.events:
        if kind in ("approved", "declined") and cause is not None:
            data = {**data, "inbound": cause.id, "message_id": cause.message_id, "from": cause.from_address}
        append_event(work, t.id, kind, data, now)
    session.add(t)
    schedule.reschedule(app.config, session, t, parties, addresses)
    completed = change.status is TransferStatus.COMPLETED
    mailer = Mailer(app, work, t, parties, now, with_certificate=completed, addresses=addresses)
    for notice in change.notices:
        for role in notice.roles:
            if role in by_role:
                mailer.to_party(by_role[role], notice.kind, notice.extra, notice.addresses)
    for alert in change.alerts:
        mailer.to_operator(alert.name, alert.facts)
    queued = mailer.done()
    # Last, so that the payload's snapshot holds everything this change wrote (its mail included).
    webhooks.queue_events(app, work, t, change, before, parties, now)
    if not work.deferred:
        work.write_events()
    return queued


def _move_entitlement(session: Session, t: Transfer, now: datetime) -> None:
    """A conditional update: it moves only an active entitlement still where the transfer said it was."""
    table = table_of(Entitlement)
    where_now = (table.c.reseller_id.is_(None) if t.from_reseller_id is None
                 else table.c.reseller_id == t.from_reseller_id)
    result = session.connection().execute(
        sa.update(table).where(table.c.id == t.entitlement_id, where_now, table.c.state == "active")
        .values(reseller_id=t.to_reseller_id, updated_at=now))
    if result.rowcount != 1:
        raise EntitlementMoved(t.entitlement_id)
    ent = session.get(Entitlement, t.entitlement_id)
    if ent is not None:
        session.refresh(ent)


def _update_party(app: App, session: Session, party: Party, update: PartyUpdate, now: datetime,
                  known: Addresses) -> None:
    if update.reminders_sent is not None:
        party.reminders_sent = update.reminders_sent
    if update.last_call_sent is not None:
        party.last_call_sent = update.last_call_sent
    if update.help_sent:
        party.last_help_at = now
    if update.notice_sent:
        party.last_notice_at = now
    addresses = known[party.id or 0]
    if update.clear_undeliverable:
        for row in addresses:
            if row.undeliverable_at is not None:
                row.undeliverable_at, row.undeliverable_reason = None, ""
                session.add(row)
    marks = dict(update.undeliverable)
    for row in addresses:
        if row.address in marks and row.undeliverable_at is None:
            row.undeliverable_at, row.undeliverable_reason = now, marks[row.address][:300]
            session.add(row)
    if update.contact is not None:
        old = [row.address for row in addresses]
        session.exec(delete(PartyAddress).where(col(PartyAddress.party_id) == party.id))
        session.flush()
        known[party.id or 0] = [PartyAddress(party_id=party.id or 0, address=address, position=position)
                                for position, address in enumerate(update.contact)]
        session.add_all(known[party.id or 0])
        session.add(RevokedToken(token=party.token, party_id=party.id or 0, revoked_at=now, addresses=old))
        party.token = new_token(app.secret)
        party.confirmation_message_id = ""  # a new thread for the new contact
        party.reminders_sent, party.last_call_sent, party.last_help_at, party.last_notice_at = 0, False, None, None
    session.add(party)
