"""Read-only views for the CLI: transfer summaries, the full record, the inbox in pages."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.effects.facts import find_transfer, parties_of
from transferbot.app.queries.record import detail_of, inbound_summary, iso, roles_of
from transferbot.core.domain import TransferStatus
from transferbot.core.errors import Refusal, Unknown
from transferbot.store.models import (
    InboundMessage,
    Transfer,
)
from transferbot.store.paging import Page, decode_id, page_of


def _summary(session: Session, t: Transfer) -> dict[str, Any]:
    parties = parties_of(session, t.id)
    return {
        "id": t.id, "kind": t.kind, "status": t.status, "entitlement": t.entitlement_id, "product": t.product,
        "from_reseller": t.from_reseller_id, "to_reseller": t.to_reseller_id,
        "created_at": iso(t.created_at), "expires_at": iso(t.expires_at), "closed_at": iso(t.closed_at),
        "parties": {p.role: p.decision for p in parties},
    }


def list_transfers(app: App, status: str | None = None) -> list[dict[str, Any]]:
    if status is not None and status not in {s.value for s in TransferStatus}:
        raise Refusal(f"status {status!r} is not one of {', '.join(s.value for s in TransferStatus)}")
    with app.store.read() as session:
        query = select(Transfer).order_by(col(Transfer.created_at), col(Transfer.id))
        if status:
            query = query.where(Transfer.status == status)
        return [_summary(session, t) for t in session.exec(query)]


def transfer_detail(app: App, transfer_id: str) -> dict[str, Any]:
    """`show --json`: the record, with the webhook deliveries of the transfer's events."""
    with app.store.read() as session:
        t = find_transfer(session, transfer_id)
        if t is None:
            raise Unknown(f"unknown transfer {transfer_id!r}")
        from transferbot.app.webhooks import deliveries_of_transfer

        return {**detail_of(session, t), "webhooks": deliveries_of_transfer(session, t.id)}


def summary_of(session: Session, t: Transfer) -> dict[str, Any]:
    """One transfer as `list --json` prints it."""
    return _summary(session, t)


def inbox_page(app: App, transfer_id: str | None = None, limit: int = 1000, cursor: str | None = None) -> Page:
    """Inbound messages, oldest first, ``limit`` at a time after ``cursor``."""
    after = decode_id(cursor, "--cursor")
    with app.store.read() as session:
        query = select(InboundMessage).order_by(col(InboundMessage.id))
        count = select(sa.func.count()).select_from(InboundMessage)
        if transfer_id:
            t = find_transfer(session, transfer_id)
            if t is None:
                raise Unknown(f"unknown transfer {transfer_id!r}")
            query = query.where(InboundMessage.transfer_id == t.id)
            count = count.where(InboundMessage.transfer_id == t.id)
        if after is not None:
            query = query.where(col(InboundMessage.id) > after)
        rows = list(session.exec(query.limit(limit)))
        more = session.exec(count.where(col(InboundMessage.id) > rows[-1].id)).one() if rows else 0
        roles = roles_of(session, rows)
        return page_of([inbound_summary(r, roles) for r in rows], int(more))


def list_inbox(app: App, transfer_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    return inbox_page(app, transfer_id, limit).items
