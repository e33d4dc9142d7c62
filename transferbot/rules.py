"""The rules of a transfer, as plain functions over plain data.

Nothing here does I/O or reads a clock: the service layer loads facts,
calls these, and applies the returned change in one transaction. That is
what lets the rules be tested without sockets and walked through time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transferbot.domain import (
    AccountKind,
    Decision,
    EntitlementState,
    MailKind,
    Role,
    TransferKind,
    TransferStatus,
)


class Refusal(Exception):
    """A request or command that the rules refuse; the text is for the user."""


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
        raise Refusal(f"unknown entitlement {entitlement_id!r}")
    if ent.state is not EntitlementState.ACTIVE:
        raise Refusal(f"entitlement {ent.id} is {ent.state}, not active")
    if target_id is not None:
        if target is None:
            raise Refusal(f"unknown account {target_id!r}")
        if target.kind is not AccountKind.RESELLER:
            raise Refusal(f"account {target.id} is a {target.kind}, not a reseller")
    if target_id == ent.reseller_id:
        where = f"through reseller {target_id}" if target_id else "a direct order"
        raise Refusal(f"entitlement {ent.id} is already {where}")
    if has_open_transfer:
        raise Refusal(f"entitlement {ent.id} already has an open transfer")
    kind = transfer_kind(ent.reseller_id, target_id)
    return Plan(kind, ent.reseller_id, target_id, derive_parties(ent, target_id))


@dataclass(frozen=True)
class PartyFacts:
    role: Role
    account_id: str
    decision: Decision


@dataclass(frozen=True)
class TransferFacts:
    id: str
    status: TransferStatus
    entitlement_id: str
    from_reseller: str | None
    to_reseller: str | None
    parties: tuple[PartyFacts, ...]

    def party(self, role: Role) -> PartyFacts:
        for party in self.parties:
            if party.role is role:
                return party
        raise KeyError(role)


@dataclass(frozen=True)
class Notice:
    """A mail the change causes: one per role listed (and the operator when set)."""

    kind: MailKind
    roles: tuple[Role, ...]
    operator: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """What applying a rule does: the service writes exactly this, atomically."""

    status: TransferStatus
    decisions: dict[Role, Decision] = field(default_factory=dict)
    events: tuple[tuple[str, dict[str, Any]], ...] = ()
    notices: tuple[Notice, ...] = ()
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
            notices=(Notice(MailKind.CANCELLED, all_roles(t), operator=True, extra={"reason": reason_text}),),
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
        notices=(Notice(MailKind.EXPIRED, all_roles(t), operator=True,
                        extra={"reason": "no answer from: " + ", ".join(silent)}),),
        closed=True,
    )


def cancel(t: TransferFacts, reason: str, by: str) -> Change:
    """The ISV withdraws a pending transfer; every party is told why."""
    if t.status is not TransferStatus.PENDING:
        raise Refusal(f"transfer {t.id} is {t.status.value}; only a pending transfer can be cancelled")
    if not reason.strip():
        raise Refusal("--reason must not be empty: every party is told why")
    return Change(
        status=TransferStatus.CANCELLED,
        events=(("cancelled", {"reason": reason, "by": by}),),
        notices=(Notice(MailKind.CANCELLED, all_roles(t), extra={"reason": reason}),),
        closed=True,
    )
