"""The sweep: whatever is due at a moment, done once, one transaction per transfer.

It selects only transfers whose ``next_due_at`` has come (an indexed column),
so its cost grows with what is due, not with what is open. A daemon that was
down does on start what became due meanwhile, once: one mail at most per
party per sweep, the most recent one due.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session, col, select

from transferbot import rules, timeline
from transferbot.audit import append_event
from transferbot.domain import MailKind, TransferStatus
from transferbot.models import Transfer
from transferbot.service.app import App
from transferbot.service.facts import parties_of, transfer_facts
from transferbot.service.letters import defer_rendering, queue_notices, queue_party_mail
from transferbot.service.schedule import policy_of, progress, reschedule

log = logging.getLogger(__name__)

BATCH = 500


def due_transfers(app: App, now: datetime, limit: int = BATCH) -> list[str]:
    with app.store.read() as session:
        return list(session.exec(
            select(Transfer.id).where(Transfer.status == TransferStatus.PENDING.value, col(Transfer.next_due_at) <= now)
            .order_by(col(Transfer.next_due_at)).limit(limit)))


def unseen_due(app: App, now: datetime, seen: set[str]) -> list[str]:
    """The next due transfers this sweep has not looked at yet (one that stays due, say with no
    deliverable address, is looked at once per sweep); they are added to ``seen``."""
    ids = [i for i in due_transfers(app, now) if i not in seen]
    seen.update(ids)
    return ids


def sweep(app: App, now: datetime) -> int:
    """Do what is due at ``now``; returns how many transfers were acted on."""
    done = 0
    seen: set[str] = set()
    while ids := unseen_due(app, now, seen):
        done += sum(sweep_transfer(app, transfer_id, now) for transfer_id in ids)
    return done


def sweep_transfer(app: App, transfer_id: str, now: datetime, defer: bool = False) -> bool:
    """What is due for one transfer, in one transaction (``defer``: render its mail after)."""
    with app.store.write() as session:
        if defer:
            defer_rendering(session)
        return sweep_one(app, session, transfer_id, now)


def sweep_one(app: App, session: Session, transfer_id: str, now: datetime) -> bool:
    t = session.get(Transfer, transfer_id)
    if t is None or t.status != TransferStatus.PENDING.value or t.next_due_at is None or t.next_due_at > now:
        return False  # changed since it was selected
    parties = parties_of(session, t.id)
    if now >= t.expires_at:
        change = rules.expire(transfer_facts(t, parties))
        t.status, t.closed_at, t.next_due_at = change.status.value, now, None
        session.add(t)
        for kind, data in change.events:
            append_event(session, t.id, kind, data, now)
        queue_notices(app, session, t, change.notices, now)
        log.info("%s: expired; unanswered: %s", t.id, ", ".join(change.events[0][1]["unanswered"]))
        return True
    policy = policy_of(app.config)
    acted = False
    for party in parties:
        due = timeline.due_for_party(progress(session, party), t.created_at, t.expires_at, policy, now)
        if due.last_call:
            queue_party_mail(app, session, t, party, MailKind.LAST_CALL, now, parties=parties)
            party.last_call_sent = True
            acted = True
        elif due.reminder:
            queue_party_mail(app, session, t, party, MailKind.REMINDER, now, parties=parties)
            acted = True
        if due.reminders_sent != party.reminders_sent or due.last_call or due.reminder:
            if due.reminder or due.last_call:
                append_event(session, t.id, "last-call" if due.last_call else "reminder",
                             {"role": party.role, "number": due.reminders_sent}, now)
            party.reminders_sent = due.reminders_sent
            session.add(party)
    reschedule(app.config, session, t, parties)
    return acted
