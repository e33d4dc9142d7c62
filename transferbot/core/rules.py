"""The rules of a transfer, as plain functions over plain data.

Nothing here does I/O or reads a clock: the service layer loads facts,
calls these, and applies the returned change in one transaction. That is
what lets the rules be tested without sockets and walked through time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from transferbot.core import timeline
from transferbot.core.domain import (
    AccountKind,
    Decision,
    EntitlementState,
    MailKind,
    Role,
    TransferKind,
    TransferStatus,
)
from transferbot.core.errors import Conflict, Refusal, TooSoon, Unknown


@dataclass(frozen=True)
class EntitlementFacts:
    id: str
    product: str
    customer_id: str
    isv_id: str
    reseller_id: str | None
    state: EntitlementState


@dataclass(frozen=True)
class AccountFacts:
    id: str
    kind: AccountKind


@dataclass(frozen=True)
class Plan:
    """What a valid request becomes: its kind and its derived parties."""

    kind: TransferKind
    from_reseller: str | None
    to_reseller: str | None
    parties: tuple[tuple[Role, str], ...]


def transfer_kind(current_reseller: str | None, target_reseller: str | None) -> TransferKind:
    """The kind follows from where the entitlement is and where it goes."""
    if current_reseller is None and target_reseller is not None:
        return TransferKind.DIRECT_TO_RESELLER
    if current_reseller is not None and target_reseller is None:
        return TransferKind.RESELLER_TO_DIRECT
    if current_reseller is not None and target_reseller is not None and current_reseller != target_reseller:
        return TransferKind.RESELLER_CHANGE
    raise Refusal("the target is the entitlement's current channel")


def derive_parties(ent: EntitlementFacts, target_reseller: str | None) -> tuple[tuple[Role, str], ...]:
    """Every party who must approve, in a stable order; never typed in."""
    parties: list[tuple[Role, str]] = [(Role.CUSTOMER, ent.customer_id), (Role.ISV, ent.isv_id)]
    if ent.reseller_id is not None:
        parties.append((Role.CURRENT_RESELLER, ent.reseller_id))
    if target_reseller is not None:
        parties.append((Role.NEW_RESELLER, target_reseller))
    return tuple(parties)


def plan_request(
    entitlement_id: str,
    ent: EntitlementFacts | None,
    target_id: str | None,
    target: AccountFacts | None,
    has_open_transfer: bool,
) -> Plan:
    """Check a request against the registry; refuse with a one-line reason."""
    if ent is None:
        raise Unknown(f"unknown entitlement {entitlement_id!r}")
    if ent.state is not EntitlementState.ACTIVE:
        raise Refusal(f"entitlement {ent.id} is {ent.state}, not active")
    if target_id is not None:
        if target is None:
            raise Unknown(f"unknown account {target_id!r}")
        if target.kind is not AccountKind.RESELLER:
            raise Refusal(f"account {target.id} is a {target.kind}, not a reseller")
    if target_id == ent.reseller_id:
        where = f"through reseller {target_id}" if target_id else "a direct order"
        raise Refusal(f"entitlement {ent.id} is already {where}")
    if has_open_transfer:
        raise Conflict(f"entitlement {ent.id} already has an open transfer")
    kind = transfer_kind(ent.reseller_id, target_id)
    return Plan(kind, ent.reseller_id, target_id, derive_parties(ent, target_id))


@dataclass(frozen=True)
class PartyFacts:
    role: Role
    account_id: str
    decision: Decision
    reminders_sent: int = 0
    last_call_sent: bool = False
    deliverable: bool = True
    last_help_at: datetime | None = None
    last_notice_at: datetime | None = None

    @property
    def progress(self) -> timeline.PartyProgress:
        return timeline.PartyProgress(pending=self.decision is Decision.PENDING, deliverable=self.deliverable,
                                      reminders_sent=self.reminders_sent, last_call_sent=self.last_call_sent)


@dataclass(frozen=True)
class TransferFacts:
    id: str
    status: TransferStatus
    entitlement_id: str
    from_reseller: str | None
    to_reseller: str | None
    parties: tuple[PartyFacts, ...]
    created_at: datetime | None = None
    expires_at: datetime | None = None

    def party(self, role: Role) -> PartyFacts:
        for party in self.parties:
            if party.role is role:
                return party
        raise KeyError(role)


@dataclass(frozen=True)
class Notice:
    """A mail the change causes: one per role listed.

    ``addresses``, when given, are where the mail goes instead of the party's current addresses
    (a replaced contact is told at its old address)."""

    kind: MailKind
    roles: tuple[Role, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Alert:
    """A mail to the operator: what happened and the facts that say so."""

    name: str
    facts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PartyUpdate:
    """What a change does to one party besides its decision (None: unchanged)."""

    role: Role
    reminders_sent: int | None = None
    last_call_sent: bool | None = None
    help_sent: bool = False  # a help mail went out now (one a day at most)
    notice_sent: bool = False  # an ignored-sender notice went out now (one a day at most)
    contact: tuple[str, ...] | None = None  # replaced: these addresses, a new token, a new thread
    clear_undeliverable: bool = False
    undeliverable: tuple[tuple[str, str], ...] = ()  # (address, why)


@dataclass(frozen=True)
class Change:
    """What applying a rule does: the service writes exactly this, atomically, in one place
    (service.transition). ``status`` None leaves the status as it is."""

    status: TransferStatus | None = None
    decisions: dict[Role, Decision] = field(default_factory=dict)
    reason: str = ""  # a decline's reason, kept on the party
    updates: tuple[PartyUpdate, ...] = ()
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    notices: tuple[Notice, ...] = ()
    alerts: tuple[Alert, ...] = ()
    move_entitlement: bool = False
    closed: bool = False


class NotPending(Exception):
    """The transfer is closed: a reply to it changes nothing."""


class AlreadyDecided(Exception):
    """The party has decided before: a decision is counted once."""


def all_roles(t: TransferFacts) -> tuple[Role, ...]:
    return tuple(p.role for p in t.parties)


def record_decision(
    t: TransferFacts,
    role: Role,
    decision: Decision,
    entitlement: EntitlementFacts,
    reason: str = "",
) -> Change:
    """Apply one party's decision; the last approval completes the transfer."""
    if t.status is not TransferStatus.PENDING:
        raise NotPending(t.status)
    party = t.party(role)
    if party.decision is not Decision.PENDING:
        raise AlreadyDecided(party.decision)
    if decision is Decision.DECLINED:
        data: dict[str, Any] = {"role": role.value, "account": party.account_id}
        if reason:
            data["reason"] = reason
        return Change(
            status=TransferStatus.DECLINED,
            decisions={role: Decision.DECLINED},
            reason=reason,
            events=(("declined", data), ("transfer-declined", {"by": role.value})),
            notices=(Notice(MailKind.DECLINED, all_roles(t), extra={"by_role": role.value, "reason": reason}),),
            closed=True,
        )
    if decision is not Decision.APPROVED:
        raise ValueError(decision)
    approved = {p.role for p in t.parties if p.decision is Decision.APPROVED} | {role}
    event = ("approved", {"role": role.value, "account": party.account_id})
    if approved != set(all_roles(t)):
        return Change(
            status=TransferStatus.PENDING,
            decisions={role: Decision.APPROVED},
            events=(event,),
            notices=(Notice(MailKind.RECEIPT, (role,)),),
        )
    if entitlement.reseller_id != t.from_reseller or entitlement.state is not EntitlementState.ACTIVE:
        reason_text = "the entitlement changed after the request was filed"
        return Change(
            status=TransferStatus.CANCELLED,
            decisions={role: Decision.APPROVED},
            events=(
                event,
                ("cancelled", {"reason": reason_text, "by": "transferbot",
                               "entitlement_reseller": entitlement.reseller_id,
                               "entitlement_state": entitlement.state.value}),
            ),
            notices=(Notice(MailKind.CANCELLED, all_roles(t), extra={"reason": reason_text}),),
            alerts=(Alert("cancelled", (("reason", reason_text),)),),
            closed=True,
        )
    return Change(
        status=TransferStatus.COMPLETED,
        decisions={role: Decision.APPROVED},
        events=(
            event,
            ("entitlement-moved", {"entitlement": t.entitlement_id, "from": t.from_reseller, "to": t.to_reseller}),
            ("completed", {}),
        ),
        notices=(Notice(MailKind.COMPLETED, all_roles(t)),),
        move_entitlement=True,
        closed=True,
    )


def pending_roles(t: TransferFacts) -> tuple[Role, ...]:
    return tuple(p.role for p in t.parties if p.decision is Decision.PENDING)


def expire(t: TransferFacts) -> Change:
    """The deadline passed with parties still silent: nothing moves, everyone and the operator are told."""
    if t.status is not TransferStatus.PENDING:
        raise NotPending(t.status)
    silent = [r.value for r in pending_roles(t)]
    return Change(
        status=TransferStatus.EXPIRED,
        events=(("expired", {"unanswered": silent}),),
        notices=(Notice(MailKind.EXPIRED, all_roles(t), extra={"reason": "no answer from: " + ", ".join(silent)}),),
        alerts=(Alert("expired", (("reason", "no answer from: " + ", ".join(silent)),)),),
        closed=True,
    )


def cancel(t: TransferFacts, reason: str, by: str) -> Change:
    """The ISV withdraws a pending transfer; every party is told why."""
    if t.status is not TransferStatus.PENDING:
        raise Conflict(f"transfer {t.id} is {t.status.value}; only a pending transfer can be cancelled")
    if not reason.strip():
        raise Refusal("--reason must not be empty: every party is told why")
    return Change(
        status=TransferStatus.CANCELLED,
        events=(("cancelled", {"reason": reason, "by": by}),),
        notices=(Notice(MailKind.CANCELLED, all_roles(t), extra={"reason": reason}),),
        closed=True,
    )


def sweep(t: TransferFacts, policy: timeline.Policy, now: datetime) -> Change | None:
    """What is due for a pending transfer at ``now``: expiry, else at most one reminder or the last
    call per silent party (the most recent one only, after a downtime). None when nothing is."""
    if t.status is not TransferStatus.PENDING:
        return None
    assert t.created_at is not None and t.expires_at is not None
    if now >= t.expires_at:
        return expire(t)
    updates: list[PartyUpdate] = []
    events: list[tuple[str, dict[str, Any]]] = []
    reminders: list[Role] = []
    calls: list[Role] = []
    for p in t.parties:
        due = timeline.due_for_party(p.progress, t.created_at, t.expires_at, policy, now)
        if due.last_call:
            calls.append(p.role)
            events.append(("last-call", {"role": p.role.value, "number": due.reminders_sent}))
        elif due.reminder:
            reminders.append(p.role)
            events.append(("reminder", {"role": p.role.value, "number": due.reminders_sent}))
        if due.reminders_sent != p.reminders_sent or due.last_call:
            updates.append(PartyUpdate(p.role, reminders_sent=due.reminders_sent,
                                       last_call_sent=True if due.last_call else None))
    notices = tuple(Notice(kind, tuple(roles)) for kind, roles in ((MailKind.REMINDER, reminders),
                                                                   (MailKind.LAST_CALL, calls)) if roles)
    if not updates and not notices:
        return None
    return Change(updates=tuple(updates), events=tuple(events), notices=notices)


NOTICE_INTERVAL = timedelta(days=1)


def reply_notice(t: TransferFacts, role: Role, kind: MailKind, now: datetime,
                 extra: dict[str, Any] | None = None) -> Change:
    """The answer a reply that recorded nothing calls for: the status (always), the help mail or the
    ignored-sender notice (each at most once a day per party, so no two machines can ping-pong)."""
    party = t.party(role)
    if kind is MailKind.STATUS:
        return Change(notices=(Notice(kind, (role,), extra=dict(extra or {})),))
    last = party.last_help_at if kind is MailKind.HELP else party.last_notice_at
    if last is not None and now - last < NOTICE_INTERVAL:
        return Change()
    stamp = PartyUpdate(role, help_sent=kind is MailKind.HELP, notice_sent=kind is not MailKind.HELP)
    return Change(updates=(stamp,), notices=(Notice(kind, (role,), extra=dict(extra or {})),))


# A party is resent its confirmation at most this often, however many ask (the CLI, the API, the dashboard,
# several daemons): resending is mail to a third party on the asker's word.
RESEND_INTERVAL = timedelta(hours=1)


def resend(t: TransferFacts, roles: tuple[Role, ...], cleared: dict[Role, list[str]], now: datetime,
           last_resent: Mapping[Role, datetime], by: str = "operator", force: bool = False) -> Change:
    """The confirmation again (same token, same thread) to parties still to answer; ``by`` names who asked.

    A party resent less than RESEND_INTERVAL ago (``last_resent``) is left out, and when that leaves
    nobody the request is refused (TooSoon, saying from when). ``force`` (the operator's) resends all the
    same, and the event says it was forced."""
    if t.status is not TransferStatus.PENDING:
        raise Conflict(f"transfer {t.id} is {t.status.value}; only a pending transfer can be changed")
    recent = {r: last_resent[r] for r in roles if r in last_resent and now - last_resent[r] < RESEND_INTERVAL}
    if recent and not force:
        roles = tuple(r for r in roles if r not in recent)
        if not roles:
            raise _too_soon(t.id, recent, now)
    return Change(
        updates=tuple(PartyUpdate(r, clear_undeliverable=True) for r in roles if cleared.get(r)),
        events=tuple(("resent", {"role": r.value, "cleared_undeliverable": cleared.get(r, []), "by": by,
                                 **({"forced": True} if r in recent else {})})
                     for r in roles),
        notices=(Notice(MailKind.CONFIRMATION, roles),) if roles else (),
    )


def _too_soon(transfer_id: str, recent: Mapping[Role, datetime], now: datetime) -> TooSoon:
    again = (min(recent.values()) + RESEND_INTERVAL).astimezone(UTC)
    minutes = int(RESEND_INTERVAL.total_seconds() // 60)
    every = "an hour" if minutes == 60 else f"every {minutes} minutes"
    if len(recent) == 1:
        [(role, last)] = recent.items()
        said = f"the {role.value} of {transfer_id} was resent its confirmation at {last.astimezone(UTC):%H:%M} UTC"
    else:
        *first, final = (r.value for r in recent)
        said = f"the {', '.join(first)} and {final} of {transfer_id} were each resent their confirmation lately"
    return TooSoon(f"{said}; a party is resent at most once {every}: again from {again:%H:%M} UTC",
                   max(1, math.ceil((again - now).total_seconds())))


def undeliverable(t: TransferFacts, role: Role, refused: dict[str, str], source: dict[str, Any]) -> Change:
    """Addresses of a party that refused our mail for good: not mailed again until resent."""
    marked = tuple((a, why[:300]) for a, why in refused.items())
    return Change(
        updates=(PartyUpdate(role, undeliverable=marked),),
        events=(("address-undeliverable", {"role": role.value, "addresses": [a for a, _ in marked], **source}),),
    )


def replace_contact(t: TransferFacts, role: Role, new: tuple[str, ...], current: dict[Role, list[str]],
                    by: str = "operator") -> Change:
    """A party's contact changed. The new address may not be another party's (one party would then answer
    for two); the old contact is told, at its old address, that it no longer answers for the account.
    ``by`` names who changed it."""
    if t.status is not TransferStatus.PENDING:
        raise Conflict(f"transfer {t.id} is {t.status.value}; only a pending transfer can be changed")
    old = current.get(role, [])
    if sorted(old) == sorted(new):
        raise Refusal(f"the {role.value} of {t.id} is already reached at {', '.join(new)}")
    for other, addresses in current.items():
        taken = sorted(set(new) & set(addresses))
        if other is not role and taken:
            raise Refusal(f"{taken[0]} is an address of the {other.value} of {t.id}; one party cannot answer "
                          f"for another")
    party = t.party(role)
    notices = [Notice(MailKind.CONFIRMATION if party.decision is Decision.PENDING else MailKind.STATUS, (role,))]
    gone = tuple(a for a in old if a not in new)
    if gone:
        notices.append(Notice(MailKind.CONTACT_REPLACED, (role,), addresses=gone))
    return Change(
        updates=(PartyUpdate(role, contact=new),),
        events=(("contact-replaced", {"role": role.value, "old": old, "new": list(new),
                                      "decision_kept": party.decision.value, "by": by}),),
        notices=tuple(notices),
    )


def retried(kind: str, data: dict[str, Any], by: str) -> Change:
    """An operator put a message of the transfer back to work (a failed mail queued again, a reply read again):
    nothing about the transfer changes, but its audit trail says who did it."""
    return Change(events=((kind, {**data, "by": by}),))
