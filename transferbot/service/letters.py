"""Turning a change into outbox rows: rendered mail for each party it concerns.

No code sends mail directly: these functions only add OutboundMessage rows
inside the caller's transaction, so a mail exists exactly when the state
change that caused it was committed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from sqlmodel import Session

from transferbot import compose
from transferbot.audit import append_event
from transferbot.domain import MailKind, OutboxStatus
from transferbot.models import Account, Entitlement, OutboundMessage, OutboundRaw, Party, Transfer
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


Attachment = EmailMessage  # a MIME part built once (compose.attachment) and attached to several mails


def _outbound(
    app: App, session: Session, *, kind: MailKind, locale: str, context: dict[str, Any], to: list[str],
    now: datetime, transfer_id: str | None, party_id: int | None, reply_to: str | None, in_reply_to: str | None,
    attachments: list[Attachment] | None = None,
) -> OutboundMessage:
    key = new_token(app.secret)
    message_id = f"<{key}.{(transfer_id or 'tb').lower()}@{app.domain}>"
    rendered = compose.render(kind, locale, context)
    msg: EmailMessage = compose.build_message(rendered, compose.Envelope(
        from_name=app.config.outbound.from_name, from_address=app.config.from_address, to=tuple(to),
        message_id=message_id, date=now, reply_to=reply_to, in_reply_to=in_reply_to,
        transfer_id=transfer_id, locale=locale, kind=kind.value,
    ))
    if attachments:
        msg.make_mixed()
        for part in attachments:
            msg.attach(part)
    row = OutboundMessage(
        created_at=now, kind=kind.value, transfer_id=transfer_id, party_id=party_id, key=key,
        message_id=message_id, envelope_from=app.book.bounce(key), recipients=list(to),
        subject=rendered.subject, status=OutboxStatus.QUEUED.value, next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    session.add(OutboundRaw(id=row.id or 0, raw=msg.as_bytes(policy=SMTP)))
    return row


def queue_party_mail(
    app: App, session: Session, t: Transfer, party: Party, kind: MailKind, now: datetime,
    extra: dict[str, Any] | None = None, parties: list[Party] | None = None,
    attachments: list[Attachment] | None = None, shared: tuple[dict[str, Any], dict[str, str]] | None = None,
) -> OutboundMessage | None:
    """Queue one mail to every deliverable address of a party, in its locale, threaded.

    ``shared`` is the transfer's view and names when the caller mails several parties."""
    parties = parties if parties is not None else parties_of(session, t.id)
    to = [a.address for a in addresses_of(session, party.id or 0) if a.undeliverable_at is None]
    if not to:
        append_event(session, t.id, "not-mailed", {"role": party.role, "mail": kind.value,
                                                   "why": "no deliverable address"}, now)
        log.warning("%s: no deliverable address for %s; %s not sent", t.id, party.role, kind.value)
        return None
    view, names = shared or transfer_view(session, t, parties)
    context: dict[str, Any] = {
        "t": view, "parties": parties_view(parties, names, party), "tz": party.timezone, "now": now,
        "me": {"role": party.role, "name": names.get(party.account_id, party.account_id),
               "token": party.token, "decision": party.decision},
        "reply_marker": True, **(extra or {}),
    }
    threaded = None if kind is MailKind.CONFIRMATION and not party.confirmation_message_id else (
        party.confirmation_message_id or None)
    row = _outbound(app, session, kind=kind, locale=party.locale, context=context, to=to, now=now,
                    transfer_id=t.id, party_id=party.id, reply_to=app.book.reply(party.token),
                    in_reply_to=threaded, attachments=attachments)
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
    context: dict[str, Any] = {"t": None, "parties": [], "me": None, "tz": app.config.workflow.default_timezone,
                               "now": now, "reply_marker": False, "alert": alert, "alert_facts": facts}
    if t is not None:
        parties = parties_of(session, t.id)
        view, names = transfer_view(session, t, parties)
        context.update(t=view, parties=parties_view(parties, names, None))
    row = _outbound(app, session, kind=MailKind.OPERATOR_ALERT, locale=app.config.workflow.default_locale,
                    context=context, to=[operator], now=now, transfer_id=t.id if t else None, party_id=None,
                    reply_to=None, in_reply_to=None)
    if t is not None:
        append_event(session, t.id, "mail-queued", {"mail": MailKind.OPERATOR_ALERT.value, "role": "operator",
                                                    "to": [operator], "alert": alert,
                                                    "message_id": row.message_id}, now)
    return row


def queue_notices(app: App, session: Session, t: Transfer, notices: tuple[Notice, ...], now: datetime,
                  extra: dict[str, Any] | None = None) -> None:
    """Queue the mails a rules.Change asks for."""
    parties = parties_of(session, t.id)
    shared = transfer_view(session, t, parties)
    for notice in notices:
        attachments = None
        if notice.kind is MailKind.COMPLETED:
            from transferbot.service import certificate  # the certificate reads letters' neighbours

            attachments = [compose.attachment(name, mime, data)
                           for name, mime, data in certificate.attachments(app, session, t)]
        context = {**(extra or {}), **notice.extra}
        if "by_role" in context:
            by = next(p for p in parties if p.role == context["by_role"])
            context["by_name"] = shared[1].get(by.account_id, by.account_id)
        for party in parties:
            if party.role in notice.roles:
                queue_party_mail(app, session, t, party, notice.kind, now, context, parties, attachments, shared)
        if notice.operator:
            queue_operator_alert(app, session, t, notice.kind.value,
                                 [("reason", str(context.get("reason", "")))], now)
