"""The certificate of completion, and the verification of a transfer's audit chain.

Like the certificate an e-signature service issues: the details every party
was shown and their fingerprint (recomputed here from the recorded details),
each party's decision with the reply that carried it (time, sender,
Message-ID, authentication results), and the whole hash-chained event trail
with the result of checking it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlmodel import Session, col, select

from transferbot.audit import events_of, first_broken
from transferbot.clock import now as clock_now
from transferbot.compose import templates_dir
from transferbot.models import Account, Entitlement, InboundMessage, InboundRaw, OutboundMessage, Transfer
from transferbot.reader.message import headers, parse
from transferbot.rules import Refusal
from transferbot.service.app import App
from transferbot.service.facts import addresses_of, find_transfer, parties_of
from transferbot.service.transfers import fingerprint


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _reply(app: App, session: Session, row: InboundMessage | None) -> dict[str, Any] | None:
    if row is None:
        return None
    trusted = app.config.inbound.trusted_authserv_id.lower()
    results = []
    raw = session.get(InboundRaw, row.id)
    for value in headers(parse(bytes(raw.raw) if raw else b""), "Authentication-Results"):
        authserv = value.split(";", 1)[0].strip().split()[0].lower() if value.strip() else ""
        results.append({"header": " ".join(value.split()), "authserv_id": authserv,
                        "trusted": bool(trusted) and authserv == trusted})
    return {"inbound": row.id, "received_at": _iso(row.received_at), "from": row.from_address,
            "envelope_from": row.mail_from, "message_id": row.message_id, "subject": row.subject,
            "checks": list(row.checks), "authentication_results": results}


def build(app: App, session: Session, t: Transfer) -> dict[str, Any]:
    """The certificate's content, from the database as it stands in this transaction."""
    ent = session.get(Entitlement, t.entitlement_id)
    assert ent is not None
    events = events_of(session, t.id)
    requested = next((e for e in events if e.kind == "requested"), None)
    details = {k: v for k, v in (requested.data if requested else {}).items() if k != "fingerprint"}
    recomputed = fingerprint(details) if details else ""
    broken = first_broken(events)
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
            "reply": _reply(app, session, reply),
            "mails": [{"kind": m.kind, "message_id": m.message_id, "to": list(m.recipients), "queued_at":
                       _iso(m.created_at), "status": m.status, "sent_at": _iso(m.sent_at)} for m in mails],
        })
    return {
        "title": "Certificate of completion",
        "issuer": f"transferbot at {app.domain}",
        "generated_at": _iso(clock_now()),
        "transfer": {"id": t.id, "kind": t.kind, "status": t.status, "entitlement": ent.id, "product": t.product,
                     "from_reseller": t.from_reseller_id, "to_reseller": t.to_reseller_id, "note": t.note,
                     "requested_at": _iso(t.created_at), "expires_at": _iso(t.expires_at),
                     "closed_at": _iso(t.closed_at), "entitlement_now": {"reseller": ent.reseller_id,
                                                                         "state": ent.state}},
        "fingerprint": {"stored": t.fingerprint, "recomputed": recomputed,
                        "matches": bool(recomputed) and recomputed == t.fingerprint},
        "details_shown": details,
        "parties": parties,
        "events": [{"seq": e.seq, "at": _iso(e.at), "kind": e.kind, "data": e.data, "prev_hash": e.prev_hash,
                    "hash": e.hash} for e in events],
        "chain": {"intact": broken is None, "events": len(events), "head": events[-1].hash if events else None,
                  "first_broken": ({"seq": broken[0], "why": broken[1]} if broken else None)},
    }


@lru_cache(maxsize=2)
def _env(autoescape: bool) -> Environment:
    return Environment(loader=FileSystemLoader(str(templates_dir())), autoescape=autoescape,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(cert: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(cert, indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "html":
        return _env(True).get_template("certificate/certificate.html.j2").render(c=cert)
    if fmt == "text":
        return _env(False).get_template("certificate/certificate.txt.j2").render(c=cert)
    raise Refusal(f"format {fmt!r} is not one of text, json, html")


def attachments(app: App, session: Session, t: Transfer) -> list[tuple[str, str, bytes]]:
    """What the completion notice carries: the certificate as HTML (to read) and JSON (to verify)."""
    cert = build(app, session, t)
    return [(f"certificate-{t.id}.html", "text/html", render(cert, "html").encode("utf-8")),
            (f"certificate-{t.id}.json", "application/json", render(cert, "json").encode("utf-8"))]


def certificate(app: App, transfer_id: str, fmt: str = "text") -> str:
    with app.store.read() as session:
        t = find_transfer(session, transfer_id)
        if t is None:
            raise Refusal(f"unknown transfer {transfer_id!r}")
        return render(build(app, session, t), fmt)


def verify(app: App, transfer_id: str) -> tuple[bool, str]:
    """Recompute the chain; say where it breaks, naming the first event that does not match."""
    with app.store.read() as session:
        t = find_transfer(session, transfer_id)
        if t is None:
            raise Refusal(f"unknown transfer {transfer_id!r}")
        events = events_of(session, t.id)
        broken = first_broken(events)
        if broken is None:
            head = events[-1].hash if events else "-"
            return True, f"{t.id}: audit chain intact: {len(events)} events, head {head}"
        seq, why = broken
        event = next((e for e in events if e.seq == seq), None)
        what = f"event #{seq} ({event.kind} at {event.at.isoformat()})" if event else f"event #{seq}"
        return False, f"{t.id}: audit chain broken at {what}: {why}"
