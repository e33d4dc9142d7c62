"""Acting on a read message, once: the chain's verdict becomes a change to its transfer.

``apply_batch`` applies the verdicts of a batch of read messages in one transaction, each in a
savepoint of its own: a message whose acting raised is rolled back alone, kept, and marked failed
with the reason (`transferbot inbox retry` reads it again). A message already read (by another
daemon whose lease ran out, or by a retry) is acted on once: its row is locked and its state checked
first.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session, select

from transferbot.app.arrivals import load_raw
from transferbot.app.context import App
from transferbot.app.effects import transition
from transferbot.app.effects.facts import (
    addresses_for,
    addresses_of,
    entitlement_facts,
    facts_of,
    lock_transfer,
    parties_of,
)
from transferbot.app.effects.lookup import DbLookup
from transferbot.app.effects.mail import alert_operator
from transferbot.app.effects.work import Work
from transferbot.config import Config
from transferbot.core import rules
from transferbot.core.backoff import backoff
from transferbot.core.clock import now as clock_now
from transferbot.core.domain import Decision, InboxState, MailKind, Outcome, Role
from transferbot.core.errors import Conflict, Unknown
from transferbot.core.tokens import check_token
from transferbot.inbound.authenticator import Authenticator
from transferbot.inbound.reader.chain import NoLookup, Policy, Verdict, run_chain
from transferbot.inbound.reader.reading import Reading, read_message
from transferbot.inbound.wire import storable
from transferbot.store.base import transient
from transferbot.store.models import (
    Entitlement,
    InboundMessage,
    OutboundMessage,
    Party,
    RevokedToken,
    Transfer,
    table_of,
)

if TYPE_CHECKING:
    from transferbot.inbound.senderauth import AuthOutcome

log = logging.getLogger(__name__)


Item = tuple[int, "Reading | str", "AuthOutcome | None"]  # a read message, ready to be acted on

_LOCK_INBOUND = select(InboundMessage).where(InboundMessage.id == sa.bindparam("inbound_id")).with_for_update()
_LOCK_ENTITLEMENT = select(Entitlement).where(Entitlement.id == sa.bindparam("entitlement_id")).with_for_update()
_PARTIES = table_of(Party)
_REVOKED = table_of(RevokedToken)
_OUTBOUND = table_of(OutboundMessage)
_TRANSFERS_BY_TOKEN = sa.union(
    sa.select(_PARTIES.c.transfer_id).where(_PARTIES.c.token.in_(sa.bindparam("tokens", expanding=True))),
    sa.select(_PARTIES.c.transfer_id).join(_REVOKED, _REVOKED.c.party_id == _PARTIES.c.id)
    .where(_REVOKED.c.token.in_(sa.bindparam("tokens", expanding=True))))
_TRANSFERS_BY_MAIL = sa.select(_OUTBOUND.c.transfer_id).where(sa.or_(
    _OUTBOUND.c.message_id.in_(sa.bindparam("threads", expanding=True)),
    _OUTBOUND.c.key.in_(sa.bindparam("keys", expanding=True))))


def policy_of(config: Config) -> Policy:
    """How the reader's checks are to treat sender authentication, as configured."""
    return Policy(sender_auth=config.inbound.sender_auth)


def explain(config: Config, raw: bytes, mail_from: str = "", rcpt_tos: list[str] | None = None,
            client_ip: str = "", helo: str = "", app: App | None = None,
            authenticator: Authenticator | None = None) -> tuple[Reading, Verdict, AuthOutcome | None]:
    """How the reader reads one message, changing nothing (``transferbot read``). With ``app`` (a current
    database) the transfer and party are looked up as the reader would; without, nothing is looked up
    (``NoLookup``): the reading, the decision and the sender's authentication are the same."""
    book = app.book if app is not None else config.inbound.book()
    reading = read_message(raw, mail_from, rcpt_tos or [], book)
    auth = (authenticator or Authenticator(config.inbound)).check_now(
        raw, reading, mail_from=mail_from, client_ip=client_ip, helo=helo)
    policy = policy_of(config)
    if app is None:
        return reading, run_chain(reading, NoLookup(), policy, auth), auth
    with app.store.read() as session:
        verdict = run_chain(reading, DbLookup(app, session, None), policy, auth)
    return reading, verdict, auth


def apply_batch(session: Session, app: App, batch: Sequence[Item]) -> list[str]:
    """Act on read messages in this transaction; returns the outcomes, in order.

    The whole batch is tried first in one savepoint, as one deferred unit of work (effects.work.Work):
    its events and mail are written together at the end. Should acting on any message raise, that
    savepoint is rolled back, what the Work held is forgotten, and the batch is acted on again a message
    at a time, each in a savepoint of its own and written as it is acted on, so that only the message
    that raises is marked failed.

    Where several daemons write at once, the transfers the batch concerns are locked first, in one
    order (by id), so two batches never wait for each other in a cycle; should a lock be taken later
    all the same and a deadlock follow, the whole transaction is run again (never a message marked
    failed for it)."""
    locked: set[str] = set()
    if not app.store.serialises_writes:
        locked = lock_in_order(session, [r for _i, r, _a in batch if not isinstance(r, str)], app.secret)
    work = Work(session, deferred=True)
    try:
        with session.begin_nested():
            outcomes = [_fail(session, inbound_id, reading) if isinstance(reading, str)
                        else act(session, app, inbound_id, reading, auth, locked, work=work)
                        for inbound_id, reading, auth in batch]
            work.flush()
            return outcomes
    except Exception as exc:  # noqa: BLE001 - rolled back: each message again, alone
        work.forget()
        if transient(exc):
            raise  # a deadlock or a lost race: the whole batch runs again
        if len(batch) > 1:
            log.warning("acting on a batch of %d messages raised (%s); acting on each alone", len(batch), exc)
    work.deferred = False  # a message at a time now (the names and endpoints it read still hold)
    return _one_by_one(session, app, batch, locked, work)


def _one_by_one(session: Session, app: App, batch: Sequence[Item], locked: set[str], work: Work) -> list[str]:
    outcomes: list[str] = []
    for inbound_id, reading, auth in batch:
        if isinstance(reading, str):
            outcomes.append(_fail(session, inbound_id, reading))
            continue
        try:
            with session.begin_nested():
                outcomes.append(act(session, app, inbound_id, reading, auth, locked, work=work))
        except Exception as exc:  # noqa: BLE001 - kept, marked failed, can be read again
            work.forget()
            if transient(exc):
                raise  # a deadlock or a lost race: the whole batch runs again
            log.exception("inbound #%s: acting on it raised; marked failed", inbound_id)
            outcomes.append(_fail(session, inbound_id, f"{type(exc).__name__}: {exc}"))
    return outcomes


def lock_in_order(session: Session, readings: Sequence[Reading], secret: bytes) -> set[str]:
    """Lock the transfers these messages concern, ordered by id (what the chain's token lookup finds:
    envelope tokens, threading, body references that are ours, bounce keys); returns their ids.

    A batch's lookups are a query per kind, not per message, with at most LOOKUP_CHUNK values each: a
    sender may fill a body with made-up references or a References header with thousands of ids, and
    the database takes a bounded number of parameters per statement. Body references that are not
    ours (checked as the chain checks them) are never looked up."""
    table = table_of(Transfer)
    tokens = sorted({t.lower() for r in readings for t in r.envelope_tokens}
                    | {t.lower() for r in readings for t in r.body_tokens if check_token(secret, t)})
    keys = sorted({k.lower() for r in readings for k in r.bounce_keys})
    threads = sorted({m for r in readings for m in r.thread_ids})
    conn = session.connection()
    ids: set[str] = set()
    for chunk in _chunks(tokens):
        ids.update(conn.execute(_TRANSFERS_BY_TOKEN, {"tokens": chunk}).scalars())
    for name, values in (("threads", threads), ("keys", keys)):
        for chunk in _chunks(values):
            found = conn.execute(_TRANSFERS_BY_MAIL, {"threads": [], "keys": [], name: chunk}).scalars()
            ids.update(t for t in found if t)
    if ids:
        conn.execute(sa.select(table.c.id).where(table.c.id.in_(sorted(ids))).order_by(table.c.id).with_for_update())
    return ids


AUTH_RETRY_CAP = 3600.0  # seconds: a reply waiting on DNS is tried again at least hourly, never given up
LOOKUP_CHUNK = 1000  # values per IN list (PostgreSQL takes at most 65,535 parameters a statement)


def _chunks(values: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(values), LOOKUP_CHUNK):
        yield values[start:start + LOOKUP_CHUNK]


def act(session: Session, app: App, inbound_id: int, reading: Reading, auth: AuthOutcome | None = None,
        locked: Collection[str] = (), *, work: Work | None = None) -> str:
    """Run the chain on one read message and apply its verdict (inside the caller's transaction).
    ``locked``: transfers this transaction locked before reading (apply_batch's lock_in_order); ``work``:
    the unit of work the verdict's change joins (apply_batch's), else one of its own."""
    row = session.exec(_LOCK_INBOUND, params={"inbound_id": inbound_id}).first()
    if row is None:
        raise KeyError(inbound_id)
    if row.state == InboxState.DONE:
        return row.outcome  # read already (a retry or another daemon): acted on once
    lookup = DbLookup(app, session, inbound_id)  # held while acting: the transfer it found stays loaded
    verdict = run_chain(reading, lookup, policy_of(app.config), auth)
    t = lock_transfer(session, verdict.party.transfer_id, held=locked) if verdict.party is not None else None
    if t is not None and not app.store.serialises_writes and t.id not in locked:
        # The transfer is locked now: read again, so the verdict rests on facts no other daemon can change.
        verdict = run_chain(reading, DbLookup(app, session, inbound_id), policy_of(app.config), auth)
    now = clock_now()
    row.auth = auth.as_dict() if auth is not None else None
    row.state, row.outcome, row.checks = InboxState.DONE.value, verdict.outcome.value, [storable(c) for c in verdict.checks]
    row.reason = storable(verdict.reason)
    row.from_address = storable(reading.from_address or "")
    row.subject = storable(reading.subject)
    row.read_at, row.lease_owner, row.lease_until = now, "", None
    row.attempts += 1
    if verdict.party is not None:
        row.transfer_id, row.party_id = verdict.party.transfer_id, verdict.party.party_id
    elif verdict.outbound is not None:
        row.transfer_id, row.party_id = verdict.outbound.transfer_id, verdict.outbound.party_id
    elif verdict.duplicate_of is not None:
        first = session.get(InboundMessage, verdict.duplicate_of)
        if first is not None:
            row.transfer_id, row.party_id = first.transfer_id, first.party_id
    session.add(row)
    session.flush()
    _apply(app, session, row, reading, verdict, now, auth, t, work)
    log.info("inbound #%s %s: %s (%s)", row.id, row.message_id or "(no Message-ID)", verdict.outcome.value,
             verdict.decided_by)
    return row.outcome


def _fail(session: Session, inbound_id: int, error: str) -> str:
    row = session.get(InboundMessage, inbound_id)
    if row is None or row.state == InboxState.DONE:
        return row.outcome if row else Outcome.FAILED.value
    row.state, row.outcome, row.reason = InboxState.FAILED.value, Outcome.FAILED.value, storable(error[:2000])
    row.attempts += 1
    row.read_at, row.lease_owner, row.lease_until = clock_now(), "", None
    session.add(row)
    return row.outcome


def defer(session: Session, inbound_id: int, auth: AuthOutcome, tries: int, now: datetime,
          first_retry: float = 15.0) -> str:
    """DNS trouble kept the sender from being authenticated: the message waits, unread, and is tried again
    (within 30 seconds first, then backing off); it is never counted unauthenticated, never dropped."""
    row = session.get(InboundMessage, inbound_id)
    if row is None or row.state == InboxState.DONE:
        return row.outcome if row else Outcome.FAILED.value
    row.auth, row.auth_tries = auth.as_dict(), tries + 1
    row.next_read_at = now + timedelta(seconds=backoff(tries + 1, first_retry, AUTH_RETRY_CAP))
    row.reason = storable(f"waiting to authenticate the sender again: {auth.why}"[:2000])
    row.lease_owner, row.lease_until = "", None
    session.add(row)
    log.warning("inbound #%s: sender authentication met DNS trouble (%s); read again at %s", inbound_id, auth.why,
                row.next_read_at.isoformat())
    return "deferred"


def read_inbound(app: App, inbound_id: int, authenticator: Authenticator | None = None) -> InboundMessage:
    """Read one stored message and act on it, once, in one transaction (the CLI's way; the daemon reads
    in batches)."""
    with app.store.read() as session:
        stored = session.get(InboundMessage, inbound_id)
        if stored is None:
            raise KeyError(inbound_id)
        raw, mail_from, rcpts = load_raw(session, inbound_id), stored.mail_from, list(stored.rcpt_tos)
        peer, helo, tries = stored.peer, stored.helo, stored.auth_tries
    reading = read_message(raw, mail_from, rcpts, app.book)  # pure: outside the transaction
    auth = (authenticator or Authenticator(app.config.inbound)).check_now(
        raw, reading, mail_from=mail_from, client_ip=peer, helo=helo)
    if auth is not None and auth.temporary:
        app.store.run(defer, inbound_id, auth, tries, clock_now(), app.config.inbound.dns_retry_seconds)
    else:
        app.store.run(act, app, inbound_id, reading, auth)
    with app.store.read() as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        return row


def retry_inbound(app: App, inbound_id: int, by: str = "operator") -> InboundMessage:
    """Read a failed (or unread) message again now. Once it is filed under a transfer, that transfer's audit
    trail says who had it read again (``by``) and what came of it."""
    def reopen(session: Session) -> None:
        row = session.get(InboundMessage, inbound_id)
        if row is None:
            raise Unknown(f"unknown inbound message #{inbound_id}")
        if row.state == InboxState.DONE:
            raise Conflict(f"inbound message #{inbound_id} was read already (outcome {row.outcome})")
        row.state, row.lease_owner, row.lease_until, row.next_read_at = InboxState.NEW.value, "", None, None
        session.add(row)

    app.store.run(reopen)
    log.info("inbound #%s: read again at the request of %s", inbound_id, by)
    try:
        row = read_inbound(app, inbound_id)
    except Exception as exc:
        app.store.run(_fail, inbound_id, f"{type(exc).__name__}: {exc}")
        raise
    if row.transfer_id:
        app.store.run(_record_retry, app, row.transfer_id, row, by)
    return row


def _record_retry(session: Session, app: App, transfer_id: str, row: InboundMessage, by: str) -> None:
    t = lock_transfer(session, transfer_id)
    if t is not None:
        change = rules.retried("reply-read-again", {"inbound": row.id, "message_id": row.message_id,
                                                    "outcome": row.outcome}, by)
        transition.apply(app, session, t, change, clock_now())


# -- from a verdict to a change ---------------------------------------------------------------------

def _apply(app: App, session: Session, row: InboundMessage, reading: Reading, verdict: Verdict,
           now: datetime, auth: AuthOutcome | None = None, transfer: Transfer | None = None,
           work: Work | None = None) -> None:
    """``transfer``: the verdict's transfer, as ``act`` locked it; ``work``: as for ``act``."""
    if verdict.outcome is Outcome.BOUNCE:
        _apply_bounce(app, session, row, reading, verdict, now, work)
        return
    if verdict.outcome is Outcome.BOUNCE_IGNORED:
        return  # recorded with its reason on the message, and nothing else: it is no bounce of ours
    info = verdict.party
    if info is None:
        return
    if info.revoked:
        _from_replaced_contact(app, session, row, reading, info.party_id, now, work)
        return
    t = transfer if transfer is not None and transfer.id == info.transfer_id else lock_transfer(session, info.transfer_id)
    assert t is not None
    parties = parties_of(session, t.id)
    addresses = addresses_for(session, [p.id for p in parties])
    party = next(p for p in parties if p.id == info.party_id)
    facts = facts_of(session, t, parties, addresses)
    role = Role(party.role)
    heard = ("reply-received", {
        "inbound": row.id, "message_id": row.message_id, "from": row.from_address, "role": party.role,
        "outcome": verdict.outcome.value, "decided_by": verdict.decided_by, "checks": list(row.checks)})
    change = rules.Change()
    if verdict.outcome in (Outcome.APPROVED, Outcome.DECLINED):
        ent = session.exec(_LOCK_ENTITLEMENT, params={"entitlement_id": t.entitlement_id}).one()
        decision = Decision.APPROVED if verdict.outcome is Outcome.APPROVED else Decision.DECLINED
        reason = reading.decision.reason if decision is Decision.DECLINED else ""
        change = rules.record_decision(facts, role, decision, entitlement_facts(ent), reason)
    elif verdict.outcome is Outcome.STATUS:
        change = rules.reply_notice(facts, role, MailKind.STATUS, now)
    elif verdict.notify == "help":
        first_line = reading.decision.first_line[:200] if verdict.outcome is Outcome.UNCLEAR else ""
        change = rules.reply_notice(facts, role, MailKind.HELP, now, {
            "problem": verdict.problem, "first_line": first_line, **{k: v[:200] for k, v in verdict.detail.items()}})
    elif verdict.outcome is Outcome.NOT_A_PARTY and verdict.notify == "ignored-sender":
        change = rules.reply_notice(facts, role, MailKind.IGNORED_SENDER, now,
                                    _ignored(session, parties, party, reading, verdict, auth))
    change = dataclasses.replace(change, events=(heard, *change.events))
    transition.apply(app, session, t, change, now, work=work, parties=parties, cause=row, addresses=addresses)
    if change.decisions:
        log.info("%s: %s %s (inbound #%s); transfer %s", t.id, party.role,
                 next(iter(change.decisions.values())).value, row.id, t.status)


def _from_replaced_contact(app: App, session: Session, row: InboundMessage, reading: Reading, party_id: int,
                           now: datetime, work: Work | None) -> None:
    """A reply from a contact that no longer answers for its account: recorded on the transfer, and the
    old contact told again that it no longer answers (at most once a day, and only at an address it was
    mailed at: never at an address a sender makes up)."""
    sender = reading.from_address or ""
    party = session.get(Party, party_id)
    t = lock_transfer(session, party.transfer_id) if party else None
    if party is None or t is None:
        return
    revoked = next((r for r in session.exec(select(RevokedToken).where(RevokedToken.party_id == party_id))
                    if sender in r.addresses), None)
    heard = ("reply-received", {"inbound": row.id, "message_id": row.message_id, "from": sender,
                                "role": party.role, "outcome": row.outcome, "decided_by": "party",
                                "checks": list(row.checks), "replaced_contact": True})
    notices: tuple[rules.Notice, ...] = ()
    if revoked is not None and t.status == "pending" and (
            revoked.last_notice_at is None or now - revoked.last_notice_at >= rules.NOTICE_INTERVAL):
        revoked.last_notice_at = now
        session.add(revoked)
        notices = (rules.Notice(MailKind.CONTACT_REPLACED, (Role(party.role),), addresses=(sender,)),)
    transition.apply(app, session, t, rules.Change(events=(heard,), notices=notices), now, work=work)


def _ignored(session: Session, parties: list[Party], party: Party, reading: Reading, verdict: Verdict,
             auth: AuthOutcome | None) -> dict[str, object]:
    """What the party is told about a reply that did not count: who sent it (never another party's address)
    and, when authentication failed, what its mail administrator can fix."""
    sender = reading.from_address or ""
    others = {a.address for p in parties if p.id != party.id for a in addresses_of(session, p.id or 0)}
    extra: dict[str, object] = {"problem": verdict.problem, "sender": sender or "(unknown)",
                                "sender_hidden": sender in others}
    if sender in others:
        extra["sender"] = ""
    if auth is not None and verdict.problem == "authentication":
        extra["advice_key"] = auth.advice_key
        extra["advice"] = dict(auth.advice_params)
    return extra


def _apply_bounce(app: App, session: Session, row: InboundMessage, reading: Reading, verdict: Verdict,
                  now: datetime, work: Work | None) -> None:
    """A bounce at the bounce address of one outgoing mail (check_bounce): a permanent one marks undeliverable
    the addresses it names that this mail went to and that are still the party's, and no other."""
    bounce = reading.bounce
    assert bounce is not None
    outbound = verdict.outbound
    if outbound is not None and outbound.kind == MailKind.OPERATOR_ALERT.value:
        # Never alert about an alert that bounced: the operator address itself is failing.
        log.error("inbound #%s: an operator alert to %s bounced (%s); check [workflow] operator_address",
                  row.id, ", ".join(outbound.recipients), verdict.reason)
        return
    t = lock_transfer(session, outbound.transfer_id) if outbound and outbound.transfer_id else None
    if t is None:
        if bounce.permanent:
            alert_operator(app, session, "bounce", [("message", row.message_id or f"inbound #{row.id}"),
                                                    ("reason", verdict.reason)], now, work=work)
        return
    parties = parties_of(session, t.id)
    party = next((p for p in parties if outbound is not None and p.id == outbound.party_id), None)
    heard = ("bounce-received", {"inbound": row.id, "permanent": bounce.permanent, "why": bounce.why,
                                 "recipients": [r.address for r in bounce.recipients],
                                 "role": party.role if party else "operator"})
    change = rules.Change(events=(heard,))
    failed = bounce.permanent_addresses
    if outbound is not None and bounce.permanent and not failed:
        failed = list(outbound.recipients)
    if bounce.permanent and party is not None and outbound is not None:
        ours = {a.address for a in addresses_of(session, party.id or 0)
                if a.undeliverable_at is None and a.address in outbound.recipients}
        refused = {}
        for address in failed:
            if address in ours:
                detail = next((f"{r.status} {r.diagnostic}".strip() for r in bounce.recipients
                               if address in r.addresses), "")
                refused[address] = detail or bounce.why
        if refused:
            marked = rules.undeliverable(facts_of(session, t, parties), Role(party.role), refused,
                                         {"inbound": row.id})
            alert = rules.Alert("bounce", (("role", party.role), ("address", ", ".join(refused)),
                                           ("reason", verdict.reason)))
            change = rules.Change(updates=marked.updates, events=(heard, *marked.events), alerts=(alert,))
    transition.apply(app, session, t, change, now, work=work, parties=parties)
