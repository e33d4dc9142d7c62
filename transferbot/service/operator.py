"""The operator's controls over a pending transfer: cancel, resend, replace a contact."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import Session

from transferbot import rules
from transferbot.addresses import AddressError, normalize_address
from transferbot.audit import append_event
from transferbot.clock import now as clock_now
from transferbot.domain import Decision, MailKind, Role, TransferStatus
from transferbot.models import Party, PartyAddress, RevokedToken, Transfer
from transferbot.rules import Refusal
from transferbot.service.app import App
from transferbot.service.facts import addresses_of, find_transfer, parties_of, transfer_facts
from transferbot.service.letters import queue_notices, queue_party_mail
from transferbot.service.schedule import reschedule
from transferbot.service.transfers import check_note
from transferbot.tokens import new_token

log = logging.getLogger(__name__)
REASON_LIMIT = 1000


def _pending(session: Session, transfer_id: str) -> Transfer:
    t = find_transfer(session, transfer_id)
    if t is None:
        raise Refusal(f"unknown transfer {transfer_id!r}")
    if t.status != TransferStatus.PENDING.value:
        raise Refusal(f"transfer {t.id} is {t.status}; only a pending transfer can be changed")
    return t


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Refusal(f"role {value!r} is not one of {', '.join(r.value for r in Role)}") from None


def _party(parties: list[Party], role: Role, t: Transfer) -> Party:
    for party in parties:
        if party.role == role.value:
            return party
    raise Refusal(f"transfer {t.id} ({t.kind}) has no {role.value}")


def cancel_transfer(app: App, transfer_id: str, reason: str, at: datetime | None = None) -> str:
    """The ISV withdraws the request: everyone is told, with the reason; its tokens stop counting."""
    reason = check_note(reason, "--reason", REASON_LIMIT)
    now = at or clock_now()
    with app.store.write() as session:
        t = find_transfer(session, transfer_id)
        if t is None:
            raise Refusal(f"unknown transfer {transfer_id!r}")
        parties = parties_of(session, t.id)
        change = rules.cancel(transfer_facts(t, parties), reason, "operator")
        t.status, t.closed_at = change.status.value, now
        reschedule(app.config, session, t, parties)
        for kind, data in change.events:
            append_event(session, t.id, kind, data, now)
        queue_notices(app, session, t, change.notices, now)
        log.info("%s: cancelled by the operator: %s", t.id, reason)
        return t.id


def resend(app: App, transfer_id: str, role: str | None = None, at: datetime | None = None) -> list[str]:
    """Mail the confirmation again (same token, threaded) to pending parties, or to one.

    The operator asks explicitly, so addresses marked undeliverable are tried again too."""
    now = at or clock_now()
    with app.store.write() as session:
        t = _pending(session, transfer_id)
        parties = parties_of(session, t.id)
        if role is not None:
            party = _party(parties, _role(role), t)
            if party.decision != Decision.PENDING.value:
                raise Refusal(f"the {party.role} of {t.id} has already {party.decision}; nothing to resend")
            targets = [party]
        else:
            targets = [p for p in parties if p.decision == Decision.PENDING.value]
        sent = []
        for party in targets:
            cleared = [a for a in addresses_of(session, party.id or 0) if a.undeliverable_at is not None]
            for address in cleared:
                address.undeliverable_at, address.undeliverable_reason = None, ""
                session.add(address)
            append_event(session, t.id, "resent", {"role": party.role,
                                                   "cleared_undeliverable": [a.address for a in cleared]}, now)
            if queue_party_mail(app, session, t, party, MailKind.CONFIRMATION, now, parties=parties):
                sent.append(party.role)
        reschedule(app.config, session, t, parties)
        return sent


def replace_contact(app: App, transfer_id: str, role: str, email: str, at: datetime | None = None) -> str:
    """A party's contact changed: the old token stops working, the new address gets a fresh confirmation."""
    try:
        address = normalize_address(email)
    except AddressError as exc:
        raise Refusal(f"invalid email address {exc}") from None
    now = at or clock_now()
    with app.store.write() as session:
        t = _pending(session, transfer_id)
        parties = parties_of(session, t.id)
        party = _party(parties, _role(role), t)
        old = [a.address for a in addresses_of(session, party.id or 0)]
        if old == [address]:
            raise Refusal(f"the {party.role} of {t.id} is already reached at {address}")
        for row in addresses_of(session, party.id or 0):
            session.delete(row)
        session.flush()
        session.add(PartyAddress(party_id=party.id or 0, address=address, position=0))
        session.add(RevokedToken(token=party.token, party_id=party.id or 0, revoked_at=now))
        party.token = new_token(app.secret)
        party.confirmation_message_id = ""  # a new thread for the new contact
        party.reminders_sent, party.last_call_sent, party.last_help_at, party.last_notice_at = 0, False, None, None
        session.add(party)
        session.flush()
        append_event(session, t.id, "contact-replaced", {"role": party.role, "old": old, "new": [address],
                                                         "decision_kept": party.decision}, now)
        kind = MailKind.CONFIRMATION if party.decision == Decision.PENDING.value else MailKind.STATUS
        queue_party_mail(app, session, t, party, kind, now, parties=parties)
        reschedule(app.config, session, t, parties)
        log.info("%s: %s contact replaced: %s -> %s", t.id, party.role, ", ".join(old), address)
        return party.role
