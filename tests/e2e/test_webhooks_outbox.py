"""Webhook events as outbox rows: written in the transaction of the change that causes them, one delivery per
endpoint that wants them, delivered by the daemon with retries, given up after their age, the endpoint disabled
by a 410, refused on private networks unless allowed, taken over when a daemon dies, made once with two daemons."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from tests.conftest import make_config, populate
from tests.helpers import RunningDaemon, wait_until
from tests.receiver import Receiver, verified
from transferbot.app import controls as operator
from transferbot.app import sweep, webhooks
from transferbot.app.context import App, open_app
from transferbot.app.effects import transition
from transferbot.app.effects.facts import entitlement_facts, facts_of, lock_transfer, parties_of
from transferbot.app.transfers import request_in, request_transfer
from transferbot.config import Config
from transferbot.core import rules
from transferbot.core.clock import now
from transferbot.core.domain import Decision, Role
from transferbot.core.errors import Refusal
from transferbot.devtools.sink import MailSink
from transferbot.store.models import Entitlement, OutboundMessage, Party, WebhookDelivery, WebhookEndpoint, WebhookEvent


@pytest.fixture
def config(tmp_path: Path, sink: MailSink, database_url: str) -> Config:
    return make_config(tmp_path, sink.port, webhooks={"allow_private_networks": True, "retry_first_seconds": 0.2},
                       database={"poll_seconds": 0.5, "url": database_url})



BOTH_BACKENDS = True  # tests/conftest.py runs the database tests on SQLite and on PostgreSQL


def decide(app: App, tid: str, role: Role, decision: Decision, reason: str = "") -> None:
    """A party's decision through the one transition, as the reader records it."""
    def work(session: Session) -> None:
        t = lock_transfer(session, tid)
        assert t is not None
        parties = parties_of(session, tid)
        ent = session.get(Entitlement, t.entitlement_id)
        assert ent is not None
        change = rules.record_decision(facts_of(session, t, parties), role, decision, entitlement_facts(ent), reason)
        transition.apply(app, session, t, change, now(), parties=parties)
    app.store.run(work)


def events(app: App, tid: str | None = None) -> list[WebhookEvent]:
    with app.store.read() as session:
        query = select(WebhookEvent).order_by(col(WebhookEvent.id))
        if tid:
            query = query.where(WebhookEvent.transfer_id == tid)
        return list(session.exec(query))


def deliveries(app: App) -> list[WebhookDelivery]:
    with app.store.read() as session:
        return list(session.exec(select(WebhookDelivery).order_by(col(WebhookDelivery.id))))


def test_each_change_writes_its_events_with_the_transfers_snapshot(world: App) -> None:
    webhooks.add_endpoint(world, "https://billing.example.com/hooks")
    tid = request_transfer(world, "ent-r1", "r2")
    decide(world, tid, Role.CUSTOMER, Decision.APPROVED)
    decide(world, tid, Role.ISV, Decision.APPROVED)
    decide(world, tid, Role.CURRENT_RESELLER, Decision.APPROVED)
    decide(world, tid, Role.NEW_RESELLER, Decision.APPROVED)
    declined = request_transfer(world, "ent-direct", "r1")
    decide(world, declined, Role.ISV, Decision.DECLINED, "not now")
    cancelled = request_transfer(world, "ent-globex", None)
    operator.cancel_transfer(world, cancelled, "changed our minds")
    expiring = request_transfer(world, "ent-r1", None)
    sweep.sweep(world, now() + timedelta(days=30))

    def types(t: str) -> list[str]:
        return [e.type for e in events(world, t)]

    assert types(tid) == ["transfer.requested"] + ["transfer.party_decided"] * 3 + [
        "transfer.party_decided", "transfer.completed"]
    assert types(declined) == ["transfer.requested", "transfer.party_decided", "transfer.declined"]
    assert types(cancelled) == ["transfer.requested", "transfer.cancelled"]
    assert types(expiring) == ["transfer.requested", "transfer.expired"]
    completed = json.loads(events(world, tid)[-1].payload)
    assert completed["type"] == "transfer.completed" and completed["data"]["entitlement"]["reseller"] == "r2"
    assert completed["data"]["status"] == "completed"
    # The payload is a snapshot: the first event still says what was true when it was written.
    first = json.loads(events(world, tid)[0].payload)
    assert first["data"]["status"] == "pending" and first["data"]["entitlement"]["reseller"] == "r1"
    assert "webhooks" not in first["data"]
    # No reply token in any payload.
    with world.store.read() as session:
        tokens = list(session.exec(select(Party.token)))
    assert all(token not in e.payload.decode() for e in events(world) for token in tokens)
    assert len(deliveries(world)) == len(events(world)) and {d.status for d in deliveries(world)} == {"queued"}


def test_an_event_exists_exactly_when_its_change_was_committed(world: App) -> None:
    webhooks.add_endpoint(world, "https://billing.example.com/hooks")

    def filed_then_failed(session: Session) -> None:
        request_in(session, world, "ent-r1", "r2", "", now())
        raise RuntimeError("the transaction fails after the change")

    with pytest.raises(RuntimeError):
        world.store.run(filed_then_failed)
    assert events(world) == [] and deliveries(world) == []
    with world.store.read() as session:
        assert session.exec(select(OutboundMessage)).first() is None, "nor its mail"


def test_endpoints_get_the_event_types_and_the_isv_they_asked_for(world: App) -> None:
    from transferbot.app import registry

    registry.add_account(world, "other-isv", "isv", "Other", ["o@other.example.com"])
    everything, _ = webhooks.add_endpoint(world, "https://a.example.com/")
    completions, _ = webhooks.add_endpoint(world, "https://b.example.com/", ["transfer.completed"])
    vendor_only, _ = webhooks.add_endpoint(world, "https://c.example.com/", isv="vendor")
    other_only, _ = webhooks.add_endpoint(world, "https://d.example.com/", isv="other-isv")
    removed, _ = webhooks.add_endpoint(world, "https://e.example.com/")
    webhooks.remove_endpoint(world, removed.id or 0)
    tid = request_transfer(world, "ent-direct", "r1")
    for role in (Role.CUSTOMER, Role.ISV, Role.NEW_RESELLER):
        decide(world, tid, role, Decision.APPROVED)
    by_endpoint: dict[int, list[str]] = {}
    for d in deliveries(world):
        by_endpoint.setdefault(d.endpoint_id, []).append(d.type)
    assert len(by_endpoint[everything.id or 0]) == 5 and by_endpoint[vendor_only.id or 0] == by_endpoint[
        everything.id or 0]
    assert by_endpoint[completions.id or 0] == ["transfer.completed"]
    assert (other_only.id or 0) not in by_endpoint and (removed.id or 0) not in by_endpoint
    assert [e["id"] for e in webhooks.list_endpoints(world)] == [everything.id, completions.id, vendor_only.id,
                                                                  other_only.id]


def test_endpoint_urls_and_event_types_are_checked(world: App, tmp_path: Path) -> None:
    for url, words in (("ftp://x.example.com/", "http:// or https://"), ("https://user:pw@x.example.com/", "")):
        with pytest.raises(Refusal, match="webhook URL refused") as caught:
            webhooks.add_endpoint(world, url)
        assert words in str(caught.value)
    with pytest.raises(Refusal, match="unknown event type"):
        webhooks.add_endpoint(world, "https://x.example.com/", ["transfer.done"])
    with pytest.raises(Refusal, match="not an isv"):
        webhooks.add_endpoint(world, "https://x.example.com/", isv="acme")
    (tmp_path / "strict").mkdir()
    strict = open_app(make_config(tmp_path / "strict", webhooks={"allow_private_networks": False}), upgrade=True)
    try:
        with pytest.raises(Refusal, match="loopback"):
            webhooks.add_endpoint(strict, "http://127.0.0.1:8080/hook")
        with pytest.raises(Refusal, match="private"):
            webhooks.add_endpoint(strict, "http://10.1.2.3/hook")
    finally:
        strict.store.close()


def test_a_private_address_behind_a_name_is_refused_at_delivery(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "strict").mkdir()
    config = make_config(tmp_path / "strict", webhooks={"retry_first_seconds": 0.2})
    app = open_app(config, upgrade=True)
    populate(app)
    webhooks.add_endpoint(app, receiver.url("/hook", host="localhost"))
    d = RunningDaemon(app).start()
    try:
        request_transfer(app, "ent-r1", "r2")
        row = wait_until(lambda: (rows := deliveries(app)) and rows[0].attempts >= 1 and rows[0], what="an attempt")
        assert row.status == "queued" and "refused" in row.last_error and "allow_private_networks" in row.last_error
        assert receiver.hooks.hits == [], "not a byte reached it"
    finally:
        d.stop()
        app.store.close()


def test_retries_back_off_and_give_up_after_the_events_age(tmp_path: Path, sink: MailSink,
                                                          receiver: Receiver) -> None:
    config = make_config(tmp_path, sink.port, webhooks={"allow_private_networks": True, "retry_first_seconds": 0.2,
                                                        "max_age_hours": 1.5 / 3600},
                         database={"poll_seconds": 0.5})
    app = open_app(config, upgrade=True)
    populate(app)
    receiver.hooks.answer("/down", *([503] * 100))
    webhooks.add_endpoint(app, receiver.url("/down"), ["transfer.requested"])
    d = RunningDaemon(app).start()
    try:
        request_transfer(app, "ent-r1", "r2")
        row = wait_until(lambda: (rows := deliveries(app)) and rows[0].status == "failed" and rows[0], timeout=15,
                         what="the delivery to give up")
        assert row.attempts >= 3 and row.last_error.startswith(f"gave up after {row.attempts} attempts")
        gaps = [h.headers["webhook-timestamp"] for h in receiver.hooks.to("/down")]
        assert len(gaps) == row.attempts and len({h.webhook_id for h in receiver.hooks.to("/down")}) == 1
        assert [a["status_code"] for a in row.history] == [503] * row.attempts
        alert = wait_until(lambda: [m for m in sink.messages if m.message["X-Transferbot-Kind"] == "operator-alert"
                                    and "webhook delivery failed" in m.subject], what="the operator told")
        assert alert
        # `webhook retry` queues it again: same event id, same bytes.
        receiver.hooks.answer("/down")
        operator.retry_webhook(app, row.id or 0)
        done = wait_until(lambda: (rows := deliveries(app)) and rows[0].status == "delivered" and rows[0],
                          what="the retried delivery")
        assert done.round_attempts == 1 and done.attempts == row.attempts + 1
        assert receiver.hooks.to("/down")[-1].body == receiver.hooks.to("/down")[0].body
    finally:
        d.stop()
        app.store.close()


def test_a_410_disables_the_endpoint_and_drops_its_queue(daemon: RunningDaemon, receiver: Receiver,
                                                         sink: MailSink) -> None:
    app = daemon.app
    receiver.hooks.answer("/gone", 410)
    endpoint, _ = webhooks.add_endpoint(app, receiver.url("/gone"))
    request_transfer(app, "ent-r1", "r2")
    wait_until(lambda: webhooks.list_endpoints(app)[0]["state"] == "disabled", what="the endpoint disabled")
    assert "410" in (webhooks.list_endpoints(app)[0]["disabled_reason"] or "")
    request_transfer(app, "ent-direct", "r1")  # no more events for it
    assert all(d.status == "failed" for d in deliveries(app)) and len(deliveries(app)) == 1
    assert len(receiver.hooks.hits) == 1
    with pytest.raises(Refusal, match="disabled"):
        operator.retry_webhook(app, deliveries(app)[0].id or 0)
    assert endpoint.id is not None


def test_a_dead_daemons_deliveries_are_taken_over(world: App, receiver: Receiver, backend: str) -> None:
    endpoint, secret = webhooks.add_endpoint(world, receiver.url("/hook"))
    request_transfer(world, "ent-r1", "r2")
    # A daemon claimed it and died: its lease is all that is left of it.
    claimed = world.store.run(webhooks.claim_due, "dead-host:1:abc", now(), 3.0, 10)
    assert [c.type for c in claimed] == ["transfer.requested"]
    d = RunningDaemon(world).start()
    try:
        if backend == "postgresql":  # several daemons: another one's lease holds until it runs out
            assert deliveries(world)[0].lease_owner == "dead-host:1:abc", "not taken while the lease holds"
        # (SQLite runs one daemon: what a previous run had claimed is taken back at start.)
        row = wait_until(lambda: (rows := deliveries(world)) and rows[0].status == "delivered" and rows[0],
                         what="the delivery taken over")
        assert d.daemon is not None and d.daemon.webhooks.taken_over == 1
        assert row.history[-1]["daemon"] == d.daemon.owner
        assert verified(secret, receiver.hooks.to("/hook")[0])["type"] == "transfer.requested"
    finally:
        d.stop()
    assert endpoint.id is not None


def test_with_two_daemons_each_delivery_is_made_once(world: App, receiver: Receiver) -> None:
    from transferbot.app import registry

    webhooks.add_endpoint(world, receiver.url("/hook"))
    one, two = RunningDaemon(world).start(), RunningDaemon(world).start()
    try:
        for n in range(12):
            registry.add_entitlement(world, f"ent-m{n}", "Many", "acme", "vendor")
            tid = request_transfer(world, f"ent-m{n}", "r1")
            operator.cancel_transfer(world, tid, "just a test")
        wait_until(lambda: len(deliveries(world)) == 24 and all(d.status == "delivered" for d in deliveries(world)),
                   timeout=20, what="every delivery made")
        ids = [h.webhook_id for h in receiver.hooks.to("/hook")]
        assert len(ids) == 24 and len(set(ids)) == 24, "each event delivered once"
        makers = {d.history[-1]["daemon"] for d in deliveries(world)}
        assert makers <= {one.daemon.owner, two.daemon.owner}  # type: ignore[union-attr]
    finally:
        one.stop()
        two.stop()


def test_removing_an_endpoint_drops_its_queue(world: App) -> None:
    endpoint, _ = webhooks.add_endpoint(world, "https://billing.example.com/hooks")
    request_transfer(world, "ent-r1", "r2")
    assert webhooks.remove_endpoint(world, endpoint.id or 0) == 1
    assert [d.status for d in deliveries(world)] == ["failed"] and deliveries(world)[0].last_error == "endpoint removed"
    with pytest.raises(Refusal, match="unknown webhook endpoint"):
        webhooks.remove_endpoint(world, endpoint.id or 0)
    with world.store.read() as session:
        assert session.get(WebhookEndpoint, endpoint.id).removed_at is not None  # type: ignore[union-attr]


def test_the_dispatcher_sleeps_until_a_delivery_can_be_claimed(world: App) -> None:
    """A delivery under way (leased) is not due before its lease ends: no polling while it is in flight."""
    webhooks.add_endpoint(world, "https://billing.example.com/hooks")
    request_transfer(world, "ent-r1", "r2")
    with world.store.read() as session:
        due = webhooks.next_due(session)
    assert due is not None and due <= now()
    world.store.run(webhooks.claim_due, "me", now(), 60.0, 10)
    with world.store.read() as session:
        leased = webhooks.next_due(session)
    assert leased is not None and timedelta(seconds=55) < leased - now() <= timedelta(seconds=60)
