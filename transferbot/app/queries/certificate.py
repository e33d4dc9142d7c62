"""A transfer's certificate: the operator's full record, a party's copy, and the audit chain's check.

Like the certificate an e-signature service issues: the details every party was shown and their
fingerprint (recomputed here from the recorded details), each party's decision, and the
hash-chained event trail with the result of checking it. The operator's copy (``transferbot
certificate``) adds each party's addresses, the reply that carried its decision (sender, envelope,
Message-ID, how it was authenticated), every mail sent to it, and each event's data. A party's
copy, attached to the completion notice, names the other parties by account name and role with
when each decided, and none of their addresses, senders, Message-IDs or tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.effects.audit import ChainLink, events_of, fingerprint, first_broken
from transferbot.app.effects.facts import addresses_of, find_transfer, parties_of
from transferbot.app.queries.record import auth_summary, event_public, party_public
from transferbot.core.domain import TransferStatus
from transferbot.core.errors import Unknown
from transferbot.outbound import certdoc
from transferbot.store.models import Account, Entitlement, InboundMessage, OutboundMessage, Party, Transfer


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _reply(row: InboundMessage | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"inbound": row.id, "received_at": _iso(row.received_at), "from": row.from_address,
            "envelope_from": row.mail_from, "message_id": row.message_id, "subject": row.subject,
            "checks": list(row.checks), "authentication": auth_summary(row.auth),
            "authentication_why": (row.auth or {}).get("why")}


def title_of(status: str) -> str:
    """Only a completed transfer has a certificate of completion; any other has a record."""
    return "Certificate of completion" if status == TransferStatus.COMPLETED.value else "Transfer record"


def _common(app: App, session: Session, t: Transfer, events: list[ChainLink], now: datetime) -> dict[str, Any]:
    ent = session.get(Entitlement, t.entitlement_id)
    assert ent is not None
    requested = next((e for e in events if e.kind == "requested"), None)
    details = {k: v for k, v in (requested.data if requested else {}).items() if k != "fingerprint"}
    recomputed = fingerprint(details) if details else ""
    broken = first_broken(events)
    return {
        "title": title_of(t.status),
        "issuer": f"transferbot at {app.domain}",
        "generated_at": _iso(now),
        "transfer": {"id": t.id, "kind": t.kind, "status": t.status, "entitlement": ent.id, "product": t.product,
                     "from_reseller": t.from_reseller_id, "to_reseller": t.to_reseller_id, "note": t.note,
                     "requested_at": _iso(t.created_at), "expires_at": _iso(t.expires_at),
                     "closed_at": _iso(t.closed_at),
                     "entitlement_now": {"reseller": ent.reseller_id, "state": ent.state}},
        "fingerprint": {"stored": t.fingerprint, "recomputed": recomputed,
                        "matches": bool(recomputed) and recomputed == t.fingerprint},
        "chain": {"intact": broken is None, "events": len(events), "head": events[-1].hash if events else None,
                  "first_broken": ({"seq": broken[0], "why": broken[1]} if broken else None)},
        "_details": details,
    }


def full(app: App, session: Session, t: Transfer, now: datetime) -> dict[str, Any]:
    """The operator's certificate, from the database as it stands in this transaction."""
    events = events_of(session, t.id)
    cert = _common(app, session, t, events, now)
    cert["audience"] = "operator"
    cert["details_shown"] = cert.pop("_details")
    parties = []
    for p in parties_of(session, t.id):
        account = session.get(Account, p.account_id)
        reply = session.get(InboundMessage, p.decided_by) if p.decided_by else None
        mails = session.exec(select(OutboundMessage).where(OutboundMessage.party_id == p.id)
                             .order_by(col(OutboundMessage.id)))
        parties.append({
            "role": p.role, "account": p.account_id, "name": account.name if account else p.account_id,
            "addresses": [a.address for a in addresses_of(session, p.id or 0)],
            "decision": p.decision, "decided_at": _iso(p.decided_at), "reason": p.reason or None,
            "reply": _reply(reply),
            "mails": [{"kind": m.kind, "message_id": m.message_id, "to": list(m.recipients), "queued_at":
                       _iso(m.created_at), "status": m.status, "sent_at": _iso(m.sent_at)} for m in mails],
        })
    cert["parties"] = parties
    cert["events"] = [{"seq": e.seq, "at": _iso(e.at), "kind": e.kind, "data": e.data, "prev_hash": e.prev_hash,
                       "hash": e.hash} for e in events]
    return cert


def party_copy(app: App, session: Session, t: Transfer, parties: list[Party], names: dict[str, str],
               now: datetime) -> dict[str, Any]:
    """What every party may keep: the parties by account name and role with when each decided; the
    trail by kind, time and hash (its head matches the operator's, so the two can be compared). The
    ISV's view of a transfer (record.isv_detail) follows the same rule."""
    events = events_of(session, t.id)
    cert = _common(app, session, t, events, now)
    cert.pop("_details")
    cert["audience"] = "party"
    cert["parties"] = [party_public(p, names.get(p.account_id, p.account_id)) for p in parties]
    cert["events"] = [event_public(e) for e in events]
    return cert


def certificate(app: App, transfer_id: str, fmt: str = "text", now: datetime | None = None) -> str:
    from transferbot.core.clock import now as clock_now

    with app.store.read() as session:
        t = find_transfer(session, transfer_id)
        if t is None:
            raise Unknown(f"unknown transfer {transfer_id!r}")
        return certdoc.render(full(app, session, t, now or clock_now()), fmt)


def verify(app: App, transfer_id: str) -> tuple[bool, str]:
    """Recompute the chain; say where it breaks, naming the first event that does not match."""
    with app.store.read() as session:
        t = find_transfer(session, transfer_id)
        if t is None:
            raise Unknown(f"unknown transfer {transfer_id!r}")
        events = events_of(session, t.id)
        broken = first_broken(events)
        if broken is None:
            head = events[-1].hash if events else "-"
            return True, f"{t.id}: audit chain intact: {len(events)} events, head {head}"
        seq, why = broken
        event = next((e for e in events if e.seq == seq), None)
        what = f"event #{seq} ({event.kind} at {event.at.isoformat()})" if event else f"event #{seq}"
        return False, f"{t.id}: audit chain broken at {what}: {why}"
