"""The one path for every change (service.transition) and the mail it queues, without SMTP.

DESIGN.md's invariants, held on transition.apply itself:
1. a transfer's state never changes without the event that explains it;
4. the entitlement moves exactly when the last approval is recorded, in the same transaction, and
   only if it still is where the transfer said;
5. every state change mails every party it concerns, in their locale, through the outbox.
And the outbox's promise: a row renders to the same bytes at any time, on any daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.controls import cancel_transfer
from transferbot.app.effects import transition
from transferbot.app.effects.facts import entitlement_facts, facts_of, parties_of
from transferbot.app.transfers import request_transfer
from transferbot.core import rules
from transferbot.core.clock import now
from transferbot.core.domain import Decision, Role
from transferbot.outbound.rendering import Outgoing, Renderer
from transferbot.store.models import (
    Account,
    Entitlement,
    Event,
    MailSnapshot,
    OutboundMessage,
    Party,
    Transfer,
    table_of,
)

BOTH_BACKENDS = True  # the one path, and the sweep's deferred writes (multi-row INSERT … RETURNING), on both

STATUS_EVENTS = {"completed": "completed", "declined": "transfer-declined", "expired": "expired",
                 "cancelled": "cancelled"}


def decide(app: App, tid: str, role: Role, decision: Decision = Decision.APPROVED) -> rules.Change:
    def work(session: Session) -> rules.Change:
        t = session.get(Transfer, tid)
        assert t is not None
        parties = parties_of(session, tid)
        ent = session.get(Entitlement, t.entitlement_id)
        assert ent is not None
        change = rules.record_decision(facts_of(session, t, parties), role, decision, entitlement_facts(ent),
                                       "not now" if decision is Decision.DECLINED else "")
        transition.apply(app, session, t, change, now(), parties=parties)
        return change
    return app.store.run(work)


def rows(app: App, tid: str) -> list[OutboundMessage]:
    with app.store.read() as session:
        return list(session.exec(select(OutboundMessage).where(OutboundMessage.transfer_id == tid)
                                 .order_by(col(OutboundMessage.id))))


def events(app: App, tid: str) -> list[str]:
    with app.store.read() as session:
        return [e.kind for e in session.exec(select(Event).where(Event.transfer_id == tid).order_by(col(Event.seq)))]


@contextmanager
def statements(app: App, verb: str) -> Iterator[list[str]]:
    """The statements beginning with ``verb`` (INSERT, SELECT) that the database is sent meanwhile."""
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith(verb):
            seen.append(statement)

    sa.event.listen(app.store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(app.store.engine, "before_cursor_execute", record)



def test_the_last_approval_moves_the_entitlement_in_the_same_change_with_its_events(world: App) -> None:
    tid = request_transfer(world, "ent-r1", "r2")
    for role in (Role.CUSTOMER, Role.ISV, Role.CURRENT_RESELLER):
        decide(world, tid, role)
        with world.store.read() as session:
            assert session.get(Entitlement, "ent-r1").reseller_id == "r1"  # type: ignore[union-attr]
    decide(world, tid, Role.NEW_RESELLER)
    with world.store.read() as session:
        t = session.get(Transfer, tid)
        assert t is not None and t.status == "completed" and t.closed_at is not None and t.next_due_at is None
        assert session.get(Entitlement, "ent-r1").reseller_id == "r2"  # type: ignore[union-attr]
    kinds = events(world, tid)
    assert kinds.index("entitlement-moved") < kinds.index("completed")
    assert kinds.count("entitlement-moved") == 1 and kinds.count("approved") == 4


def test_the_entitlement_moves_only_if_it_is_still_where_the_transfer_said(world: App) -> None:
    tid = request_transfer(world, "ent-r1", "r2")
    for role in (Role.CUSTOMER, Role.ISV, Role.CURRENT_RESELLER):
        decide(world, tid, role)

    def moved_behind_our_back(session: Session) -> None:
        session.connection().execute(sa.update(table_of(Entitlement))
                                     .where(sa.column("id") == "ent-r1").values(reseller_id="r2"))

    def last_approval_on_stale_facts(session: Session) -> None:
        t = session.get(Transfer, tid)
        assert t is not None
        parties = parties_of(session, tid)
        stale = rules.EntitlementFacts("ent-r1", "Analytics Pro", "acme", "vendor", "r1",
                                       entitlement_facts(session.get(Entitlement, "ent-r1")).state)  # type: ignore[arg-type]
        moved_behind_our_back(session)  # between reading the facts and applying: another writer moved it
        change = rules.record_decision(facts_of(session, t, parties), Role.NEW_RESELLER, Decision.APPROVED, stale)
        transition.apply(world, session, t, change, now(), parties=parties)

    with pytest.raises(transition.EntitlementMoved):
        world.store.run(last_approval_on_stale_facts)
    with world.store.read() as session:  # nothing of that transaction stands
        assert session.get(Transfer, tid).status == "pending"  # type: ignore[union-attr]
        assert session.get(Entitlement, "ent-r1").reseller_id == "r1"  # type: ignore[union-attr]
    assert "entitlement-moved" not in events(world, tid)


@pytest.mark.parametrize("ending", ["completed", "declined", "cancelled"])
def test_every_status_change_has_its_event_and_mails_every_party_in_its_locale(world: App, ending: str) -> None:
    with world.store.write() as session:  # the customer reads French, the ISV German
        for account, locale in (("acme", "fr"), ("vendor", "de")):
            row = session.get(Account, account)
            assert row is not None
            row.locale = locale
            session.add(row)
    tid = request_transfer(world, "ent-direct", "r2")
    before = len(rows(world, tid))
    if ending == "completed":
        for role in (Role.CUSTOMER, Role.ISV, Role.NEW_RESELLER):
            decide(world, tid, role)
    elif ending == "declined":
        decide(world, tid, Role.ISV, Decision.DECLINED)
    else:
        cancel_transfer(world, tid, "filed by mistake")
    assert STATUS_EVENTS[ending] in events(world, tid)
    notices = [r for r in rows(world, tid)[before:] if r.kind == ending]
    with world.store.read() as session:
        parties = {p.id: p for p in parties_of(session, tid)}
    assert sorted(parties[r.party_id].role for r in notices) == ["customer", "isv", "new-reseller"]  # type: ignore[index]
    assert {parties[r.party_id].role: r.render["locale"] for r in notices} == {  # type: ignore[index]
        "customer": "fr", "isv": "de", "new-reseller": "en"}


def test_a_change_without_a_status_changes_no_status(world: App) -> None:
    tid = request_transfer(world, "ent-direct", "r2")
    decide(world, tid, Role.CUSTOMER)
    with world.store.read() as session:
        assert session.get(Transfer, tid).status == "pending"  # type: ignore[union-attr]
    assert events(world, tid).count("approved") == 1


def _render(app: App, row_id: int) -> bytes:
    with app.store.read() as session:
        row = session.get(OutboundMessage, row_id)
        assert row is not None and row.snapshot_id is not None
        shared = session.get(MailSnapshot, row.snapshot_id)
        assert shared is not None
        item = Outgoing(row.id or 0, row.kind, row.key, row.message_id, tuple(row.recipients), row.created_at,
                        row.transfer_id, row.render, row.snapshot_id)
        return Renderer().render(item, shared.data)[1]


def test_a_queued_mail_renders_to_the_same_bytes_whatever_happens_to_the_transfer_after(world: App) -> None:
    tid = request_transfer(world, "ent-r1", "r2")
    confirmation = rows(world, tid)[0]
    first = _render(world, confirmation.id or 0)
    for role in (Role.CUSTOMER, Role.ISV, Role.CURRENT_RESELLER, Role.NEW_RESELLER):
        decide(world, tid, role)  # the transfer completes: every decision and its status change
    with world.store.write() as session:  # the customer is renamed
        account = session.get(Account, "acme")
        assert account is not None
        account.name = "Acme Corporation (renamed)"
        session.add(account)
    assert _render(world, confirmation.id or 0) == first
    completed = [r for r in rows(world, tid) if r.kind == "completed"]
    assert len({r.snapshot_id for r in completed}) == 1, "one snapshot per change, shared by its mails"
    assert _render(world, completed[0].id or 0) == _render(world, completed[0].id or 0)


def test_a_partys_completion_notice_carries_a_certificate_without_the_other_parties_addresses(world: App) -> None:
    tid = request_transfer(world, "ent-direct", "r2")
    for role in (Role.CUSTOMER, Role.ISV, Role.NEW_RESELLER):
        decide(world, tid, role)
    completed = [r for r in rows(world, tid) if r.kind == "completed"]
    with world.store.read() as session:
        snapshot = session.get(MailSnapshot, completed[0].snapshot_id)
        assert snapshot is not None
        cert = snapshot.data["certificate"]
    assert cert["audience"] == "party" and cert["title"] == "Certificate of completion"
    flat = repr(cert)
    for address in ("alice@acme.example.com", "bob@acme.example.com", "deals@vendor.example.com",
                    "ops@r2.example.com"):
        assert address not in flat
    with world.store.read() as session:
        assert all(p.token not in flat for p in session.exec(select(Party).where(Party.transfer_id == tid)))


def test_the_operators_certificate_names_every_address_and_the_partys_copy_none(world: App) -> None:
    from transferbot.app.queries.certificate import certificate
    from transferbot.outbound import certdoc

    tid = request_transfer(world, "ent-direct", "r2")
    for role in (Role.CUSTOMER, Role.ISV, Role.NEW_RESELLER):
        decide(world, tid, role)
    operators = certificate(world, tid, "text")
    assert operators.startswith(f"CERTIFICATE OF COMPLETION — {tid}")
    assert "alice@acme.example.com" in operators and "deals@vendor.example.com" in operators
    assert "mail         confirmation" in operators
    completed = [r for r in rows(world, tid) if r.kind == "completed"]
    with world.store.read() as session:
        snapshot = session.get(MailSnapshot, completed[0].snapshot_id)
        assert snapshot is not None
        cert = snapshot.data["certificate"]
    for fmt in ("text", "html", "json"):
        party = certdoc.render(cert, fmt)
        assert "a party's copy" in party or fmt == "json"
        assert "@" not in party.replace("transfers.example.com", ""), fmt


def test_a_sweep_batch_writes_its_events_and_mail_in_one_statement_per_table_each_row_with_its_own_snapshot(
        world: App) -> None:
    """The sweep defers what each transfer's change writes (one deferred unit of work, effects.work.Work) and writes the whole
    batch's at the end: the rows must still be exactly those of each change, linked to their own snapshot."""
    from datetime import timedelta

    from transferbot.app.sweep import sweep_batch

    tids = [request_transfer(world, ent, target) for ent, target in
            (("ent-direct", "r1"), ("ent-r1", "r2"), ("ent-globex", None))]
    before = {tid: len(rows(world, tid)) for tid in tids}
    later = now() + timedelta(days=20)  # past every expiry: each transfer expires and mails its parties
    with statements(world, "INSERT") as inserts:
        swept = world.store.run(sweep_batch, world, later)
    assert sorted(swept.looked_at) == sorted(tids) and swept.acted == 3
    tables = [i.split()[2].strip('"') for i in inserts]
    assert tables.count("outboundmessage") == 1 and tables.count("event") == 1, tables
    with world.store.read() as session:
        for tid in tids:
            assert session.get(Transfer, tid).status == "expired"  # type: ignore[union-attr]
            mail = rows(world, tid)[before[tid]:]
            parties = {p.id for p in parties_of(session, tid)}
            assert {row.party_id for row in mail if row.party_id is not None} == parties, "every party told"
            for row in mail:
                snapshot = session.get(MailSnapshot, row.snapshot_id)
                assert snapshot is not None and snapshot.transfer_id == tid and snapshot.data["t"]["id"] == tid
            trail = events(world, tid)
            assert "expired" in trail and trail.count("mail-queued") >= len(mail) + before[tid]


def test_a_works_pending_writes_are_dropped_when_its_batch_raises_and_two_works_share_nothing(world: App) -> None:
    """A deferred unit of work holds a batch's events and mail until it is flushed: when the batch raises and
    its savepoint is rolled back, forgetting drops them and the chain heads they moved, so that the batch
    acted on again chains onto the trail as it stands. A second Work on the same session shares none of it."""
    from transferbot.app.effects.audit import first_broken
    from transferbot.app.effects.work import Work
    from transferbot.core.domain import MailKind

    first, second = request_transfer(world, "ent-direct", "r1"), request_transfer(world, "ent-globex", "r2")
    trail = {tid: events(world, tid) for tid in (first, second)}
    mail = {tid: len(rows(world, tid)) for tid in (first, second)}
    change = rules.Change(events=(("noted", {"by": "test"}),),
                          notices=(rules.Notice(MailKind.STATUS, (Role.CUSTOMER,)),))

    def written(session: Session, tid: str) -> int:
        return len(list(session.exec(select(Event.id).where(Event.transfer_id == tid))))

    def batch_raises_then_runs_again(session: Session) -> None:
        batch, other = Work(session, deferred=True), Work(session)
        t1, t2 = session.get(Transfer, first), session.get(Transfer, second)
        assert t1 is not None and t2 is not None
        with pytest.raises(RuntimeError), session.begin_nested():
            transition.apply(world, session, t1, change, now(), work=batch)
            assert [e["kind"] for e in batch.events] == ["noted", "mail-queued"] and len(batch.mail) == 1
            assert set(batch.heads) == {first} and batch.names
            assert written(session, first) == len(trail[first]), "deferred: nothing written yet"
            assert (other.heads, other.events, other.mail, other.names, other.endpoints) == ({}, [], [], {}, None)
            raise RuntimeError("a later message of the batch")
        batch.forget()
        assert (batch.heads, batch.events, batch.mail) == ({}, [], [])
        transition.apply(world, session, t2, change, now(), work=other)  # not deferred: written at once
        assert written(session, second) == len(trail[second]) + 2 and (other.events, other.mail) == ([], [])
        assert set(other.heads) == {second} and (batch.heads, batch.events, batch.mail) == ({}, [], [])
        transition.apply(world, session, t1, change, now(), work=batch)  # the batch again, from the real head
        batch.flush()

    world.store.run(batch_raises_then_runs_again)
    for tid in (first, second):
        assert events(world, tid) == [*trail[tid], "noted", "mail-queued"], "the rolled-back batch left nothing"
        assert len(rows(world, tid)) == mail[tid] + 1
        with world.store.read() as session:
            chain = list(session.exec(select(Event).where(Event.transfer_id == tid).order_by(col(Event.seq))))
        assert first_broken(chain) is None


def _stored_approvals(app: App, tids: list[str]) -> list[tuple[int, object, object]]:
    """Every party of these transfers approving from its first address, stored and read as the reader
    reads them, its sender authenticated (the batch is what is tested here, not the checks)."""
    from transferbot.app import arrivals
    from transferbot.inbound.senderauth import AuthOutcome
    from transferbot.runners.reader import read_stored
    from transferbot.store.models import PartyAddress

    with app.store.read() as session:
        senders = [(p.token, session.exec(select(PartyAddress.address).where(PartyAddress.party_id == p.id)
                                          .order_by(col(PartyAddress.position))).first())
                   for tid in tids for p in parties_of(session, tid)]
    items = []
    for n, (token, sender) in enumerate(senders):
        to = app.book.reply(token)
        raw = (f"From: {sender}\r\nTo: {to}\r\nSubject: Re: transfer\r\nMessage-ID: <b{n}@example.com>\r\n\r\n"
               f"APPROVE\r\n\r\n> quoted\r\n").encode()
        inbound_id = arrivals.store_inbound(app, raw, str(sender), [to], "127.0.0.1")
        [stored] = app.store.run(arrivals.claim_unread, "test", now(), 60, 1)
        assert stored.id == inbound_id
        auth = AuthOutcome("pass", from_domain=str(sender).rpartition("@")[2], why="test: authenticated")
        items.append((inbound_id, read_stored(app.book, stored), auth))
    return items


def test_a_batch_of_replies_is_decided_with_its_events_and_mail_written_once_per_table(world: App) -> None:
    from transferbot.app import replies

    tids = [request_transfer(world, "ent-direct", "r1"), request_transfer(world, "ent-globex", "r2")]
    items = _stored_approvals(world, tids)
    with statements(world, "INSERT") as inserts:
        outcomes = world.store.run(replies.apply_batch, world, items)
    assert outcomes == ["approved"] * len(items)
    # the certificate of each completion reads its trail, so events may be written before the end; mail is not
    tables = [i.split()[2].strip('"') for i in inserts]
    assert tables.count("outboundmessage") == 1, tables
    assert tables.count("event") < len(items), tables
    with world.store.read() as session:
        for tid in tids:
            assert session.get(Transfer, tid).status == "completed"  # type: ignore[union-attr]
    for tid in tids:
        assert {"completed", "approved"} <= set(events(world, tid))
        assert sum(r.kind == "completed" for r in rows(world, tid)) == len(parties_of_read(world, tid))


def parties_of_read(app: App, tid: str) -> list[Party]:
    with app.store.read() as session:
        return parties_of(session, tid)


def test_a_batch_where_one_reply_raises_is_decided_again_one_by_one_and_only_that_one_fails(
        world: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from transferbot.app import replies
    from transferbot.app.effects.audit import first_broken

    tid = request_transfer(world, "ent-direct", "r1")
    items = _stored_approvals(world, [tid])
    doomed = items[1][0]
    real = replies.run_chain

    def chain(reading, lookup, policy, auth):  # type: ignore[no-untyped-def]
        if lookup.inbound_id == doomed:
            raise RuntimeError("a bug in a check")
        return real(reading, lookup, policy, auth)

    monkeypatch.setattr(replies, "run_chain", chain)
    outcomes = world.store.run(replies.apply_batch, world, items)
    assert outcomes == ["approved", "failed", "approved"]
    with world.store.read() as session:
        assert session.get(Transfer, tid).status == "pending"  # type: ignore[union-attr]
        trail = list(session.exec(select(Event).where(Event.transfer_id == tid).order_by(col(Event.seq))))
    assert first_broken(trail) is None
    assert [e.kind for e in trail].count("approved") == 2 and [e.kind for e in trail].count("reply-received") == 2


def test_a_batch_locks_every_transfer_its_replies_name_however_they_name_it(world: App) -> None:
    """lock_in_order (several daemons: lock a batch's transfers first, in id order) finds a transfer by a live
    token, by a revoked one, by threading and by a bounce key, with one query for the tokens and one for the
    mail, whatever the number of messages."""
    from dataclasses import replace

    from transferbot.app import registry, replies
    from transferbot.app.controls import replace_contact
    from transferbot.store.models import RevokedToken

    registry.add_entitlement(world, "ent-fourth", "Storage Plus", "acme", "vendor")
    by_token, by_revoked, by_thread, by_key = (request_transfer(world, ent, target) for ent, target in
                                               (("ent-direct", "r1"), ("ent-r1", "r2"), ("ent-globex", "r2"),
                                                ("ent-fourth", "r2")))
    with world.store.read() as session:
        live = parties_of(session, by_token)[0].token
        old = parties_of(session, by_revoked)[0].token
    replace_contact(world, by_revoked, "customer", "carol@acme.example.com")
    with world.store.read() as session:
        assert session.get(RevokedToken, old) is not None
    thread = rows(world, by_thread)[0].message_id
    key = rows(world, by_key)[0].key
    [(_id, template, _auth)] = _stored_approvals(world, [by_token])[:1]
    assert not isinstance(template, str)
    blank = replace(template, envelope_tokens=(), body_tokens=(), thread_ids=(), bounce_keys=())
    readings = [replace(blank, envelope_tokens=(live.upper(),)), replace(blank, body_tokens=(old,)),
                replace(blank, thread_ids=(thread,)), replace(blank, bounce_keys=(key.upper(),)), blank]
    with statements(world, "SELECT") as selects:
        locked = world.store.run(replies.lock_in_order, readings, world.secret)
    assert locked == {by_token, by_revoked, by_thread, by_key}
    assert len(selects) == 4, selects  # the tokens, the threads, the bounce keys, the lock


def test_a_batch_stuffed_with_made_up_references_still_locks_what_its_genuine_reply_names(world: App) -> None:
    """A hostile sender fills each body with thousands of references that are not ours and a References
    header with thousands of ids: the batch's lookups stay within what the database takes per statement,
    forged references are never looked up, and the genuine reply in the batch still finds its transfer."""
    from dataclasses import replace

    from transferbot.app import replies
    from transferbot.core.tokens import new_token

    tid = request_transfer(world, "ent-direct", "r1")
    [(_id, genuine, _auth), *_rest] = _stored_approvals(world, [tid])
    assert not isinstance(genuine, str)
    forged = [replace(genuine, envelope_tokens=(), thread_ids=tuple(f"<{n}.{i}@attacker.example>" for i in range(7000)),
                      body_tokens=tuple(new_token(b"not our secret") for _ in range(7000))) for n in range(10)]
    with statements(world, "SELECT") as selects:
        locked = world.store.run(replies.lock_in_order, [*forged, genuine], world.secret)
    assert locked == {tid}
    assert max(s.count("?") + s.count("%(") for s in selects) <= 2 * replies.LOOKUP_CHUNK + 10
