"""Read models for the operators' dashboard: the board, one transfer's whole story, the inbox and outbox pages.

Each function is one read transaction, run off the event loop by the HTTP side. The board asks the database
for a few rows per status (not every transfer), with their parties and account names in two more queries,
so it stays cheap with 100,000 transfers; the inbox and outbox pages are newest first, a page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app.arrivals import load_raw
from transferbot.app.context import App
from transferbot.app.effects.audit import events_of, fingerprint, first_broken
from transferbot.app.effects.facts import find_transfer
from transferbot.app.outbox import outbox_summary
from transferbot.app.queries.record import inbound_summary
from transferbot.app.queries.views import transfer_detail
from transferbot.core.domain import ROLE_ORDER, InboxState, Outcome, Role, TransferStatus
from transferbot.core.errors import Refusal, Unknown
from transferbot.inbound.explain import explain_inbound
from transferbot.store.models import Account, InboundMessage, OutboundMessage, Party, PartyAddress, Transfer

BOARD_LIMIT = 50  # rows shown per status; the rest are counted and found by searching
PAGE = 50
RAW_LIMIT = 1024 * 1024  # bytes of a raw message shown on a page; the plain-text view has all of it
STATUS_ORDER = tuple(s.value for s in TransferStatus)


# -- the board -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoardRow:
    id: str
    kind: str
    status: str
    entitlement: str
    product: str
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    parties: list[dict[str, str]]  # role, account, name, decision

    @property
    def answered(self) -> list[dict[str, str]]:
        return [p for p in self.parties if p["decision"] != "pending"]

    @property
    def waiting(self) -> list[dict[str, str]]:
        return [p for p in self.parties if p["decision"] == "pending"]


@dataclass(frozen=True)
class BoardSection:
    status: str
    total: int
    rows: list[BoardRow] = field(default_factory=list)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search(query: Any, q: str) -> Any:
    """Transfers whose id or entitlement, or one of whose parties' account (id, name or address), holds ``q``."""
    pattern = _like(q)
    addresses = select(PartyAddress.party_id).where(sa.func.lower(PartyAddress.address).like(pattern, escape="\\"))
    accounts = (select(Party.transfer_id).join(Account, col(Account.id) == col(Party.account_id))
                .where(sa.or_(sa.func.lower(Account.id).like(pattern, escape="\\"),
                              sa.func.lower(Account.name).like(pattern, escape="\\"),
                              col(Party.id).in_(addresses))))
    return query.where(sa.or_(sa.func.lower(Transfer.id).like(pattern, escape="\\"),
                              sa.func.lower(Transfer.entitlement_id).like(pattern, escape="\\"),
                              col(Transfer.id).in_(accounts)))


def board(session: Session, status: str | None = None, q: str = "", limit: int = BOARD_LIMIT) -> list[BoardSection]:
    """Transfers by status (pending first, soonest deadline first; closed ones latest first)."""
    if status and status not in STATUS_ORDER:
        raise Refusal(f"status {status!r} is not one of {', '.join(STATUS_ORDER)}")
    q = q.strip()[:200]
    sections: list[BoardSection] = []
    for wanted in [status] if status else STATUS_ORDER:
        base = select(Transfer).where(Transfer.status == wanted)
        counted = select(sa.func.count()).select_from(Transfer).where(Transfer.status == wanted)
        if q:
            base, counted = _search(base, q), _search(counted, q)
        order = ((col(Transfer.expires_at), col(Transfer.id)) if wanted == TransferStatus.PENDING.value
                 else (col(Transfer.closed_at).desc(), col(Transfer.id).desc()))
        rows = list(session.exec(base.order_by(*order).limit(limit)))
        total = int(session.exec(counted).one()) if len(rows) == limit else len(rows)
        sections.append(BoardSection(wanted, total, _rows(session, rows)))
    return sections


def _rows(session: Session, transfers: list[Transfer]) -> list[BoardRow]:
    if not transfers:
        return []
    parties = list(session.exec(select(Party).where(col(Party.transfer_id).in_([t.id for t in transfers]))))
    names = {a.id: a.name for a in session.exec(
        select(Account).where(col(Account.id).in_({p.account_id for p in parties})))}
    by_transfer: dict[str, list[Party]] = {}
    for p in parties:
        by_transfer.setdefault(p.transfer_id, []).append(p)
    out = []
    for t in transfers:
        mine = sorted(by_transfer.get(t.id, []), key=lambda p: ROLE_ORDER.index(Role(p.role)))
        out.append(BoardRow(t.id, t.kind, t.status, t.entitlement_id, t.product, t.created_at, t.expires_at,
                            t.closed_at, [{"role": p.role, "account": p.account_id,
                                           "name": names.get(p.account_id, p.account_id), "decision": p.decision}
                                          for p in mine]))
    return out


# -- one transfer -------------------------------------------------------------------------------------------------

def transfer_page(app: App, transfer_id: str) -> dict[str, Any]:
    """The whole record (views.transfer_detail), with what the dashboard adds: each inbound message
    explained, mail in and out merged in time order, the audit chain checked and the fingerprint recomputed."""
    detail = transfer_detail(app, transfer_id)
    with app.store.read() as session:
        tid = detail["id"]
        out_rows = {o.id: o for o in session.exec(select(OutboundMessage).where(OutboundMessage.transfer_id == tid))}
        events = events_of(session, tid)
    names = {p["role"]: p["name"] for p in detail["parties"]}
    messages: list[dict[str, Any]] = []
    for m in detail["inbound"]:
        messages.append({"direction": "in", "at": m["received_at"], "id": m["id"], "row": m,
                         "why": explain_inbound(m, names.get(m["party"] or ""), detail["status"])})
    for o in detail["outbound"]:
        row = out_rows.get(o["id"])
        full = outbox_summary(row) if row is not None else o
        messages.append({"direction": "out", "at": full.get("created_at"), "id": o["id"], "row": {**o, **full}})
    messages.sort(key=lambda m: (m["at"] or "", 0 if m["direction"] == "in" else 1, m["id"] or 0))
    broken = first_broken(events)
    if broken is None:
        chain = {"ok": True, "text": f"audit chain intact: {len(events)} events, head "
                                     f"{events[-1].hash if events else '-'}"}
    else:
        seq, why = broken
        chain = {"ok": False, "text": f"audit chain broken at event #{seq}: {why}"}
    requested = next((e for e in events if e.kind == "requested"), None)
    details = {k: v for k, v in (requested.data if requested else {}).items() if k != "fingerprint"}
    recomputed = fingerprint(details) if details else ""
    hashes = {e.seq: e.hash for e in events}
    return {**detail, "messages": messages, "chain": chain, "hashes": hashes,
            "fingerprint_ok": bool(recomputed) and recomputed == detail["fingerprint"]}


# -- inbox and outbox -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Listing:
    items: list[dict[str, Any]]
    next_before: int | None  # the id to pass as ``before`` for the next (older) page
    total: int


def inbox(session: Session, outcome: str | None = None, before: int | None = None, limit: int = PAGE) -> Listing:
    """Inbound messages, newest first, each with its explanation."""
    if outcome and outcome not in {o.value for o in Outcome}:
        raise Refusal(f"outcome {outcome!r} is not one of {', '.join(o.value for o in Outcome)}")
    rows, more, total = _newest_first(session, InboundMessage, select(InboundMessage),
                                      InboundMessage.outcome == outcome if outcome else None, before, limit)
    return Listing(_explained(session, rows), rows[-1].id if more and rows else None, total)


def _newest_first(session: Session, model: Any, query: Any, where: Any, before: int | None,
                  limit: int) -> tuple[list[Any], bool, int]:
    """One page of ``model``'s rows, newest first, older than ``before``: the rows, whether there are older
    ones, and how many match ``where`` in all."""
    count = select(sa.func.count()).select_from(model)
    if where is not None:
        query, count = query.where(where), count.where(where)
    if before is not None:
        query = query.where(col(model.id) < before)
    rows = list(session.exec(query.order_by(col(model.id).desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit, int(session.exec(count).one())


def _explained(session: Session, rows: list[InboundMessage]) -> list[dict[str, Any]]:
    party_ids = {r.party_id for r in rows if r.party_id}
    roles: dict[int, str] = {}
    accounts: dict[int, str] = {}
    if party_ids:
        found = session.exec(select(Party.id, Party.role, Account.name)
                             .join(Account, col(Account.id) == col(Party.account_id))
                             .where(col(Party.id).in_(party_ids)))
        for pid, role, name in found:
            roles[pid or 0], accounts[pid or 0] = role, name
    items = []
    for r in rows:
        summary = inbound_summary(r, roles)
        summary["why"] = explain_inbound(summary, accounts.get(r.party_id or 0))
        items.append(summary)
    return items


def inbound_one(session: Session, inbound_id: int) -> dict[str, Any]:
    """One inbound message with its explanation and the start of its raw bytes (as text, never as HTML)."""
    row = session.get(InboundMessage, inbound_id)
    if row is None:
        raise Unknown(f"unknown inbound message #{inbound_id}")
    [item] = _explained(session, [row])
    raw = load_raw(session, inbound_id)
    item["raw_size"] = len(raw)
    item["raw_text"] = raw_text(raw[:RAW_LIMIT])
    item["raw_truncated"] = len(raw) > RAW_LIMIT
    item["retryable"] = row.state != InboxState.DONE
    return item


def inbound_raw(session: Session, inbound_id: int) -> bytes | None:
    if session.get(InboundMessage, inbound_id) is None:
        return None
    return load_raw(session, inbound_id)


def raw_text(raw: bytes) -> str:
    """Bytes as text an operator can read: UTF-8 where it is, the other bytes as \\xNN."""
    return raw.decode("utf-8", errors="backslashreplace")


def outbox(session: Session, status: str | None = None, before: int | None = None, limit: int = PAGE) -> Listing:
    """Outgoing mail, newest first."""
    rows, more, total = _newest_first(session, OutboundMessage, select(OutboundMessage),
                                      OutboundMessage.status == status if status else None, before, limit)
    return Listing([outbox_summary(r) for r in rows], rows[-1].id if more and rows else None, total)


def transfer_exists(session: Session, transfer_id: str) -> str | None:
    t = find_transfer(session, transfer_id)
    return t.id if t is not None else None



def webhooks(session: Session, status: str | None = None, before: int | None = None,
             limit: int = PAGE) -> tuple[list[dict[str, Any]], Listing]:
    """The webhook endpoints (never their secrets) and their deliveries, newest first."""
    from transferbot.app import webhooks as hooks
    from transferbot.store.models import WebhookDelivery, WebhookEndpoint

    endpoints = [hooks.endpoint_summary(e) for e in session.exec(
        select(WebhookEndpoint).order_by(col(WebhookEndpoint.id)))]
    rows, more, total = _newest_first(session, WebhookDelivery, hooks.joined_deliveries(),
                                      WebhookDelivery.status == status if status else None, before, limit)
    items = [hooks.delivery_summary(row, event_id, url) for row, event_id, url in rows]
    return endpoints, Listing(items, items[-1]["id"] if more and items else None, total)
