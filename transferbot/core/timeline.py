"""When things are due for a pending transfer: reminders, the last call, expiry.

Pure functions of the transfer's timestamps, the policy and each party's
progress, with the time passed in. The service stores ``next_due`` on the
transfer so that a sweep only looks at what is due, never at all that is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Policy:
    remind_after_days: tuple[float, ...] = (3, 7, 12)
    expire_after_days: float = 14
    warn_before_days: float = 2


@dataclass(frozen=True)
class PartyProgress:
    pending: bool
    deliverable: bool
    reminders_sent: int  # how many of the reminder slots are used up (sent or skipped as stale)
    last_call_sent: bool


def last_call_at(expires_at: datetime, policy: Policy) -> datetime | None:
    if policy.warn_before_days <= 0:
        return None
    return expires_at - timedelta(days=policy.warn_before_days)


def reminder_times(created_at: datetime, expires_at: datetime, policy: Policy) -> list[datetime]:
    """The reminder slots that fall before the last call (the last call is the final reminder)."""
    limit = last_call_at(expires_at, policy) or expires_at
    return [created_at + timedelta(days=d) for d in sorted(policy.remind_after_days)
            if created_at + timedelta(days=d) < limit]


@dataclass(frozen=True)
class PartyDue:
    reminder: bool = False  # send one reminder now
    last_call: bool = False  # send the last call now (it replaces a reminder due at the same time)
    reminders_sent: int = 0  # the new count of used reminder slots


def due_for_party(p: PartyProgress, created_at: datetime, expires_at: datetime, policy: Policy,
                  now: datetime) -> PartyDue:
    """At most one mail per party per sweep: the last call if due, else the most recent due reminder."""
    slots = reminder_times(created_at, expires_at, policy)
    used = sum(1 for t in slots if t <= now)  # every slot up to now is used, sent or skipped as stale
    used = max(used, p.reminders_sent)
    if not p.pending or not p.deliverable:
        return PartyDue(reminders_sent=used)
    call = last_call_at(expires_at, policy)
    if call is not None and not p.last_call_sent and now >= call:
        return PartyDue(last_call=True, reminders_sent=len(slots))
    if used > p.reminders_sent:
        return PartyDue(reminder=True, reminders_sent=used)
    return PartyDue(reminders_sent=used)


def next_due(created_at: datetime, expires_at: datetime, policy: Policy,
             parties: list[PartyProgress]) -> datetime:
    """The next moment the sweep has something to do for this transfer (expiry at the latest)."""
    candidates = [expires_at]
    slots = reminder_times(created_at, expires_at, policy)
    call = last_call_at(expires_at, policy)
    for p in parties:
        if not (p.pending and p.deliverable):
            continue
        if p.reminders_sent < len(slots):
            candidates.append(slots[p.reminders_sent])
        if call is not None and not p.last_call_sent:
            candidates.append(call)
    return min(candidates)
