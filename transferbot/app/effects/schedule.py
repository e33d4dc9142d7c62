"""Keeping each pending transfer's ``next_due_at`` right, so sweeps look only at what is due."""

from __future__ import annotations

from sqlmodel import Session

from transferbot.app.effects.facts import Addresses, facts_of, parties_of
from transferbot.config import Config
from transferbot.core import timeline
from transferbot.core.domain import TransferStatus
from transferbot.store.models import Party, Transfer


def policy_of(config: Config) -> timeline.Policy:
    wf = config.workflow
    return timeline.Policy(remind_after_days=tuple(wf.remind_after_days), expire_after_days=wf.expire_after_days,
                           warn_before_days=wf.warn_before_days)


def reschedule(config: Config, session: Session, transfer: Transfer, parties: list[Party] | None = None,
               addresses: Addresses | None = None) -> None:
    """Recompute when the sweep must next look at this transfer (None once it is closed)."""
    if transfer.status != TransferStatus.PENDING.value:
        transfer.next_due_at = None
    else:
        facts = facts_of(session, transfer, parties if parties is not None else parties_of(session, transfer.id),
                         addresses)
        transfer.next_due_at = timeline.next_due(transfer.created_at, transfer.expires_at, policy_of(config),
                                                 [p.progress for p in facts.parties])
    session.add(transfer)
