"""The leased queue (store/queues.py) on SQLite and PostgreSQL: who gets which row, takeovers, releases."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from tests.conftest import make_config
from transferbot.app.context import App, open_app
from transferbot.core.clock import now
from transferbot.devtools.sink import MailSink
from transferbot.store.models import OutboundMessage
from transferbot.store.queues import OUTBOX, QUEUES, release_all

BOTH_BACKENDS = True


def _queue_mail(app: App, n: int) -> list[int]:
    at = now() - timedelta(seconds=1)

    def work(session: Session) -> list[int]:
        rows = [OutboundMessage(kind="confirmation", key=f"q-{i}", message_id=f"<q{i}@test>", envelope_from="b@test",
                                recipients=["a@test"], render={"v": 1}, created_at=at, next_attempt_at=at)
                for i in range(n)]
        session.add_all(rows)
        session.flush()
        return [r.id or 0 for r in rows]

    return app.store.run(work)


def _lease_of(app: App, row_id: int) -> tuple[str, object]:
    with app.store.read() as session:
        row = session.get(OutboundMessage, row_id)
        assert row is not None
        return row.lease_owner, row.lease_until


def test_two_owners_claiming_at_once_never_get_the_same_row(app: App) -> None:
    ids = _queue_mail(app, 40)
    got: dict[str, list[int]] = {"one": [], "two": []}
    start = threading.Barrier(2)

    def claimer(owner: str) -> None:
        start.wait()
        while leases := app.store.run(OUTBOX.claim, owner, now(), 60.0, 3):
            got[owner] += [lease.id for lease in leases]

    threads = [threading.Thread(target=claimer, args=(owner,)) for owner in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not set(got["one"]) & set(got["two"]), "a row claimed by both"
    assert sorted(got["one"] + got["two"]) == ids, "every row claimed once"


def test_a_claim_in_flight_is_skipped_by_another_owner(tmp_path: Path, sink: MailSink, postgres_url: str) -> None:
    """PostgreSQL: a claim not yet committed locks its rows; a second claim skips them instead of waiting (on
    SQLite, with one writer, claims cannot overlap)."""
    app = open_app(make_config(tmp_path, sink.port, database={"url": postgres_url}))
    try:
        _claims_skip_what_another_holds(app)
    finally:
        app.store.close()


def _claims_skip_what_another_holds(app: App) -> None:
    ids = _queue_mail(app, 4)
    with Session(app.store.engine) as first, first.begin():
        held = [lease.id for lease in OUTBOX.claim(first, "one", now(), 60.0, 2)]
        assert held == ids[:2]
        other = app.store.run(OUTBOX.claim, "two", now(), 60.0, 10)
        assert [lease.id for lease in other] == ids[2:]


def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(app: App) -> None:
    [row_id] = _queue_mail(app, 1)
    [first] = app.store.run(OUTBOX.claim, "dead-daemon", now(), 5.0, 10)
    assert first.id == row_id and not first.taken_over
    assert app.store.run(OUTBOX.claim, "me", now(), 60.0, 10) == [], "taken while the lease holds"
    [later] = app.store.run(OUTBOX.claim, "me", now() + timedelta(seconds=6), 60.0, 10)
    assert later.id == row_id and later.taken_over
    assert _lease_of(app, row_id)[0] == "me"


def test_release_makes_rows_due_again_only_for_their_owner(app: App) -> None:
    ids = _queue_mail(app, 3)
    assert [lease.id for lease in app.store.run(OUTBOX.claim, "me", now(), 600.0, 10)] == ids
    app.store.run(OUTBOX.release, "someone-else", ids)
    assert app.store.run(OUTBOX.claim, "other", now(), 600.0, 10) == [], "released by one who does not hold it"
    app.store.run(OUTBOX.release, "me", ids[:2])
    assert _lease_of(app, ids[0]) == ("", None)
    again = app.store.run(OUTBOX.claim, "other", now(), 600.0, 10)
    assert [lease.id for lease in again] == ids[:2] and not any(lease.taken_over for lease in again)


def test_next_due_is_the_end_of_a_lease_held_and_release_all_clears_every_queue(app: App) -> None:
    ids = _queue_mail(app, 2)
    with app.store.read() as session:
        due = OUTBOX.next_due(session)
    assert due is not None and due <= now()
    app.store.run(OUTBOX.claim, "me", now(), 120.0, 10)
    with app.store.read() as session:
        leased = OUTBOX.next_due(session)
    assert leased is not None and timedelta(seconds=110) < leased - now() <= timedelta(seconds=120)
    assert app.store.run(release_all) == {"inbound": 0, "outbox": 2, "webhooks": 0}
    assert [q.name for q in QUEUES] == ["inbound", "outbox", "webhooks"]
    assert len(app.store.run(OUTBOX.claim, "next-run", now(), 60.0, 10)) == len(ids)


def test_the_channels_are_the_ones_daemons_of_every_release_listen_on() -> None:
    assert [q.channel for q in QUEUES] == ["transferbot_inbound", "transferbot_outbox", "transferbot_webhooks"]
