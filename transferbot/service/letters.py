"""Turning a change into outbox rows: mail for each party it concerns.

No code sends mail directly: these functions only add OutboundMessage rows
inside the caller's transaction, so a mail exists exactly when the state
change that caused it was committed. Each row keeps what it takes to render it
(kind, locale, threading, the facts of the moment); the bytes are rendered in
the same transaction, or, on the daemon's hot paths, just after it commits,
outside the write lock (and, should the daemon stop in between, before the
row is first delivered). Once rendered, a mail's bytes never change: a retry
sends the same message.
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from transferbot import compose
from transferbot.audit import append_event
from transferbot.domain import MailKind, OutboxStatus
from transferbot.models import Entitlement, OutboundMessage, OutboundRaw, Party, Transfer
from transferbot.rules import Notice
from transferbot.service.app import App
from transferbot.service.facts import account_names, addresses_of, parties_of
from transferbot.tokens import new_token

log = logging.getLogger(__name__)


def channel(reseller_id: str | None, names: dict[str, str], isv_name: str) -> dict[str, Any]:
    if reseller_id is None:
        return {"direct": True, "name": "", "isv": isv_name}
    return {"direct": False, "name": names.get(reseller_id, reseller_id), "isv": isv_name}


def transfer_view(session: Session, t: Transfer, parties: list[Party]) -> tuple[dict[str, Any], dict[str, str]]:
    """The transfer as every template sees it (plain data, names resolved)."""
    ent = session.get(Entitlement, t.entitlement_id)
    assert ent is not None
    names = account_names(session, [ent.customer_id, ent.isv_id, t.from_reseller_id, t.to_reseller_id,
                                     *(p.account_id for p in parties)])
    isv = names.get(ent.isv_id, ent.isv_id)
    view = {
        "id": t.id, "kind": t.kind, "product": t.product, "entitlement": t.entitlement_id,
        "customer": names.get(ent.customer_id, ent.customer_id), "isv": isv,
        "from_channel": channel(t.from_reseller_id, names, isv),
        "to_channel": channel(t.to_reseller_id, names, isv),
        "created_at": t.created_at, "expires_at": t.expires_at, "note": t.note,
        "fingerprint": t.fingerprint, "status": t.status,
    }
    return view, names


def parties_view(parties: list[Party], names: dict[str, str], me: Party | None) -> list[dict[str, Any]]:
    return [
        {"role": p.role, "name": names.get(p.account_id, p.account_id), "decision": p.decision,
         "is_me": me is not None and p.id == me.id}
        for p in parties
    ]


# -- queueing: a row per mail, with what it takes to render it -------------------------------------

DEFER = "transferbot.defer_rendering"


def defer_rendering(session: Session) -> None:
    """Mail queued in this transaction is rendered after it commits, outside the write lock
    (the daemon's hot paths); elsewhere it is rendered at once, inside the transaction."""
    session.info[DEFER] = True


def _outbound(
    app: App, session: Session, *, kind: MailKind, locale: str, to: list[str], now: datetime,
    transfer_id: str | None, party_id: int | None, reply_to: str | None, in_reply_to: str | None,
    extra: dict[str, Any], certificate: bool = False, cache: dict[str, Any] | None = None,
) -> OutboundMessage:
    key = new_token(app.secret)
    row = OutboundMessage(
        created_at=now, kind=kind.value, transfer_id=transfer_id, party_id=party_id, key=key,
        message_id=f"<{key}.{(transfer_id or 'tb').lower()}@{app.domain}>", envelope_from=app.book.bounce(key),
        recipients=list(to), subject="", status=OutboxStatus.QUEUED.value, next_attempt_at=now,
        render={"locale": locale, "reply_to": reply_to, "in_reply_to": in_reply_to, "extra": extra,
                "certificate": certificate},
    )
    session.add(row)
    session.flush()
    if not session.info.get(DEFER):
        subject, raw = render_row(app, session, row, cache)
        row.subject, row.rendered = subject, True
        session.add(OutboundRaw(id=row.id or 0, raw=raw))
    return row


def queue_party_mail(
    app: App, session: Session, t: Transfer, party: Party, kind: MailKind, now: datetime,
    extra: dict[str, Any] | None = None, parties: list[Party] | None = None, certificate: bool = False,
    cache: dict[str, Any] | None = None,
) -> OutboundMessage | None:
    """Queue one mail to every deliverable address of a party, in its locale, threaded."""
    to = [a.address for a in addresses_of(session, party.id or 0) if a.undeliverable_at is None]
    if not to:
        append_event(session, t.id, "not-mailed", {"role": party.role, "mail": kind.value,
                                                   "why": "no deliverable address"}, now)
        log.warning("%s: no deliverable address for %s; %s not sent", t.id, party.role, kind.value)
        return None
    threaded = None if kind is MailKind.CONFIRMATION and not party.confirmation_message_id else (
        party.confirmation_message_id or None)
    cache = cache if cache is not None else {}
    if parties is not None:
        cache.setdefault("parties", parties)
    row = _outbound(app, session, kind=kind, locale=party.locale, to=to, now=now, transfer_id=t.id,
                    party_id=party.id, reply_to=app.book.reply(party.token), in_reply_to=threaded,
                    extra=dict(extra or {}), certificate=certificate, cache=cache)
    if kind is MailKind.CONFIRMATION and not party.confirmation_message_id:
        party.confirmation_message_id = row.message_id
        session.add(party)
    append_event(session, t.id, "mail-queued", {"mail": kind.value, "role": party.role, "to": to,
                                                "message_id": row.message_id}, now)
    return row


def queue_operator_alert(
    app: App, session: Session, t: Transfer | None, alert: str, facts: list[tuple[str, str]], now: datetime,
) -> OutboundMessage | None:
    operator = app.config.workflow.operator_address
    if not operator:
        log.warning("%s: operator alert %r not mailed: [workflow] operator_address is not set",
                    t.id if t else "-", alert)
        return None
    row = _outbound(app, session, kind=MailKind.OPERATOR_ALERT, locale=app.config.workflow.default_locale,
                    to=[operator], now=now, transfer_id=t.id if t else None, party_id=None, reply_to=None,
                    in_reply_to=None, extra={"alert": alert, "alert_facts": [list(f) for f in facts]})
    if t is not None:
        append_event(session, t.id, "mail-queued", {"mail": MailKind.OPERATOR_ALERT.value, "role": "operator",
                                                    "to": [operator], "alert": alert,
                                                    "message_id": row.message_id}, now)
    return row


def queue_notices(app: App, session: Session, t: Transfer, notices: tuple[Notice, ...], now: datetime,
                  extra: dict[str, Any] | None = None) -> None:
    """Queue the mails a rules.Change asks for."""
    parties = parties_of(session, t.id)
    cache: dict[str, Any] = {"parties": parties}
    for notice in notices:
        context = {**(extra or {}), **notice.extra}
        for party in parties:
            if party.role in notice.roles:
                queue_party_mail(app, session, t, party, notice.kind, now, context, parties,
                                 certificate=notice.kind is MailKind.COMPLETED, cache=cache)
        if notice.operator:
            queue_operator_alert(app, session, t, notice.kind.value,
                                 [("reason", str(context.get("reason", "")))], now)


# -- rendering: from a row and the database to the bytes sent ----------------------------------------

def render_row(app: App, session: Session, row: OutboundMessage,
               cache: dict[str, Any] | None = None) -> tuple[str, bytes]:
    """The subject and bytes of a queued mail, rendered from the database as it stands.

    ``cache`` carries what several mails of one transaction share (view, parties, certificate)."""
    cache = cache if cache is not None else {}
    spec: dict[str, Any] = row.render or {}
    kind = MailKind(row.kind)
    extra = dict(spec.get("extra") or {})
    now = row.created_at
    t = session.get(Transfer, row.transfer_id) if row.transfer_id else None
    context: dict[str, Any] = {"t": None, "parties": [], "me": None, "now": now, "reply_marker": False,
                               "tz": app.config.workflow.default_timezone, **extra}
    if kind is MailKind.OPERATOR_ALERT:
        context["alert_facts"] = [tuple(f) for f in extra.get("alert_facts", [])]
    if t is not None:
        parties = cache.get("parties") or parties_of(session, t.id)
        cache["parties"] = parties
        if "shared" not in cache:
            cache["shared"] = transfer_view(session, t, parties)
        view, names = cache["shared"]
        me = next((p for p in parties if p.id == row.party_id), None)
        context.update(t=view, parties=parties_view(parties, names, me))
        if "by_role" in extra:
            by = next((p for p in parties if p.role == extra["by_role"]), None)
            context["by_name"] = names.get(by.account_id, by.account_id) if by else extra["by_role"]
        if me is not None:
            context.update(tz=me.timezone, reply_marker=True, me={
                "role": me.role, "name": names.get(me.account_id, me.account_id), "token": me.token,
                "decision": me.decision})
    rendered = compose.render(kind, spec.get("locale") or app.config.workflow.default_locale, context)
    msg: EmailMessage = compose.build_message(rendered, compose.Envelope(
        from_name=app.config.outbound.from_name, from_address=app.config.from_address, to=tuple(row.recipients),
        message_id=row.message_id, date=now, reply_to=spec.get("reply_to"), in_reply_to=spec.get("in_reply_to"),
        transfer_id=row.transfer_id, locale=spec.get("locale") or "en", kind=kind.value,
    ))
    if spec.get("certificate") and t is not None:
        if "certificate" not in cache:
            from transferbot.service import certificate  # the certificate reads letters' neighbours

            cache["certificate"] = [compose.attachment(name, mime, data)
                                    for name, mime, data in certificate.attachments(app, session, t)]
        msg.make_mixed()
        for part in cache["certificate"]:
            msg.attach(part)
    return rendered.subject, msg.as_bytes(policy=SMTP)


def render_pending(app: App, limit: int = 100) -> list[tuple[int, str, bytes]]:
    """Render queued mail that has no bytes yet (queued by a deferred transaction); reads only."""
    om = OutboundMessage.__table__  # type: ignore[attr-defined]
    out: list[tuple[int, str, bytes]] = []
    with app.store.read() as session:
        ids = [r[0] for r in session.connection().execute(
            sa.select(om.c.id).where(om.c.rendered == sa.false()).order_by(om.c.id).limit(limit))]
        caches: dict[str | None, dict[str, Any]] = {}
        for outbound_id in ids:
            row = session.get(OutboundMessage, outbound_id)
            if row is None:
                continue
            try:
                subject, data = render_row(app, session, row, caches.setdefault(row.transfer_id, {}))
            except Exception:  # noqa: BLE001 - one template failure never holds the others up
                log.exception("outbox #%s %s: rendering failed; tried again later", row.id, row.message_id)
                continue
            out.append((outbound_id, subject, data))
    return out


def store_rendered(app: App, rendered: list[tuple[int, str, bytes]]) -> None:
    """Keep rendered bytes (a short write; a row rendered twice keeps its first bytes)."""
    if not rendered:
        return
    om = OutboundMessage.__table__  # type: ignore[attr-defined]
    with app.store.write() as session:
        conn = session.connection()
        conn.execute(sa.insert(OutboundRaw.__table__).prefix_with("OR IGNORE"),  # type: ignore[attr-defined]
                     [{"id": i, "raw": data} for i, _subject, data in rendered])
        conn.execute(sa.update(om).where(om.c.id == sa.bindparam("b_id"), om.c.rendered == sa.false())
                     .values(subject=sa.bindparam("b_subject"), rendered=True),
                     [{"b_id": i, "b_subject": subject} for i, subject, _data in rendered])
