"""Time: reminders, the last call and expiry, walked day by day with freezegun."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlmodel import col, select

from tests.conftest import make_config
from tests.helpers import RunningDaemon, reply, reply_address, wait_until
from transferbot.app import registry
from transferbot.app.arrivals import store_inbound
from transferbot.app.context import App, open_app
from transferbot.app.outbox import raw_of
from transferbot.app.queries.views import transfer_detail
from transferbot.app.replies import read_inbound
from transferbot.app.sweep import sweep
from transferbot.app.transfers import request_transfer
from transferbot.core import timeline
from transferbot.core.clock import now
from transferbot.devtools.sink import MailSink, Received
from transferbot.store.models import OutboundMessage, Party

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
P = timeline.Policy()

# -- the pure schedule -------------------------------------------------------------


def _progress(sent: int = 0, last_call: bool = False, pending: bool = True, deliverable: bool = True):
    return timeline.PartyProgress(pending=pending, deliverable=deliverable, reminders_sent=sent,
                                  last_call_sent=last_call)


def test_reminder_slots_stop_before_the_last_call() -> None:
    # Default policy: reminders on days 3 and 7; day 12 is the last call itself (14 - 2).
    assert timeline.reminder_times(T0, T0 + 14 * DAY, P) == [T0 + 3 * DAY, T0 + 7 * DAY]
    assert timeline.last_call_at(T0 + 14 * DAY, P) == T0 + 12 * DAY
    one_day_warning = timeline.Policy(warn_before_days=1)
    assert timeline.reminder_times(T0, T0 + 14 * DAY, one_day_warning) == [T0 + 3 * DAY, T0 + 7 * DAY, T0 + 12 * DAY]


def test_after_a_long_outage_only_the_most_recent_reminder_is_due() -> None:
    due = timeline.due_for_party(_progress(), T0, T0 + 14 * DAY, P, T0 + 9 * DAY)
    assert due == timeline.PartyDue(reminder=True, reminders_sent=2)
    again = timeline.due_for_party(_progress(sent=2), T0, T0 + 14 * DAY, P, T0 + 9 * DAY + timedelta(minutes=1))
    assert not again.reminder and not again.last_call


def test_decided_or_unreachable_parties_get_nothing() -> None:
    assert not timeline.due_for_party(_progress(pending=False), T0, T0 + 14 * DAY, P, T0 + 3 * DAY).reminder
    assert not timeline.due_for_party(_progress(deliverable=False), T0, T0 + 14 * DAY, P, T0 + 3 * DAY).reminder


def test_next_due_is_the_earliest_pending_thing() -> None:
    assert timeline.next_due(T0, T0 + 14 * DAY, P, [_progress()]) == T0 + 3 * DAY
    assert timeline.next_due(T0, T0 + 14 * DAY, P, [_progress(sent=2)]) == T0 + 12 * DAY
    assert timeline.next_due(T0, T0 + 14 * DAY, P, [_progress(sent=2, last_call=True)]) == T0 + 14 * DAY
    assert timeline.next_due(T0, T0 + 14 * DAY, P, [_progress(pending=False)]) == T0 + 14 * DAY


# -- whole timelines through the service and the database ------------------------------------------


def _world(app: App) -> None:
    registry.add_account(app, "acme", "customer", "Acme", ["alice@acme.example.com"], "fr", "Europe/Paris")
    registry.add_account(app, "vendor", "isv", "Vendor", ["deals@vendor.example.com"], "en", "America/New_York")
    registry.add_account(app, "r2", "reseller", "R2", ["ops@r2.example.com"], "de", "Europe/Berlin")
    registry.add_entitlement(app, "ent-1", "Analytics", "acme", "vendor")


BOTH_BACKENDS = True  # tests/conftest.py runs the database tests on SQLite and on PostgreSQL


@pytest.fixture
def quiet_app(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    app = open_app(make_config(tmp_path, None, database={"url": database_url}), upgrade=True)
    _world(app)
    yield app
    app.store.close()


def mails(app: App, since: int = 0) -> list[tuple[str, str]]:
    """(kind, first recipient) of outbox rows after id `since`."""
    with app.store.read() as session:
        rows = session.exec(select(OutboundMessage).where(col(OutboundMessage.id) > since)
                            .order_by(col(OutboundMessage.id)))
        return [(r.kind, r.recipients[0]) for r in rows]


def last_id(app: App) -> int:
    with app.store.read() as session:
        return session.exec(select(OutboundMessage.id).order_by(col(OutboundMessage.id).desc())).first() or 0


def approve(app: App, tid: str, address: str) -> str:
    with app.store.read() as session:
        rows = session.exec(select(OutboundMessage).where(OutboundMessage.transfer_id == tid,
                                                          OutboundMessage.kind == "confirmation"))
        row = next(r for r in rows if address in r.recipients)
        raw = raw_of(app, row.id or 0)
    conf = Received(row.envelope_from, tuple(row.recipients), raw,
                    BytesParser(policy=policy.default).parsebytes(raw))  # type: ignore[arg-type]
    msg = reply(conf, address, "APPROVE")
    inbound = store_inbound(app, msg.as_bytes(), address, [reply_address(conf)], "127.0.0.1")
    return read_inbound(app, inbound).outcome


def test_reminders_last_call_and_expiry_over_fourteen_days(quiet_app: App) -> None:
    app = quiet_app
    with freeze_time(T0) as clock:
        tid = request_transfer(app, "ent-1", "r2")
        assert [k for k, _ in mails(app)] == ["confirmation"] * 3
        clock.move_to(T0 + DAY)
        assert approve(app, tid, "deals@vendor.example.com") == "approved"
        mark = last_id(app)
        clock.move_to(T0 + 2 * DAY)
        assert sweep(app, now()) == 0 and mails(app, mark) == []
        clock.move_to(T0 + 3 * DAY)
        sweep(app, now())
        assert sorted(mails(app, mark)) == [("reminder", "alice@acme.example.com"), ("reminder", "ops@r2.example.com")]
        mark = last_id(app)
        sweep(app, now() + timedelta(minutes=1))
        assert mails(app, mark) == [], "a reminder is sent once"
        clock.move_to(T0 + 7 * DAY)
        sweep(app, now())
        assert sorted(mails(app, mark)) == [("reminder", "alice@acme.example.com"), ("reminder", "ops@r2.example.com")]
        mark = last_id(app)
        clock.move_to(T0 + 10 * DAY)
        assert approve(app, tid, "ops@r2.example.com") == "approved"
        mark = last_id(app)
        clock.move_to(T0 + 12 * DAY)
        sweep(app, now())
        assert mails(app, mark) == [("last-call", "alice@acme.example.com")], "the last call, to the silent only"
        mark = last_id(app)
        clock.move_to(T0 + 14 * DAY - timedelta(seconds=1))
        sweep(app, now())
        assert transfer_detail(app, tid)["status"] == "pending"
        clock.move_to(T0 + 14 * DAY)
        assert sweep(app, now()) == 1
        detail = transfer_detail(app, tid)
        assert detail["status"] == "expired" and detail["entitlement"]["reseller"] is None
        sent = mails(app, mark)
        assert sorted(k for k, _ in sent if k == "expired") == ["expired"] * 3, "every party is told"
        assert ("operator-alert", "ops@marketplace.example.com") in sent, "and the operator"
        expired = [e for e in detail["events"] if e["kind"] == "expired"]
        assert expired and expired[0]["unanswered"] == ["customer"]
        # A new request may then be filed.
        assert request_transfer(app, "ent-1", "r2") != tid


def test_with_a_shorter_warning_the_day_twelve_reminder_and_the_warning_are_separate(tmp_path: Path,
                                                                                    database_url: str) -> None:
    app = open_app(make_config(tmp_path, None, workflow={"warn_before_days": 1}, database={"url": database_url}),
                   upgrade=True)
    _world(app)
    with freeze_time(T0) as clock:
        request_transfer(app, "ent-1", "r2")
        kinds = {}
        for day in (3, 7, 12, 13):
            mark = last_id(app)
            clock.move_to(T0 + day * DAY)
            sweep(app, now())
            kinds[day] = sorted({k for k, _ in mails(app, mark)})
        assert kinds == {3: ["reminder"], 7: ["reminder"], 12: ["reminder"], 13: ["last-call"]}
    app.store.close()


def test_an_approval_on_day_thirteen_completes_it(quiet_app: App) -> None:
    app = quiet_app
    with freeze_time(T0) as clock:
        tid = request_transfer(app, "ent-1", "r2")
        clock.move_to(T0 + 13 * DAY)
        sweep(app, now())
        for address in ("alice@acme.example.com", "deals@vendor.example.com", "ops@r2.example.com"):
            assert approve(app, tid, address) == "approved"
        assert transfer_detail(app, tid)["status"] == "completed"
        clock.move_to(T0 + 15 * DAY)
        assert sweep(app, now()) == 0
        assert transfer_detail(app, tid)["status"] == "completed"


def test_reminders_show_the_deadline_in_the_partys_time_zone(quiet_app: App) -> None:
    app = quiet_app
    with freeze_time(T0) as clock:
        request_transfer(app, "ent-1", "r2")
        mark = last_id(app)
        clock.move_to(T0 + 3 * DAY)
        sweep(app, now())
        with app.store.read() as session:
            rows = list(session.exec(select(OutboundMessage).where(col(OutboundMessage.id) > mark)))
            raws = {r.recipients[0]: raw_of(app, r.id or 0) for r in rows}
        texts = {to: BytesParser(policy=policy.default).parsebytes(raw).get_body(("plain",)).get_content()
                 for to, raw in raws.items()}
        assert "(Europe/Paris)" in texts["alice@acme.example.com"]
        assert "(America/New_York)" in texts["deals@vendor.example.com"]
        assert "(Europe/Berlin)" in texts["ops@r2.example.com"]
        # 14 days after 09:00 UTC is 10:00 in Paris (winter time) and 04:00 in New York.
        assert "10:00" in texts["alice@acme.example.com"]
        assert "4:00" in texts["deals@vendor.example.com"]


def test_a_daemon_down_from_day_two_to_day_nine_sends_one_reminder_per_pending_party(
    tmp_path: Path, sink: MailSink, database_url: str,
) -> None:
    app = open_app(make_config(tmp_path, sink.port, database={"url": database_url}), upgrade=True)
    _world(app)
    with freeze_time(T0, tick=True, real_asyncio=True) as clock:
        tid = request_transfer(app, "ent-1", "r2")
        first = RunningDaemon(app).start()
        sink.wait_for(lambda ms: len(ms) == 3)
        clock.move_to(T0 + 2 * DAY)
        first.stop()
        clock.move_to(T0 + 9 * DAY)
        second = RunningDaemon(app).start()
        try:
            sink.wait_for(lambda ms: sum(m.message["X-Transferbot-Kind"] == "reminder" for m in ms) >= 3)
            wait_until(lambda: all(r == "sent" for r in _statuses(app)), what="outbox drained")
            reminders = [m for m in sink.unique() if m.message["X-Transferbot-Kind"] == "reminder"]
            assert sorted(m.rcpt_tos[0] for m in reminders) == [
                "alice@acme.example.com", "deals@vendor.example.com", "ops@r2.example.com"]
            for m in reminders:
                assert m.message["In-Reply-To"], "threaded under the confirmation"
                assert tid in m.subject
        finally:
            second.stop()
        with app.store.read() as session:
            assert {p.reminders_sent for p in session.exec(select(Party))} == {2}
    app.store.close()


def _statuses(app: App) -> list[str]:
    with app.store.read() as session:
        return [r.status for r in session.exec(select(OutboundMessage))]
