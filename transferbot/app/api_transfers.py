"""The transfer use cases of the HTTP API, each run inside one transaction with the caller's key checked there.

They are the CLI's use cases (``transfers.request_in``, ``operator.cancel_in``, ``operator.resend_in``)
plus what a key may see: an ISV key acts only on transfers whose ISV party is its account, and
anything else is answered exactly as if it did not exist (the same words, after the same query), so a
key learns nothing about other ISVs' transfers. What they answer is the transfer as the key's audience
sees it (``record.view_for``): an admin key the operator's view, `show --json` without reply tokens; an
ISV key the ISV's, what its copy of the certificate shows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app import controls as operator
from transferbot.app import idempotency, transfers
from transferbot.app.apikeys import Principal, unseen
from transferbot.app.context import App
from transferbot.app.effects.facts import account_names, parties_of, transfer_key
from transferbot.app.queries import certificate
from transferbot.app.queries.record import ISV, OPERATOR, iso, view_for
from transferbot.app.queries.views import summary_of
from transferbot.core.domain import AccountKind, Role, TransferStatus
from transferbot.core.errors import Refusal, Unknown
from transferbot.outbound import certdoc
from transferbot.store import paging
from transferbot.store.models import Account, Entitlement, Party, Transfer

NO_RESELLER = "unknown reseller (to_reseller is not the id of a reseller account)"


def visible(session: Session, principal: Principal, transfer_id: str) -> Transfer:
    """The transfer, if this key may see it; else Unknown, as for an id that does not exist. One query
    either way, filtered by the key's ISV, so another ISV's transfer costs what an unknown id costs."""
    query = select(Transfer).where(Transfer.id == transfer_key(transfer_id))
    if not principal.admin:
        query = query.where(select(Party.id).where(col(Party.transfer_id) == col(Transfer.id),
                                                   Party.role == Role.ISV.value,
                                                   Party.account_id == principal.isv).exists())
    t = session.exec(query).first()
    if t is None:
        raise unseen("transfer")
    return t


def view_of(session: Session, principal: Principal, t: Transfer) -> dict[str, Any]:
    """The transfer as this key's audience sees it."""
    return view_for(session, t, OPERATOR if principal.admin else ISV)


def check_filing(session: Session, principal: Principal, entitlement_id: str, to_reseller: str | None) -> None:
    """What a filing names is there for the key, with one answer for whatever is not, after the same
    query: another ISV's entitlement is one that does not exist, and an account that is not a reseller
    (a customer, an ISV) is no account at all, so that filing tells no key which ids exist. The rules'
    own checks (service.transfers) follow, with their words."""
    query = select(Entitlement.id).where(Entitlement.id == entitlement_id)
    if not principal.admin:
        query = query.where(Entitlement.isv_id == principal.isv)
    if session.exec(query).first() is None:
        raise unseen("entitlement")
    if to_reseller is not None and session.exec(select(Account.id).where(
            Account.id == to_reseller, Account.kind == AccountKind.RESELLER.value)).first() is None:
        raise Unknown(NO_RESELLER)


def file_transfer(session: Session, app: App, principal: Principal, entitlement_id: str, to_reseller: str | None,
                  note: str, claim: idempotency.Claim | None, now: datetime) -> dict[str, Any]:
    """File a transfer for the key's ISV (any, for an admin key); returns it as the key sees it, kept in
    the Idempotency-Key's record when ``claim`` is one."""
    check_filing(session, principal, entitlement_id, to_reseller)
    tid = transfers.request_in(session, app, entitlement_id, to_reseller, note, now)
    t = session.get(Transfer, tid)
    assert t is not None
    body = view_of(session, principal, t)
    if claim is not None:
        idempotency.keep(session, claim, 201, body)
    return body


def get_transfer(session: Session, principal: Principal, transfer_id: str) -> dict[str, Any]:
    return view_of(session, principal, visible(session, principal, transfer_id))


def transfers_page(session: Session, principal: Principal, status: str | None, entitlement: str | None,
                   cursor: str | None, limit: int) -> dict[str, Any]:
    """Transfers, oldest first, ``limit`` at a time after ``cursor``."""
    if status is not None and status not in {s.value for s in TransferStatus}:
        raise Refusal(f"status {status!r} is not one of {', '.join(s.value for s in TransferStatus)}")
    after = paging.decode(cursor, 2)
    query = select(Transfer).order_by(col(Transfer.created_at), col(Transfer.id))
    if status is not None:
        query = query.where(Transfer.status == status)
    if entitlement is not None:
        query = query.where(Transfer.entitlement_id == entitlement)
    if not principal.admin:
        query = query.where(col(Transfer.id).in_(select(Party.transfer_id).where(
            Party.role == Role.ISV.value, Party.account_id == principal.isv)))
    if after is not None:
        try:
            at = datetime.fromisoformat(after[0])
        except ValueError:
            raise paging.refused() from None
        if at.tzinfo is None:
            raise paging.refused()
        query = query.where(sa.or_(col(Transfer.created_at) > at,
                                   sa.and_(col(Transfer.created_at) == at, col(Transfer.id) > after[1])))
    rows = list(session.exec(query.limit(limit + 1)))
    page, more = rows[:limit], int(len(rows) > limit)
    last = (iso(page[-1].created_at) or "", page[-1].id) if page else None
    return paging.page_of([summary_of(session, t) for t in page], more, last).as_api()


def cancel(session: Session, app: App, principal: Principal, transfer_id: str, reason: str,
           now: datetime) -> dict[str, Any]:
    t = visible(session, principal, transfer_id)
    operator.cancel_in(session, app, t.id, reason, now, principal.who)
    return view_of(session, principal, t)


def resend(session: Session, app: App, principal: Principal, transfer_id: str, role: str | None,
           now: datetime) -> dict[str, Any]:
    t = visible(session, principal, transfer_id)
    roles = operator.resend_in(session, app, t.id, role, now)
    return {"id": t.id, "resent_to": roles}


def certificate_of(session: Session, app: App, principal: Principal, transfer_id: str, fmt: str,
                   now: datetime) -> str:
    """The operator's certificate for an admin key; for an ISV key, the copy every party gets (no other
    party's addresses, senders or Message-IDs)."""
    t = visible(session, principal, transfer_id)
    if principal.admin:
        cert = certificate.full(app, session, t, now)
    else:
        parties = parties_of(session, t.id)
        names = account_names(session, [p.account_id for p in parties])
        cert = certificate.party_copy(app, session, t, parties, names, now)
    return certdoc.render(cert, fmt)
