"""The transfer use cases of the HTTP API, each run inside one transaction with the caller's key checked there.

They are the CLI's use cases (``transfers.request_in``, ``operator.cancel_in``, ``operator.resend_in``)
plus what a key may see: an ISV key acts only on transfers whose ISV party is its account, and
anything else is answered exactly as if it did not exist (the same words as an unknown id), so a key
learns nothing about other ISVs' transfers. What they answer is ``record.public_detail``: the record
`show --json` prints, without reply tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app import controls as operator
from transferbot.app import idempotency, transfers
from transferbot.app.apikeys import Principal
from transferbot.app.context import App
from transferbot.app.effects.facts import account_names, find_transfer, parties_of
from transferbot.app.queries import certificate
from transferbot.app.queries.record import iso, public_detail
from transferbot.app.queries.views import summary_of
from transferbot.core.domain import Role, TransferStatus
from transferbot.core.errors import Refusal, Unknown
from transferbot.outbound import certdoc
from transferbot.store import cursors
from transferbot.store.models import Entitlement, Party, Transfer


def isv_of(session: Session, transfer_id: str) -> str | None:
    """The ISV a transfer was filed for (its ISV party's account)."""
    return session.exec(select(Party.account_id).where(Party.transfer_id == transfer_id,
                                                       Party.role == Role.ISV.value)).first()


def visible(session: Session, principal: Principal, transfer_id: str) -> Transfer:
    """The transfer, if this key may see it; else Unknown, as for an id that does not exist."""
    t = find_transfer(session, transfer_id)
    if t is None or not principal.may_act_for(isv_of(session, t.id)):
        raise Unknown(f"unknown transfer {transfer_id!r}")
    return t


def file_transfer(session: Session, app: App, principal: Principal, entitlement_id: str, to_reseller: str | None,
                  note: str, idem: tuple[str, str] | None, now: datetime) -> tuple[int, dict[str, Any], bool]:
    """File a transfer for the key's ISV (any, for an admin key); returns (status, body, replayed).

    ``idem`` is (Idempotency-Key, request hash): a kept response for them is answered again."""
    if idem is not None:
        kept = idempotency.find(session, principal.key_id, idem[0], idem[1], now)
        if kept is not None:
            return kept.status_code, dict(kept.response), True
    ent = session.get(Entitlement, entitlement_id)
    if ent is not None and not principal.may_act_for(ent.isv_id):
        raise Unknown(f"unknown entitlement {entitlement_id!r}")
    tid = transfers.request_in(session, app, entitlement_id, to_reseller, note, now)
    t = session.get(Transfer, tid)
    assert t is not None
    body = public_detail(session, t)
    if idem is not None:
        idempotency.keep(session, principal.key_id, idem[0], idem[1], 201, body, now)
    return 201, body, False


def get_transfer(session: Session, principal: Principal, transfer_id: str) -> dict[str, Any]:
    return public_detail(session, visible(session, principal, transfer_id))


def transfers_page(session: Session, principal: Principal, status: str | None, entitlement: str | None,
                   cursor: str | None, limit: int) -> dict[str, Any]:
    """Transfers, oldest first, ``limit`` at a time after ``cursor``."""
    if status is not None and status not in {s.value for s in TransferStatus}:
        raise Refusal(f"status {status!r} is not one of {', '.join(s.value for s in TransferStatus)}")
    after = cursors.decode(cursor, 2)
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
            raise Refusal("cursor is not one this listing gave (pass next_cursor back as it is)") from None
        if at.tzinfo is None:
            raise Refusal("cursor is not one this listing gave (pass next_cursor back as it is)")
        query = query.where(sa.or_(col(Transfer.created_at) > at,
                                   sa.and_(col(Transfer.created_at) == at, col(Transfer.id) > after[1])))
    rows = list(session.exec(query.limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if page else None
    return {"items": [summary_of(session, t) for t in page],
            "next_cursor": cursors.encode(iso(last.created_at), last.id) if more and last else None}


def cancel(session: Session, app: App, principal: Principal, transfer_id: str, reason: str,
           now: datetime) -> dict[str, Any]:
    t = visible(session, principal, transfer_id)
    operator.cancel_in(session, app, t.id, reason, now, principal.who)
    return public_detail(session, t)


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
