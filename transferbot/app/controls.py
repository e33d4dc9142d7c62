"""The operator's controls over a pending transfer: cancel, resend, replace a contact."""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app import webhooks
from transferbot.app.context import App
from transferbot.app.effects import transition
from transferbot.app.effects.facts import addresses_of, facts_of, find_transfer, lock_transfer, parties_of
from transferbot.app.transfers import check_note
from transferbot.core import rules
from transferbot.core.addresses import AddressError, normalize_address
from transferbot.core.clock import now as clock_now
from transferbot.core.domain import Role, TransferStatus
from transferbot.core.errors import Conflict, Refusal, Unknown
from transferbot.store.models import Event, Party, Transfer, WebhookDelivery

log = logging.getLogger(__name__)
REASON_LIMIT = 1000


def _locked(session: Session, transfer_id: str, pending: bool = True) -> Transfer:
    found = find_transfer(session, transfer_id)
    t = lock_transfer(session, found.id) if found else None
    if t is None:
        raise Unknown(f"unknown transfer {transfer_id!r}")
    if pending and t.status != TransferStatus.PENDING.value:
        raise Conflict(f"transfer {t.id} is {t.status}; only a pending transfer can be changed")
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


def cancel_transfer(app: App, transfer_id: str, reason: str, at: datetime | None = None,
                    by: str = "operator") -> str:
    """The ISV withdraws the request: everyone is told, with the reason; its tokens stop counting."""
    reason = check_note(reason, "--reason", REASON_LIMIT)
    return app.store.run(cancel_in, app, transfer_id, reason, at or clock_now(), by)


def cancel_in(session: Session, app: App, transfer_id: str, reason: str, now: datetime, by: str) -> str:
    """cancel_transfer inside the caller's transaction (``reason`` checked already)."""
    t = _locked(session, transfer_id, pending=False)
    parties = parties_of(session, t.id)
    change = rules.cancel(facts_of(session, t, parties), reason, by)
    transition.apply(app, session, t, change, now, parties=parties)
    log.info("%s: cancelled by %s: %s", t.id, by, reason)
    return t.id


def resend(app: App, transfer_id: str, role: str | None = None, at: datetime | None = None,
           by: str = "operator", force: bool = False) -> list[str]:
    """Mail the confirmation again (same token, threaded) to pending parties, or to one.

    The operator asks explicitly, so addresses marked undeliverable are tried again too. ``by`` (e.g.
    ``operator:alice`` from the dashboard) is recorded in the audit trail. A party is resent at most once
    an hour (rules.RESEND_INTERVAL) unless ``force``."""
    return app.store.run(resend_in, app, transfer_id, role, at or clock_now(), by, force)


_RESENT = (select(Event.at, Event.data)
           .where(Event.transfer_id == sa.bindparam("transfer_id"), Event.kind == "resent",
                  col(Event.at) > sa.bindparam("since")))


def last_resent(session: Session, transfer_id: str, now: datetime) -> dict[Role, datetime]:
    """When each party of a transfer was last resent its confirmation within RESEND_INTERVAL of ``now``: read
    from the audit trail, so that every daemon (and the CLI) keeps one limit."""
    last: dict[Role, datetime] = {}
    for at, data in session.exec(_RESENT, params={"transfer_id": transfer_id,
                                                  "since": now - rules.RESEND_INTERVAL}):
        role = Role(data["role"])
        last[role] = max(at, last.get(role, at))
    return last


def resend_in(session: Session, app: App, transfer_id: str, role: str | None, now: datetime,
              by: str = "operator", force: bool = False) -> list[str]:
    """resend inside the caller's transaction (the transfer locked first, so that two asking at once are
    counted one after the other); returns the roles mailed."""
    t = _locked(session, transfer_id)
    parties = parties_of(session, t.id)
    if role is not None:
        party = _party(parties, _role(role), t)
        if party.decision != "pending":
            raise Conflict(f"the {party.role} of {t.id} has already {party.decision}; nothing to resend")
        targets = [party]
    else:
        targets = [p for p in parties if p.decision == "pending"]
    cleared = {Role(p.role): [a.address for a in addresses_of(session, p.id or 0) if a.undeliverable_at]
               for p in targets}
    change = rules.resend(facts_of(session, t, parties), tuple(Role(p.role) for p in targets), cleared, now,
                          last_resent(session, t.id, now), by, force)
    queued = transition.apply(app, session, t, change, now, parties=parties)
    mailed = {row.party_id for row in queued}
    sent = [p for p in targets if p.id in mailed]
    forced = [e[1]["role"] for e in change.events if e[1].get("forced")]
    log.info("%s: confirmation resent by %s to %s%s", t.id, by, ", ".join(p.role for p in sent) or "nobody",
             f" (forced past the limit for {', '.join(forced)})" if forced else "")
    return [p.role for p in sent]


def replace_contact(app: App, transfer_id: str, role: str, email: str, at: datetime | None = None,
                    by: str = "operator") -> str:
    """A party's contact changed: the old token stops working, the new address gets a fresh confirmation,
    and the old contact is told that it no longer answers for the account. ``by`` is recorded."""
    try:
        address = normalize_address(email)
    except AddressError as exc:
        raise Refusal(f"invalid email address {exc}") from None
    now = at or clock_now()

    def work(session: Session) -> str:
        t = _locked(session, transfer_id)
        parties = parties_of(session, t.id)
        party = _party(parties, _role(role), t)
        current = {Role(p.role): [a.address for a in addresses_of(session, p.id or 0)] for p in parties}
        change = rules.replace_contact(facts_of(session, t, parties), Role(party.role), (address,), current, by)
        transition.apply(app, session, t, change, now, parties=parties)
        log.info("%s: %s contact replaced by %s: %s -> %s", t.id, party.role, by,
                 ", ".join(current[Role(party.role)]), address)
        return party.role

    return app.store.run(work)


def retry_webhook(app: App, delivery_id: int, at: datetime | None = None, by: str = "operator") -> WebhookDelivery:
    """A failed webhook delivery queued again (same event id, same bytes), recorded in its transfer's audit
    trail with who asked."""
    now = at or clock_now()

    def work(session: Session) -> WebhookDelivery:
        row = webhooks.requeue_delivery(session, app, delivery_id, now)
        t = lock_transfer(session, row.transfer_id) if row.transfer_id else None
        if t is not None:
            transition.apply(app, session, t, rules.Change(events=(("webhook-retried", {
                "delivery": row.id, "type": row.type, "endpoint": row.endpoint_id, "by": by}),)), now)
        log.info("webhook delivery #%s queued again by %s", delivery_id, by)
        return row

    return app.store.run(work)
