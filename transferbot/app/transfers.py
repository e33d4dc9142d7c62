"""Filing a transfer: the ISV's request, checked, stored, and its confirmations queued."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from transferbot.app.context import App
from transferbot.app.effects import transition
from transferbot.app.effects.audit import fingerprint
from transferbot.app.effects.facts import entitlement_facts
from transferbot.app.registry import account_emails, refuse_unsafe
from transferbot.core import rules
from transferbot.core.clock import now as clock_now
from transferbot.core.domain import AccountKind, MailKind, TransferStatus
from transferbot.core.errors import Conflict, Refusal
from transferbot.core.rules import Change, Notice
from transferbot.core.tokens import new_token, new_transfer_id
from transferbot.store.models import Account, Entitlement, Party, PartyAddress, Transfer

log = logging.getLogger(__name__)

NOTE_LIMIT = 2000


def check_note(note: str, what: str = "--note", limit: int = NOTE_LIMIT) -> str:
    """A text shown to every party in the body of its mail: it may have several lines (and tabs), but
    no other control character, no line or paragraph separator and no invisible format character
    (bidirectional controls, zero-width characters)."""
    note = note.replace("\r\n", "\n").strip()
    refuse_unsafe(note, what, allow="\n\t")
    if len(note) > limit:
        raise Refusal(f"{what} is longer than {limit} characters")
    return note


def _has_open(session: Session, entitlement_id: str) -> bool:
    row = session.exec(select(Transfer.id).where(
        Transfer.entitlement_id == entitlement_id, Transfer.status == TransferStatus.PENDING.value)).first()
    return row is not None


def _new_id(session: Session) -> str:
    while True:
        candidate = new_transfer_id()
        if session.get(Transfer, candidate) is None:
            return candidate


def request_transfer(app: App, entitlement_id: str, to_reseller: str | None, note: str = "",
                     at: datetime | None = None) -> str:
    """File a transfer as the ISV would; returns its id. Refuses, writing nothing, when invalid."""
    note = check_note(note)
    return app.store.run(request_in, app, entitlement_id, to_reseller, note, at or clock_now())


def request_in(session: Session, app: App, entitlement_id: str, to_reseller: str | None, note: str,
               now: datetime) -> str:
    """request_transfer inside the caller's transaction (``note`` checked already)."""
    ent = session.exec(select(Entitlement).where(Entitlement.id == entitlement_id).with_for_update()).first()
    target = session.get(Account, to_reseller) if to_reseller else None
    plan = rules.plan_request(
        entitlement_id, entitlement_facts(ent) if ent else None, to_reseller,
        rules.AccountFacts(target.id, AccountKind(target.kind)) if target else None,
        _has_open(session, entitlement_id),
    )
    assert ent is not None
    transfer = Transfer(
        id=_new_id(session), entitlement_id=ent.id, kind=plan.kind.value, from_reseller_id=plan.from_reseller,
        to_reseller_id=plan.to_reseller, product=ent.product, note=note, status=TransferStatus.PENDING.value,
        created_at=now, expires_at=now + timedelta(days=app.config.workflow.expire_after_days),
    )
    try:
        with session.begin_nested():  # the open-transfer index decides a race with a concurrent request
            session.add(transfer)
            session.flush()
    except sa.exc.IntegrityError:
        raise Conflict(f"entitlement {ent.id} already has an open transfer") from None
    parties: list[Party] = []
    shown: list[dict[str, Any]] = []
    for role, account_id in plan.parties:
        account = session.get(Account, account_id)
        assert account is not None
        party = Party(transfer_id=transfer.id, role=role.value, account_id=account_id,
                      token=new_token(app.secret), locale=account.locale, timezone=account.timezone)
        session.add(party)
        session.flush()
        emails = account_emails(session, account_id)
        for position, address in enumerate(emails):
            session.add(PartyAddress(party_id=party.id or 0, address=address, position=position))
        parties.append(party)
        shown.append({"role": role.value, "account": account_id, "name": account.name, "emails": emails})
    names = {a: n for a, n in ((s["account"], s["name"]) for s in shown)}
    details = {
        "transfer": transfer.id, "transfer_kind": transfer.kind, "entitlement": ent.id, "product": ent.product,
        "customer": names.get(ent.customer_id, ent.customer_id), "isv": names.get(ent.isv_id, ent.isv_id),
        "from_reseller": plan.from_reseller, "to_reseller": plan.to_reseller, "note": note,
        "parties": shown, "requested_at": now.isoformat(), "expires_at": transfer.expires_at.isoformat(),
    }
    transfer.fingerprint = fingerprint(details)
    change = Change(events=(("requested", {**details, "fingerprint": transfer.fingerprint}),),
                    notices=(Notice(MailKind.CONFIRMATION, tuple(role for role, _ in plan.parties)),))
    transition.apply(app, session, transfer, change, now, parties=parties)
    log.info("%s: requested (%s) for entitlement %s; %d parties", transfer.id, transfer.kind, ent.id, len(parties))
    return transfer.id
