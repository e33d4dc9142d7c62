"""The mail a change causes, as outbox rows that carry everything their template reads.

No code sends mail directly: these functions only add rows inside the caller's transaction, so a
mail exists exactly when the change that caused it was committed. The facts of the transfer as the
change left them are written once per change (a MailSnapshot shared by its mails, with a party's
copy of the certificate when the transfer completed); what differs per recipient goes on the row.
Rendering (transferbot.outbound.rendering) reads only those two, so any daemon renders the same bytes at
any time, and a retry sends the same message.

The rows are queued on the change's unit of work (effects.work.Work) and written when the Mailer is
done, or, for a batch of changes (the sweep's, the reader's: a deferred Work), once for all of them
when the Work is flushed at the batch's end: a statement per table, not per change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from transferbot.app.context import App
from transferbot.app.effects.audit import append_event
from transferbot.app.effects.facts import Addresses, account_names, complete_addresses
from transferbot.app.effects.work import PendingSnapshot, Work
from transferbot.app.queries import certificate
from transferbot.core.domain import Decision, MailKind, OutboxStatus
from transferbot.core.tokens import new_token
from transferbot.outbound.rendering import RenderSpec
from transferbot.store.models import Entitlement, Party, Transfer
from transferbot.store.queues import OUTBOX

log = logging.getLogger(__name__)

# Mail that asks its reader for an answer: it carries the reply marker and the deadline.
ASKING = frozenset({MailKind.CONFIRMATION, MailKind.REMINDER, MailKind.LAST_CALL, MailKind.HELP,
                    MailKind.IGNORED_SENDER})
OUTBOX_CHANNEL = OUTBOX.channel


def _channel(reseller_id: str | None, names: dict[str, str], isv_name: str) -> dict[str, Any]:
    if reseller_id is None:
        return {"direct": True, "name": "", "isv": isv_name}
    return {"direct": False, "name": names.get(reseller_id, reseller_id), "isv": isv_name}


@dataclass(frozen=True)
class Queued:
    """A mail queued by a change (its outbox row is written when the Mailer is done)."""

    kind: str
    key: str
    message_id: str
    party_id: int | None
    recipients: tuple[str, ...]


class Mailer:
    """Queues the mails of one change on one transfer, on the change's unit of work (``work``: its rows
    and events go there, and its names cache is used); the shared snapshot is made at the first."""

    def __init__(self, app: App, work: Work, t: Transfer | None, parties: list[Party], now: datetime,
                 with_certificate: bool = False, addresses: Addresses | None = None) -> None:
        self.app, self.work, self.session, self.t, self.parties, self.now = app, work, work.session, t, parties, now
        self.addresses = addresses if addresses is not None else {}
        self.with_certificate = with_certificate
        self._snapshot: PendingSnapshot | None = None
        self.names: dict[str, str] = {}
        self.queued: list[Queued] = []
        self._rows: list[dict[str, Any]] = []
        self._snapshots: list[PendingSnapshot | None] = []  # each row's

    # -- the shared snapshot ------------------------------------------------------------------------
    def _shared(self) -> PendingSnapshot | None:
        if self.t is None:
            return None
        if self._snapshot is None:
            t = self.t
            ent = self.session.get(Entitlement, t.entitlement_id)
            assert ent is not None
            self.names = account_names(self.session, [ent.customer_id, ent.isv_id, t.from_reseller_id,
                                                      t.to_reseller_id, *(p.account_id for p in self.parties)],
                                       self.work.names)
            isv = self.names.get(ent.isv_id, ent.isv_id)
            data: dict[str, Any] = {
                "t": {"id": t.id, "kind": t.kind, "product": t.product, "entitlement": t.entitlement_id,
                      "customer": self.names.get(ent.customer_id, ent.customer_id), "isv": isv,
                      "from_channel": _channel(t.from_reseller_id, self.names, isv),
                      "to_channel": _channel(t.to_reseller_id, self.names, isv),
                      "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat(),
                      "note": t.note, "fingerprint": t.fingerprint, "status": t.status},
                "parties": [{"id": p.id, "role": p.role, "name": self.names.get(p.account_id, p.account_id),
                             "decision": p.decision} for p in self.parties],
            }
            if self.with_certificate:
                # the events of this change are part of the record: written first, for events_of to read
                self.work.write_events()
                data["certificate"] = certificate.party_copy(self.app, self.session, t, self.parties, self.names,
                                                             self.now)
            self._snapshot = PendingSnapshot({"created_at": self.now, "transfer_id": t.id, "data": data})
        return self._snapshot

    def _row(self, kind: MailKind, to: list[str], spec: RenderSpec, party_id: int | None) -> Queued:
        key = new_token(self.app.secret)
        transfer_id = self.t.id if self.t else None
        cfg = self.app.config
        message_id = f"<{key}.{(transfer_id or 'tb').lower()}@{self.app.domain}>"
        self._rows.append({
            "created_at": self.now, "kind": kind.value, "transfer_id": transfer_id, "party_id": party_id, "key": key,
            "message_id": message_id, "envelope_from": self.app.book.bounce(key), "recipients": list(to),
            "subject": "", "status": OutboxStatus.QUEUED.value, "attempts": 0, "next_attempt_at": self.now,
            "last_error": "", "lease_owner": "",
            "render": RenderSpec(v=2, from_name=cfg.outbound.from_name, from_address=cfg.from_address, **spec),
        })
        self._snapshots.append(self._shared())
        queued = Queued(kind.value, key, message_id, party_id, tuple(to))
        self.queued.append(queued)
        return queued

    # -- mail to a party ---------------------------------------------------------------------------------
    def to_party(self, party: Party, kind: MailKind, extra: dict[str, Any] | None = None,
                 addresses: tuple[str, ...] = ()) -> Queued | None:
        """One mail to every deliverable address of a party (or to ``addresses``: a replaced contact, which
        gets no token), in its locale, threaded under its confirmation."""
        assert self.t is not None
        t = self.t
        explicit = bool(addresses)
        if not explicit:
            complete_addresses(self.session, [party], self.addresses)
        to = list(addresses) if explicit else [a.address for a in self.addresses[party.id or 0]
                                               if a.undeliverable_at is None]
        if not to:
            append_event(self.work, t.id, "not-mailed", {"role": party.role, "mail": kind.value,
                                                            "why": "no deliverable address"}, self.now)
            log.warning("%s: no deliverable address for %s; %s not sent", t.id, party.role, kind.value)
            return None
        self._shared()
        extra = dict(extra or {})
        if "by_role" in extra:
            by = next((p for p in self.parties if p.role == extra["by_role"]), None)
            extra["by_name"] = self.names.get(by.account_id, by.account_id) if by else extra["by_role"]
        me = {"role": party.role, "name": self.names.get(party.account_id, party.account_id),
              "token": None if explicit else party.token, "decision": party.decision}
        asks = not explicit and (kind in ASKING or (kind is MailKind.STATUS and party.decision == Decision.PENDING))
        threaded = None if explicit or (kind is MailKind.CONFIRMATION and not party.confirmation_message_id) \
            else (party.confirmation_message_id or None)
        spec = RenderSpec(locale=party.locale, tz=party.timezone, party=party.id, me=me, asks=asks,
                          reply_to=None if explicit else self.app.book.reply(party.token), in_reply_to=threaded,
                          extra=extra, certificate=kind is MailKind.COMPLETED and self.with_certificate)
        row = self._row(kind, to, spec, party.id)
        if kind is MailKind.CONFIRMATION and not party.confirmation_message_id:
            party.confirmation_message_id = row.message_id
            self.session.add(party)
        append_event(self.work, t.id, "mail-queued", {"mail": kind.value, "role": party.role, "to": to,
                                                         "message_id": row.message_id}, self.now)
        return row

    # -- mail to the operator ---------------------------------------------------------------------------
    def to_operator(self, alert: str, facts: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> None:
        operator = self.app.config.workflow.operator_address
        tid = self.t.id if self.t else "-"
        if not operator:
            log.warning("%s: operator alert %r not mailed: [workflow] operator_address is not set", tid, alert)
            return
        cfg = self.app.config.workflow
        spec = RenderSpec(locale=cfg.default_locale, tz=cfg.default_timezone, party=None, me=None, asks=False,
                          reply_to=None, in_reply_to=None, certificate=False,
                          extra={"alert": alert, "alert_facts": [list(f) for f in facts]})
        row = self._row(MailKind.OPERATOR_ALERT, [operator], spec, None)
        if self.t is not None:
            append_event(self.work, self.t.id, "mail-queued", {
                "mail": MailKind.OPERATOR_ALERT.value, "role": "operator", "to": [operator], "alert": alert,
                "message_id": row.message_id}, self.now)

    def done(self) -> list[Queued]:
        """Hand the rows queued to the Work and write them (one statement; a deferred Work writes them when
        it is flushed), and wake the dispatchers (this daemon's and, on PostgreSQL, the others) when this
        commits."""
        if self._rows:
            rows, self._rows = self._rows, []
            snapshots, self._snapshots = self._snapshots, []
            self.work.mail.extend(zip(snapshots, rows, strict=True))
            if not self.work.deferred:
                self.work.write_mail()
            self.app.store.notify(self.session, OUTBOX_CHANNEL)
        return self.queued


def alert_operator(app: App, session: Session, alert: str, facts: list[tuple[str, str]], now: datetime, *,
                   work: Work | None = None) -> None:
    """An operator alert about no transfer (a bounce of mail we cannot place, say), on the caller's unit of
    work if it has one (written with its other mail), else written now."""
    mailer = Mailer(app, work if work is not None else Work(session), None, [], now)
    mailer.to_operator(alert, facts)
    mailer.done()
