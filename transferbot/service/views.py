"""Read-only views for the CLI: transfer summaries, the full record, the inbox in pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.audit import events_of
from transferbot.domain import TransferStatus
from transferbot.models import (
    Account,
    Entitlement,
    InboundMessage,
    OutboundMessage,
    Party,
    RevokedToken,
    Transfer,
)
from transferbot.rules import Refusal, Unknown
from transferbot.service.app import App
from transferbot.service.facts import addresses_of, find_transfer, parties_of


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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


def inbound_summary(row: InboundMessage, roles: dict[int, str] | None = None) -> dict[str, Any]:
    """One inbound message for `inbox`; ``party`` is the role it was matched to."""
    return {
        "id": row.id, "received_at": iso(row.received_at), "mail_from": row.mail_from, "rcpt_tos": row.rcpt_tos,
        "from": row.from_address, "subject": row.subject, "message_id": row.message_id, "size": row.size,
        "transfer": row.transfer_id, "party": (roles or {}).get(row.party_id or 0), "state": row.state,
        "outcome": row.outcome, "checks": row.checks, "decided_by": row.checks[-1] if row.checks else None,
        "reason": row.reason, "read_at": iso(row.read_at), "peer": row.peer, "helo": row.helo,
        "authentication": row.auth, "auth": auth_summary(row.auth),
    }


def auth_summary(auth: dict[str, Any] | None) -> str | None:
    """One line for a stored authentication outcome: ``auth=pass spf=pass dkim=… dmarc=…``."""
    if not auth:
        return None
    from transferbot.senderauth import AuthOutcome

    return AuthOutcome.from_dict(auth).summary()


def _roles(session: Session, rows: list[InboundMessage]) -> dict[int, str]:
    ids = {r.party_id for r in rows if r.party_id}
    if not ids:
        return {}
    return {p.id or 0: p.role for p in session.exec(select(Party).where(col(Party.id).in_(ids)))}


def transfer_detail(app: App, transfer_id: str) -> dict[str, Any]:
    """`show --json`: the record, with the webhook deliveries of the transfer's events."""
    with app.store.read() as session:
        t = find_transfer(session, transfer_id)
        if t is None:
            raise Unknown(f"unknown transfer {transfer_id!r}")
        from transferbot.service.webhooks import deliveries_of_transfer

        return {**detail_of(session, t), "webhooks": deliveries_of_transfer(session, t.id)}


def detail_of(session: Session, t: Transfer) -> dict[str, Any]:
    """A transfer's whole record as it stands in this transaction (what `show --json` prints)."""
    ent = session.get(Entitlement, t.entitlement_id)
    assert ent is not None
    parties = []
    for p in parties_of(session, t.id):
        account = session.get(Account, p.account_id)
        addresses = addresses_of(session, p.id or 0)
        decided_by = session.get(InboundMessage, p.decided_by) if p.decided_by else None
        parties.append({
            "role": p.role, "account": p.account_id, "name": account.name if account else p.account_id,
            "email": addresses[0].address if addresses else None,
            "emails": [a.address for a in addresses],
            "undeliverable": [{"address": a.address, "since": iso(a.undeliverable_at),
                               "reason": a.undeliverable_reason} for a in addresses if a.undeliverable_at],
            "decision": p.decision, "decided_at": iso(p.decided_at), "reason": p.reason or None,
            "reply": ({"inbound": decided_by.id, "message_id": decided_by.message_id,
                       "from": decided_by.from_address} if decided_by else None),
            "locale": p.locale, "timezone": p.timezone,
        })
    events = [{**e.data, "seq": e.seq, "at": iso(e.at), "kind": e.kind} for e in events_of(session, t.id)]
    received = list(session.exec(
        select(InboundMessage).where(InboundMessage.transfer_id == t.id).order_by(col(InboundMessage.id))))
    roles = _roles(session, received)
    inbound = [inbound_summary(r, roles) for r in received]
    outbound = [{"id": o.id, "kind": o.kind, "to": o.recipients, "status": o.status, "attempts": o.attempts,
                 "message_id": o.message_id, "last_error": o.last_error or None}
                for o in session.exec(select(OutboundMessage).where(OutboundMessage.transfer_id == t.id)
                                      .order_by(col(OutboundMessage.id)))]
    return {
        "id": t.id, "kind": t.kind, "status": t.status, "note": t.note, "fingerprint": t.fingerprint,
        "created_at": iso(t.created_at), "expires_at": iso(t.expires_at), "closed_at": iso(t.closed_at),
        "from_reseller": t.from_reseller_id, "to_reseller": t.to_reseller_id,
        "entitlement": {"id": ent.id, "product": ent.product, "customer": ent.customer_id, "isv": ent.isv_id,
                        "reseller": ent.reseller_id, "state": ent.state},
        "parties": parties, "events": events, "inbound": inbound, "outbound": outbound,
    }


REDACTED = "…"


def public_detail(session: Session, t: Transfer) -> dict[str, Any]:
    """The record as the API answers it and webhooks carry it: `show --json` without any reply token.

    A token (live, or revoked when a contact was replaced) is what a reply must carry to count, so it
    never leaves transferbot but in the mail to its own party: the envelope recipients of inbound mail
    (``transfer+TOKEN@domain``) and any text quoting one show ``transfer+…@domain`` instead."""
    parties = parties_of(session, t.id)
    tokens = [p.token for p in parties]
    party_ids = [p.id for p in parties]
    tokens += list(session.exec(select(RevokedToken.token).where(col(RevokedToken.party_id).in_(party_ids))))
    wanted = sorted({tok for tok in tokens if tok}, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(tok) for tok in wanted), re.IGNORECASE) if wanted else None
    return _scrub(detail_of(session, t), pattern)


def _scrub(value: Any, pattern: re.Pattern[str] | None) -> Any:
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: _scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, pattern) for v in value]
    return value


def summary_of(session: Session, t: Transfer) -> dict[str, Any]:
    """One transfer as `list --json` prints it."""
    return _summary(session, t)


@dataclass(frozen=True)
class Page:
    """One page of a listing, with how to ask for the next and how many rows come after it."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    more: int

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor, "more": self.more}


def parse_cursor(cursor: str | None) -> int | None:
    """A cursor is the id of the last row of the page before (what ``next_cursor`` said)."""
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise Refusal(f"--cursor {cursor!r} is not a cursor this listing gave (use its next_cursor)")
    return int(cursor)


def page_of(items: list[dict[str, Any]], more: int) -> Page:
    return Page(items, str(items[-1]["id"]) if items and more else None, more)


def inbox_page(app: App, transfer_id: str | None = None, limit: int = 1000, cursor: str | None = None) -> Page:
    """Inbound messages, oldest first, ``limit`` at a time after ``cursor``."""
    after = parse_cursor(cursor)
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
        roles = _roles(session, rows)
        return page_of([inbound_summary(r, roles) for r in rows], int(more))


def list_inbox(app: App, transfer_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    return inbox_page(app, transfer_id, limit).items
