"""Webhook endpoints, the events a change causes, and their deliveries: an outbox for HTTP.

An event is written by ``transition.apply`` in the transaction of the change that causes it, with
its payload rendered there and then (``{"type", "timestamp", "data"}``, ``data`` the transfer as the
endpoint's audience sees it in the API: the operator's view for an endpoint added for every ISV, the
ISV's for one scoped to an ISV): a snapshot, so every attempt, on any daemon, sends the same bytes
under the same ``webhook-id``. It is queued as one delivery per endpoint that wants it (its event
types, its ISV); an event both audiences want is two, each with its own id and payload. A daemon claims due deliveries under a lease (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), delivers them (webhooks.delivery) and records each attempt here, which ends the lease;
a daemon that dies leaves leases that run out, and another takes the deliveries. Only a crash between
a delivery and its record delivers the same event twice, with the same id: receivers deduplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.effects.mail import alert_operator
from transferbot.app.effects.work import Work
from transferbot.app.queries.record import ISV, OPERATOR, iso, view_for
from transferbot.core.domain import AccountKind, DeliveryStatus, Role, TransferStatus
from transferbot.core.errors import Conflict, Refusal, Unknown
from transferbot.core.rules import Change
from transferbot.outbound.webhooks import Attempt, EventType, new_event_id, new_secret, next_attempt, payload
from transferbot.outbound.webhooks.delivery import _origin as origin_of
from transferbot.outbound.webhooks.events import event_type
from transferbot.outbound.webhooks.urls import UrlError, validate_url
from transferbot.store.models import Account, Party, Transfer, WebhookDelivery, WebhookEndpoint, WebhookEvent, table_of
from transferbot.store.paging import Page, decode_id, page_of
from transferbot.store.queues import WEBHOOKS

log = logging.getLogger(__name__)

HISTORY = 60  # attempts kept per delivery (three days of backoff make about 25)
TERMINAL = {TransferStatus.COMPLETED: EventType.COMPLETED, TransferStatus.DECLINED: EventType.DECLINED,
            TransferStatus.EXPIRED: EventType.EXPIRED, TransferStatus.CANCELLED: EventType.CANCELLED}


# -- endpoints ---------------------------------------------------------------------------------------------------

def endpoint_summary(e: WebhookEndpoint) -> dict[str, Any]:
    """One endpoint for `webhook list` (never its secret: that is shown once, when it is added)."""
    state = "removed" if e.removed_at else ("disabled" if e.disabled_at else "active")
    return {"id": e.id, "url": e.url, "events": list(e.event_types) or "all", "isv": e.isv_id, "state": state,
            "created_at": iso(e.created_at), "disabled_at": iso(e.disabled_at),
            "disabled_reason": e.disabled_reason or None}


def check_event_types(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        try:
            kind = event_type(value.strip()).value
        except ValueError as exc:
            raise Refusal(str(exc)) from None
        if kind not in out:
            out.append(kind)
    return out


def add_endpoint(app: App, url: str, events: Sequence[str] = (), isv: str | None = None,
                 now: datetime | None = None) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown this once)."""
    try:
        url = validate_url(url.strip(), allow_private_networks=app.config.webhooks.allow_private_networks)
    except UrlError as exc:
        raise Refusal(f"webhook URL refused: {exc}") from None
    kinds = check_event_types(events)
    secret = new_secret()

    def work(session: Session) -> WebhookEndpoint:
        if isv is not None:
            account = session.get(Account, isv)
            if account is None:
                raise Unknown(f"unknown account {isv!r} (--isv)")
            if account.kind != AccountKind.ISV.value:
                raise Refusal(f"account {isv} is a {account.kind}, not an isv (--isv)")
        row = WebhookEndpoint(url=url, secret=secret, event_types=kinds, isv_id=isv,
                              created_at=now or datetime.now(UTC))
        session.add(row)
        session.flush()
        return row

    row = app.store.run(work)
    log.info("webhook endpoint #%s added: %s (%s)%s", row.id, origin_of(url), ", ".join(kinds) or "all events",
             f" for isv {isv}" if isv else "")
    return row, secret


def list_endpoints(app: App, include_removed: bool = False) -> list[dict[str, Any]]:
    with app.store.read() as session:
        query = select(WebhookEndpoint).order_by(col(WebhookEndpoint.id))
        if not include_removed:
            query = query.where(col(WebhookEndpoint.removed_at).is_(None))
        return [endpoint_summary(e) for e in session.exec(query)]


def remove_endpoint(app: App, endpoint_id: int, now: datetime | None = None) -> int:
    """Stop delivering to an endpoint; its deliveries still queued fail. Returns how many did."""
    at = now or datetime.now(UTC)

    def work(session: Session) -> int:
        row = session.get(WebhookEndpoint, endpoint_id)
        if row is None or row.removed_at is not None:
            raise Unknown(f"unknown webhook endpoint #{endpoint_id}")
        row.removed_at = at
        session.add(row)
        return _fail_queued(session, endpoint_id, "endpoint removed")

    dropped = app.store.run(work)
    log.info("webhook endpoint #%s removed; %d queued deliveries dropped", endpoint_id, dropped)
    return dropped


def _fail_queued(session: Session, endpoint_id: int, why: str) -> int:
    table = table_of(WebhookDelivery)
    result = session.connection().execute(
        sa.update(table).where(table.c.endpoint_id == endpoint_id, table.c.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.FAILED, last_error=why, lease_owner="", lease_until=None))
    return int(result.rowcount or 0)


# -- events, written with the change that causes them -----------------------------------------------------------

def event_types_of(change: Change, before: str) -> list[EventType]:
    """The events a change causes, in order: requested, each decision, then the closing status."""
    kinds: list[EventType] = []
    if any(kind == "requested" for kind, _ in change.events):
        kinds.append(EventType.REQUESTED)
    kinds += [EventType.PARTY_DECIDED] * len(change.decisions)
    if change.status is not None and change.status.value != before and change.status in TERMINAL:
        kinds.append(TERMINAL[change.status])
    return kinds


@dataclass(frozen=True)
class ActiveEndpoint:
    """An endpoint events may be queued for: what deciding whether it wants one needs."""

    id: int
    isv_id: str | None
    event_types: tuple[str, ...]


def _active_endpoints(work: Work) -> list[ActiveEndpoint]:
    """The endpoints events may be queued for, read once per unit of work (adding, removing or disabling
    one is a transaction of its own, with no Work)."""
    if work.endpoints is None:
        work.endpoints = [ActiveEndpoint(e.id or 0, e.isv_id, tuple(e.event_types)) for e in work.session.exec(
            select(WebhookEndpoint).where(col(WebhookEndpoint.removed_at).is_(None),
                                          col(WebhookEndpoint.disabled_at).is_(None)))]
    return work.endpoints


def audience_of(isv_id: str | None) -> str:
    """Whose view of a transfer an endpoint gets: one scoped to an ISV is that ISV's, and sees what its key
    sees; one the operator added for every ISV gets the operator's."""
    return OPERATOR if isv_id is None else ISV


def queue_events(app: App, work: Work, t: Transfer, change: Change, before: str, parties: Sequence[Party],
                 now: datetime) -> int:
    """Write the events ``change`` causes, one delivery per endpoint that wants each (in the change's unit
    of work, ``work``); returns how many deliveries were queued. Nothing is built when no endpoint wants
    them."""
    kinds = event_types_of(change, before)
    if not kinds:
        return 0
    isv = next((p.account_id for p in parties if p.role == Role.ISV.value), None)
    endpoints = [e for e in _active_endpoints(work) if e.isv_id in (None, isv)]
    if not endpoints:
        return 0
    session = work.session
    work.flush()  # the change's own rows (events, mail) are part of the snapshot
    session.flush()
    data: dict[str, dict[str, Any]] = {}  # each audience's view, built once
    queued = 0
    for kind in kinds:
        for audience in (OPERATOR, ISV):
            wanted = [e for e in endpoints if audience_of(e.isv_id) == audience
                      and (not e.event_types or kind.value in e.event_types)]
            if not wanted:
                continue
            if audience not in data:
                data[audience] = view_for(session, t, audience, work.names)
            event = WebhookEvent(event_id=new_event_id(), type=kind.value, transfer_id=t.id, created_at=now,
                                 payload=payload(kind, now, data[audience]))
            session.add(event)
            session.flush()
            for endpoint in wanted:
                session.add(WebhookDelivery(event_id=event.id or 0, endpoint_id=endpoint.id, transfer_id=t.id,
                                            type=kind.value, created_at=now, queued_at=now, status=DeliveryStatus.QUEUED,
                                            next_attempt_at=now))
                queued += 1
            log.info("%s: webhook %s %s (%s view) queued for %d endpoint(s)", t.id, event.event_id, kind.value,
                     audience, len(wanted))
    if queued:
        app.store.notify(session, WEBHOOKS.channel)
    return queued


# -- claiming and recording (the daemon's dispatcher) ------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    """A delivery to attempt: where, with which secret, the event's id and its bytes."""

    id: int
    event_id: str
    type: str
    url: str
    secret: str
    body: bytes
    attempts: int
    taken_over: bool = False


@dataclass(frozen=True)
class Result:
    delivery_id: int
    attempt: Attempt
    at: datetime


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def claim_due(session: Session, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries to ``owner`` (to endpoints still active)."""
    leases = WEBHOOKS.claim(session, owner, now, lease_seconds, limit)
    if not leases:
        return []
    taken = {lease.id for lease in leases if lease.taken_over}
    d, e, v = WEBHOOKS.table, table_of(WebhookEndpoint), table_of(WebhookEvent)
    rows = session.connection().execute(
        sa.select(d.c.id, d.c.type, d.c.attempts, v.c.event_id, v.c.payload, e.c.url, e.c.secret)
        .select_from(d.join(v, v.c.id == d.c.event_id).join(e, e.c.id == d.c.endpoint_id))
        .where(d.c.id.in_([lease.id for lease in leases])).order_by(*WEBHOOKS.ordering()))
    return [Claimed(r.id, r.event_id, r.type, r.url, r.secret, bytes(r.payload), r.attempts, taken_over=r.id in taken)
            for r in rows]


def next_due(session: Session) -> datetime | None:
    """When the soonest queued delivery (to an active endpoint) can next be claimed."""
    return WEBHOOKS.next_due(session)


def release(session: Session, owner: str, ids: Sequence[int]) -> None:
    """Give back deliveries claimed but not attempted (a daemon stopping): due again at once for any daemon."""
    WEBHOOKS.release(session, owner, ids)


def record(session: Session, app: App, owner: str, results: Sequence[Result]) -> None:
    """Write what attempts came to: delivered, due again after a backoff, given up, or the endpoint disabled."""
    cfg = app.config.webhooks
    for r in results:
        row = session.exec(select(WebhookDelivery).where(WebhookDelivery.id == r.delivery_id)
                           .with_for_update()).first()
        if row is None:
            continue
        a = r.attempt
        entry = {"at": iso(r.at), "daemon": owner, "outcome": a.outcome, "status_code": a.status_code,
                 "error": a.error or None, "elapsed_ms": a.elapsed_ms}
        row.history = [*row.history, entry][-HISTORY:]
        row.attempts += 1
        row.round_attempts += 1
        row.last_attempt_at, row.last_status_code = r.at, a.status_code
        row.last_error, row.last_response = a.error, a.response_excerpt
        if row.lease_owner == owner:
            row.lease_owner, row.lease_until = "", None
        if row.status != DeliveryStatus.QUEUED:
            session.add(row)  # delivered or given up meanwhile (a retry by hand raced it): the attempt is kept
            continue
        if a.outcome == "delivered":
            row.status, row.delivered_at = DeliveryStatus.DELIVERED, r.at
        elif a.outcome == "retry":
            due = next_attempt(row.round_attempts, _aware(row.queued_at), r.at, retry_after=a.retry_after,
                               max_age=timedelta(hours=cfg.max_age_hours),
                               first=timedelta(seconds=cfg.retry_first_seconds))
            if due is None:
                row.status = DeliveryStatus.FAILED
                row.last_error = f"gave up after {row.round_attempts} attempts over {cfg.max_age_hours:g} h: {a.error}"
                _alert(app, session, "webhook delivery failed", row, row.last_error, r.at)
            else:
                row.next_attempt_at = due
        elif a.outcome == "disable":
            row.status = DeliveryStatus.FAILED
            _disable(app, session, row, a.error, r.at)
        else:
            row.status = DeliveryStatus.FAILED
            _alert(app, session, "webhook delivery failed", row, a.error, r.at)
        session.add(row)


def _disable(app: App, session: Session, row: WebhookDelivery, why: str, at: datetime) -> None:
    endpoint = session.get(WebhookEndpoint, row.endpoint_id)
    if endpoint is None or endpoint.disabled_at is not None:
        return
    endpoint.disabled_at, endpoint.disabled_reason = at, why[:500]
    session.add(endpoint)
    session.flush()
    dropped = _fail_queued(session, endpoint.id or 0, f"endpoint disabled: {why}"[:500])
    log.warning("webhook endpoint #%s disabled (%s); %d queued deliveries dropped", endpoint.id, why, dropped)
    _alert(app, session, "webhook endpoint disabled", row, why, at)


def _alert(app: App, session: Session, name: str, row: WebhookDelivery, why: str, at: datetime) -> None:
    endpoint = session.get(WebhookEndpoint, row.endpoint_id)
    where = f"#{row.endpoint_id} {origin_of(endpoint.url)}" if endpoint else f"#{row.endpoint_id}"
    facts = [("endpoint", where), ("delivery", f"#{row.id} {row.type}"), ("transfer", row.transfer_id or "-"),
             ("error", why)]
    alert_operator(app, session, name, facts, at)


# -- what the operator sees and does -----------------------------------------------------------------------------

def delivery_summary(row: WebhookDelivery, event_id: str, url: str) -> dict[str, Any]:
    return {"id": row.id, "event_id": event_id, "type": row.type, "endpoint": row.endpoint_id,
            "url": url, "transfer": row.transfer_id, "status": row.status, "attempts": row.attempts,
            "created_at": iso(row.created_at),
            "next_attempt_at": iso(row.next_attempt_at) if row.status == DeliveryStatus.QUEUED else None,
            "last_attempt_at": iso(row.last_attempt_at), "delivered_at": iso(row.delivered_at),
            "last_status_code": row.last_status_code, "last_error": row.last_error or None,
            "last_response": row.last_response or None, "history": list(row.history)}


def joined_deliveries() -> Any:
    return (select(WebhookDelivery, WebhookEvent.event_id, WebhookEndpoint.url)
            .join(WebhookEvent, col(WebhookEvent.id) == col(WebhookDelivery.event_id))
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id)))


def deliveries_of_transfer(session: Session, transfer_id: str) -> list[dict[str, Any]]:
    """The deliveries of a transfer's events, oldest first (for `show`)."""
    rows = session.exec(joined_deliveries().where(WebhookDelivery.transfer_id == transfer_id)
                        .order_by(col(WebhookDelivery.id)))
    return [delivery_summary(row, event_id, url) for row, event_id, url in rows]


def deliveries_page(app: App, endpoint_id: int | None = None, limit: int = 100, cursor: str | None = None) -> Page:
    """Deliveries, newest first, ``limit`` at a time before ``cursor``."""
    before = decode_id(cursor, "--cursor")
    with app.store.read() as session:
        if endpoint_id is not None and session.get(WebhookEndpoint, endpoint_id) is None:
            raise Unknown(f"unknown webhook endpoint #{endpoint_id}")
        query = joined_deliveries().order_by(col(WebhookDelivery.id).desc())
        count = select(sa.func.count()).select_from(WebhookDelivery)
        if endpoint_id is not None:
            query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
            count = count.where(WebhookDelivery.endpoint_id == endpoint_id)
        if before is not None:
            query = query.where(col(WebhookDelivery.id) < before)
        rows = list(session.exec(query.limit(limit)))
        items = [delivery_summary(row, event_id, url) for row, event_id, url in rows]
        more = session.exec(count.where(col(WebhookDelivery.id) < items[-1]["id"])).one() if items else 0
        return page_of(items, int(more))


def requeue_delivery(session: Session, app: App, delivery_id: int, at: datetime) -> WebhookDelivery:
    """A failed delivery queued again, due now, with a fresh three days (same event id, same bytes), in the
    caller's transaction (operator.retry_webhook records who asked)."""
    row = session.exec(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()).first()
    if row is None:
        raise Unknown(f"unknown webhook delivery #{delivery_id}")
    if row.status != DeliveryStatus.FAILED:
        raise Conflict(f"webhook delivery #{delivery_id} is {row.status}, not failed")
    endpoint = session.get(WebhookEndpoint, row.endpoint_id)
    if endpoint is None or endpoint.removed_at is not None:
        raise Conflict(f"webhook endpoint #{row.endpoint_id} was removed; add it again to deliver there")
    if endpoint.disabled_at is not None:
        raise Conflict(f"webhook endpoint #{row.endpoint_id} is disabled ({endpoint.disabled_reason}); remove "
                       f"it and add it again once the receiver wants webhooks")
    row.status, row.next_attempt_at, row.queued_at, row.round_attempts = DeliveryStatus.QUEUED, at, at, 0
    row.lease_owner, row.lease_until = "", None
    session.add(row)
    app.store.notify(session, WEBHOOKS.channel)
    return row
