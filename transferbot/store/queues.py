"""Leased queues: rows that daemons claim under a lease, written once for the inbox, the outbox and webhooks.

A daemon claims up to N due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so daemons claiming at the
same moment take different rows; SQLite has one writer, which store.single_daemon() makes sure of) and
leases them to itself (``lease_owner`` until ``lease_until``). Recording an attempt ends the lease (that
bookkeeping, what an attempt means, is the use case's, in app/); rows claimed but never attempted are
released, due again at once; a daemon that dies leaves leases that run out, and another daemon then takes
its rows (a takeover, which the claim reports). Each queue has its NOTIFY channel, which wakes the
daemons' loops when work is added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from transferbot.core.domain import DeliveryStatus, InboxState, OutboxStatus
from transferbot.store.models import InboundMessage, OutboundMessage, WebhookDelivery, WebhookEndpoint, table_of


@dataclass(frozen=True)
class Lease:
    """A row just claimed: its id, and whether another daemon's lease on it had run out."""

    id: int
    taken_over: bool


@dataclass(frozen=True)
class LeasedQueue:
    """One table used as a queue.

    A row is waiting while ``state`` is ``queued``; it is due once ``due`` has come (a NULL ``due`` is due
    at once where ``due_may_be_null``); it is claimable when due, not leased or its lease run out, and
    ``eligible`` (an extra condition, such as the webhook endpoint being active) holds. Claims take the
    rows in ``order``."""

    name: str
    table: sa.Table
    state: str
    queued: str
    due: str
    order: tuple[str, ...]
    channel: str
    due_may_be_null: bool = False
    eligible: Any = None  # a SQL condition on the table's rows, or None

    def _col(self, name: str) -> sa.Column[Any]:
        return self.table.c[name]

    def ordering(self) -> list[sa.Column[Any]]:
        """The claim's order, for the statements that then read the claimed rows."""
        return [self._col(name) for name in self.order]

    def _waiting(self) -> list[Any]:
        where: list[Any] = [self._col(self.state) == self.queued]
        if self.eligible is not None:
            where.append(self.eligible)
        return where

    def claim(self, session: Session, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Lease]:
        """Lease up to ``limit`` due rows to ``owner``, in the queue's order: two statements."""
        t, due = self.table, self._col(self.due)
        is_due = sa.or_(due.is_(None), due <= now) if self.due_may_be_null else due <= now
        query = (sa.select(t.c.id, t.c.lease_owner)
                 .where(*self._waiting(), is_due, sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now))
                 .order_by(*self.ordering()).limit(limit).with_for_update(skip_locked=True))
        conn = session.connection()
        claimed = list(conn.execute(query))
        if not claimed:
            return []
        conn.execute(sa.update(t).where(t.c.id.in_([int(i) for i, _ in claimed])).values(
            lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds)))
        return [Lease(int(i), bool(previous) and previous != owner) for i, previous in claimed]

    def release(self, session: Session, owner: str, ids: Sequence[int]) -> None:
        """Give back rows ``owner`` claimed but did not attempt (a daemon stopping): due again at once for any
        daemon. Rows recorded meanwhile, or leased to another, are left alone."""
        t = self.table
        session.connection().execute(sa.update(t).where(t.c.id.in_(list(ids)), t.c.lease_owner == owner,
                                                        self._col(self.state) == self.queued)
                                     .values(lease_owner="", lease_until=None))

    def next_due(self, session: Session) -> datetime | None:
        """When the soonest waiting row can next be claimed: when it is due, or when the lease someone holds
        on it ends (a dispatcher sleeps no longer than that, and does not spin while a row is under way)."""
        if self.due_may_be_null:
            raise TypeError(f"{self.name}: next_due needs a due time on every row")
        t, due = self.table, self._col(self.due)
        claimable = sa.case((t.c.lease_until > due, t.c.lease_until), else_=due)
        value = session.connection().execute(sa.select(sa.func.min(claimable)).where(*self._waiting())).scalar()
        if value is None:
            return None
        if isinstance(value, str):  # SQLite's min() hands back the stored text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def release_all(self, session: Session) -> int:
        """Clear every lease on the queue (whoever holds it); how many there were."""
        t = self.table
        result = session.connection().execute(sa.update(t).where(t.c.lease_owner != "")
                                              .values(lease_owner="", lease_until=None))
        return int(result.rowcount or 0)


_endpoints = table_of(WebhookEndpoint)
_deliveries = table_of(WebhookDelivery)

INBOX = LeasedQueue("inbound", table_of(InboundMessage), state="state", queued=InboxState.NEW.value,
                    due="next_read_at", due_may_be_null=True, order=("id",), channel="transferbot_inbound")
OUTBOX = LeasedQueue("outbox", table_of(OutboundMessage), state="status", queued=OutboxStatus.QUEUED.value,
                     due="next_attempt_at", order=("next_attempt_at", "id"), channel="transferbot_outbox")
WEBHOOKS = LeasedQueue("webhooks", _deliveries, state="status", queued=DeliveryStatus.QUEUED.value,
                       due="next_attempt_at", order=("next_attempt_at", "id"), channel="transferbot_webhooks",
                       # deliveries wait while their endpoint is disabled, and are not claimed
                       eligible=_deliveries.c.endpoint_id.in_(
                           sa.select(_endpoints.c.id).where(_endpoints.c.removed_at.is_(None),
                                                            _endpoints.c.disabled_at.is_(None))))
QUEUES = (INBOX, OUTBOX, WEBHOOKS)


def release_all(session: Session) -> dict[str, int]:
    """Clear every lease of every queue; how many there were, by queue.

    Only where one daemon runs (SQLite, which store.single_daemon() makes sure of): any lease found at
    start is a previous run's, so its work is due again at once rather than when the lease runs out."""
    return {queue.name: queue.release_all(session) for queue in QUEUES}
