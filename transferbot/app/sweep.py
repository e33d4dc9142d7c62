"""The sweep: whatever is due at a moment, done once.

It claims only transfers whose ``next_due_at`` has come (an indexed column), so its cost grows with
what is due, not with what is open. Each batch is one transaction that locks its transfers with
``FOR UPDATE SKIP LOCKED``: several daemons sweeping at once each take different transfers, and
the transfers of a daemon that dies mid-batch are unlocked by its rollback and taken by the next
sweep. A daemon that was down does on start what became due meanwhile, once: one mail at most per
party per sweep, the most recent one due.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.effects import transition
from transferbot.app.effects.audit import load_heads
from transferbot.app.effects.facts import account_names, addresses_for, facts_of, parties_for
from transferbot.app.effects.schedule import policy_of, reschedule
from transferbot.app.effects.work import Work
from transferbot.core import rules
from transferbot.core.domain import TransferStatus
from transferbot.store.models import Entitlement, Transfer

log = logging.getLogger(__name__)

BATCH = 25


@dataclass(frozen=True)
class Swept:
    looked_at: tuple[str, ...]  # transfers claimed (and so not due any more at this moment)
    acted: int  # of which something was done (a mail, an expiry)


def sweep_batch(session: Session, app: App, now: datetime, limit: int = BATCH,
                skip: Collection[str] = ()) -> Swept:
    """Claim up to ``limit`` due transfers and do what is due for each, in this transaction: one unit of
    work, deferred, so that the batch's events and mail are a statement per table, written at its end."""
    query = (select(Transfer).where(Transfer.status == TransferStatus.PENDING.value,
                                    col(Transfer.next_due_at) <= now)
             .order_by(col(Transfer.next_due_at)).limit(limit).with_for_update(skip_locked=True))
    if skip:
        query = query.where(col(Transfer.id).notin_(list(skip)))
    transfers = list(session.exec(query))
    policy = policy_of(app.config)
    acted = 0
    work = Work(session, deferred=True)
    # What the batch's transfers need, loaded for all of them at once.
    parties_by = parties_for(session, [t.id for t in transfers])
    addresses = addresses_for(session, [p.id for parties in parties_by.values() for p in parties])
    if transfers:
        load_heads(work, [t.id for t in transfers])
        ents = list(session.exec(select(Entitlement).where(col(Entitlement.id).in_([t.entitlement_id
                                                                                    for t in transfers]))))
        account_names(session, [a for e in ents for a in (e.customer_id, e.isv_id, e.reseller_id)]
                      + [t.to_reseller_id for t in transfers]
                      + [p.account_id for parties in parties_by.values() for p in parties], work.names)
    for t in transfers:
        parties = parties_by[t.id]
        change = rules.sweep(facts_of(session, t, parties, addresses), policy, now)
        if change is None:
            reschedule(app.config, session, t, parties, addresses)  # due time was stale: nothing to do now
            continue
        transition.apply(app, session, t, change, now, work=work, parties=parties, addresses=addresses)
        acted += 1
        if change.status is TransferStatus.EXPIRED:
            log.info("%s: expired; unanswered: %s", t.id, ", ".join(change.events[0][1]["unanswered"]))
    work.flush()  # should anything above raise, nothing is written: the transaction is rolled back
    return Swept(tuple(t.id for t in transfers), acted)


def sweep(app: App, now: datetime) -> int:
    """Do what is due at ``now`` (the CLI's and the tests' sweep); returns how many transfers were acted on."""
    done = 0
    seen: set[str] = set()
    while True:
        swept = app.store.run(sweep_batch, app, now, BATCH, frozenset(seen))
        done += swept.acted
        seen.update(swept.looked_at)
        if len(swept.looked_at) < BATCH:
            return done
