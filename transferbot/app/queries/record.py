"""A transfer's record as `show --json` prints it, and the two views of it the API and webhooks carry, built
inside the caller's transaction: the operator's (the record without reply tokens: an admin key, an endpoint
the operator added for every ISV) and the ISV's (an ISV's key, an endpoint scoped to one ISV), which shows
what that ISV's copy of the certificate shows, by the same rule (``party_public``, ``event_public``), and its
own addresses. Webhook payloads are built from them at queue time, so they name nothing that depends on
webhooks."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from transferbot.app.effects.audit import ChainLink, events_of
from transferbot.app.effects.facts import account_names, addresses_of, parties_of
from transferbot.core.domain import Role
from transferbot.store.models import (
    Account,
    Entitlement,
    InboundMessage,
    OutboundMessage,
    Party,
    RevokedToken,
    Transfer,
)

OPERATOR, ISV = "operator", "isv"  # the audiences of a transfer's record


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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
    from transferbot.inbound.senderauth import AuthOutcome

    return AuthOutcome.from_dict(auth).summary()


def roles_of(session: Session, rows: list[InboundMessage]) -> dict[int, str]:
    ids = {r.party_id for r in rows if r.party_id}
    if not ids:
        return {}
    return {p.id or 0: p.role for p in session.exec(select(Party).where(col(Party.id).in_(ids)))}


def party_public(p: Party, name: str) -> dict[str, Any]:
    """What every party may know of each party: its role and account name, its decision, when, and a
    decline's reason (which every party is mailed). Nothing that reaches or identifies its mail."""
    return {"role": p.role, "name": name, "decision": p.decision, "decided_at": iso(p.decided_at),
            "reason": p.reason or None}


def event_public(e: ChainLink) -> dict[str, Any]:
    """What every party may know of an event: its kind and time, and its hash (the trail can be checked
    against the operator's); not its data, which names addresses, senders and Message-IDs."""
    return {"seq": e.seq, "at": iso(e.at), "kind": e.kind, "hash": e.hash}


def _transfer_fields(session: Session, t: Transfer) -> dict[str, Any]:
    """The transfer itself and its entitlement as it stands: what every view shows."""
    ent = session.get(Entitlement, t.entitlement_id)
    assert ent is not None
    return {
        "id": t.id, "kind": t.kind, "status": t.status, "note": t.note, "fingerprint": t.fingerprint,
        "created_at": iso(t.created_at), "expires_at": iso(t.expires_at), "closed_at": iso(t.closed_at),
        "from_reseller": t.from_reseller_id, "to_reseller": t.to_reseller_id,
        "entitlement": {"id": ent.id, "product": ent.product, "customer": ent.customer_id, "isv": ent.isv_id,
                        "reseller": ent.reseller_id, "state": ent.state},
    }


def _own_addresses(session: Session, p: Party) -> dict[str, Any]:
    addresses = addresses_of(session, p.id or 0)
    return {"email": addresses[0].address if addresses else None, "emails": [a.address for a in addresses],
            "undeliverable": [{"address": a.address, "since": iso(a.undeliverable_at),
                               "reason": a.undeliverable_reason} for a in addresses if a.undeliverable_at]}


def detail_of(session: Session, t: Transfer) -> dict[str, Any]:
    """A transfer's whole record as it stands in this transaction (what `show --json` prints)."""
    parties = []
    for p in parties_of(session, t.id):
        account = session.get(Account, p.account_id)
        decided_by = session.get(InboundMessage, p.decided_by) if p.decided_by else None
        parties.append({
            "role": p.role, "account": p.account_id, "name": account.name if account else p.account_id,
            **_own_addresses(session, p),
            "decision": p.decision, "decided_at": iso(p.decided_at), "reason": p.reason or None,
            "reply": ({"inbound": decided_by.id, "message_id": decided_by.message_id,
                       "from": decided_by.from_address} if decided_by else None),
            "locale": p.locale, "timezone": p.timezone,
        })
    events = [{**e.data, "seq": e.seq, "at": iso(e.at), "kind": e.kind} for e in events_of(session, t.id)]
    received = list(session.exec(
        select(InboundMessage).where(InboundMessage.transfer_id == t.id).order_by(col(InboundMessage.id))))
    roles = roles_of(session, received)
    inbound = [inbound_summary(r, roles) for r in received]
    outbound = [{"id": o.id, "kind": o.kind, "to": o.recipients, "status": o.status, "attempts": o.attempts,
                 "message_id": o.message_id, "last_error": o.last_error or None}
                for o in session.exec(select(OutboundMessage).where(OutboundMessage.transfer_id == t.id)
                                      .order_by(col(OutboundMessage.id)))]
    return {**_transfer_fields(session, t), "parties": parties, "events": events, "inbound": inbound,
            "outbound": outbound}


REDACTED = "…"


def public_detail(session: Session, t: Transfer) -> dict[str, Any]:
    """The operator's view, as an admin key and the operator's webhook endpoints get it: `show --json`
    without any reply token.

    A token (live, or revoked when a contact was replaced) is what a reply must carry to count, so it
    never leaves transferbot but in the mail to its own party: the envelope recipients of inbound mail
    (``transfer+TOKEN@domain``) and any text quoting one show ``transfer+…@domain`` instead."""
    return _scrub({"audience": OPERATOR, **detail_of(session, t)}, _tokens(session, parties_of(session, t.id)))


def isv_detail(session: Session, t: Transfer, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The ISV's view, as its key and an endpoint scoped to it get it: what the ISV party's copy of the
    certificate shows (each party by account, role and name with its decision, when and why; the trail by
    kind, time and hash), and the ISV party's own addresses. No other party's address, no sender, IP,
    HELO name, authentication result, Message-ID, token or bounce key: the mail received and sent for the
    transfer is the operator's to see. ``names``: a unit of work's cache of accounts' names (Work.names)."""
    parties = parties_of(session, t.id)
    names = account_names(session, [p.account_id for p in parties], names)
    seen = []
    for p in parties:
        entry = {"account": p.account_id, **party_public(p, names.get(p.account_id, p.account_id))}
        if p.role == Role.ISV.value:
            entry.update(_own_addresses(session, p))
        seen.append(entry)
    events = [event_public(e) for e in events_of(session, t.id)]
    view = {"audience": ISV, **_transfer_fields(session, t), "parties": seen, "events": events}
    return _scrub(view, _tokens(session, parties))


def view_for(session: Session, t: Transfer, audience: str, names: dict[str, str] | None = None) -> dict[str, Any]:
    """The record as ``audience`` (OPERATOR or ISV) sees it (``names``: as for isv_detail)."""
    return public_detail(session, t) if audience == OPERATOR else isv_detail(session, t, names)


def _tokens(session: Session, parties: list[Party]) -> re.Pattern[str] | None:
    """A pattern matching every reply token of the parties, live or revoked (None: there are none)."""
    tokens = [p.token for p in parties]
    party_ids = [p.id for p in parties]
    tokens += list(session.exec(select(RevokedToken.token).where(col(RevokedToken.party_id).in_(party_ids))))
    wanted = sorted({tok for tok in tokens if tok}, key=len, reverse=True)
    return re.compile("|".join(re.escape(tok) for tok in wanted), re.IGNORECASE) if wanted else None


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
