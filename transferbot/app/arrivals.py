"""Inbound mail as it arrives: stored durably by the edge, then claimed for reading.

``insert_arrivals`` is all an SMTP session waits for: two inserts per message in a transaction that
commits every message waiting at that moment (group commit). Reading happens later: a daemon
claims unread messages under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so each is read
by one daemon, and the messages of a daemon that dies are taken by another once the lease ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from transferbot.app.context import App
from transferbot.core.clock import now as clock_now
from transferbot.core.domain import InboxState
from transferbot.inbound.intake import Arrival
from transferbot.inbound.reader.reading import digest_of
from transferbot.inbound.wire import message_id_of, storable
from transferbot.store.models import InboundMessage, InboundRaw, table_of
from transferbot.store.queues import INBOX

log = logging.getLogger(__name__)


_INSERT_MESSAGE = (
    "INSERT INTO inboundmessage (received_at, peer, mail_from, rcpt_tos, message_id, digest, size, helo, state,"
    " outcome, checks, reason, from_address, subject, attempts, lease_owner, auth_tries) VALUES (?, ?, ?, ?, ?, ?,"
    " ?, ?, 'new', 'pending', '[]', '', '', '', 0, '', 0)"
)
_INSERT_RAW = "INSERT INTO inboundraw (id, raw) VALUES (?, ?)"


def _row(a: Arrival) -> dict[str, object]:
    return {"received_at": a.received_at, "peer": storable(a.peer[:200]), "mail_from": storable(a.mail_from[:500]),
            "rcpt_tos": [storable(r[:500]) for r in a.rcpt_tos], "message_id": message_id_of(a.raw),
            "digest": digest_of(a.raw), "size": len(a.raw), "helo": storable(a.helo[:255])}


def insert_arrivals(session: Session, arrivals: Sequence[Arrival]) -> list[int]:
    """Add received messages with their envelopes to an open write transaction; their ids, in order."""
    if session.get_bind().dialect.name == "sqlite":
        return _insert_sqlite(session, arrivals)
    # Elsewhere (PostgreSQL): one multi-row INSERT ... RETURNING for the messages, in the order given, and
    # one for their bytes: two round trips for the whole group, where the ORM took two per message.
    rows = [{**_row(a), **_NEW} for a in arrivals]
    ids = [int(i) for i in session.execute(_INSERT_MESSAGES, rows).scalars()]
    session.execute(_INSERT_RAWS, [{"id": i, "raw": a.raw} for i, a in zip(ids, arrivals, strict=True)])
    return ids


_NEW = {"state": InboxState.NEW.value, "outcome": "pending", "checks": [], "reason": "", "from_address": "", "subject": "",
        "attempts": 0, "lease_owner": "", "auth_tries": 0}
_INSERT_MESSAGES = (sa.insert(table_of(InboundMessage))
                    .returning(table_of(InboundMessage).c.id, sort_by_parameter_order=True))
_INSERT_RAWS = sa.insert(table_of(InboundRaw))


def _insert_sqlite(session: Session, arrivals: Sequence[Arrival]) -> list[int]:
    """The edge's hottest statements go straight to the DB-API cursor (two prepared statements per
    message): the ORM and Core add more per message here than the commit does."""
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    ids: list[int] = []
    try:
        for a in arrivals:
            r = _row(a)
            cursor.execute(_INSERT_MESSAGE, (
                a.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"), r["peer"], r["mail_from"],
                json.dumps(r["rcpt_tos"]), r["message_id"], r["digest"], r["size"], r["helo"]))
            inbound_id = int(cursor.lastrowid or 0)
            cursor.execute(_INSERT_RAW, (inbound_id, a.raw))
            ids.append(inbound_id)
    finally:
        cursor.close()
    return ids


def store_arrivals(session: Session, app: App, arrivals: Sequence[Arrival]) -> list[int]:
    """insert_arrivals, and a wake-up for the readers of every daemon when it commits."""
    ids = insert_arrivals(session, arrivals)
    app.store.notify(session, INBOX.channel)
    return ids


def store_inbound(app: App, raw: bytes, mail_from: str, rcpt_tos: list[str], peer: str,
                  received_at: datetime | None = None) -> int:
    """Commit one received message with its envelope (tests and tools; the edge stores in groups)."""
    arrival = Arrival(raw, mail_from, tuple(rcpt_tos), peer, received_at or clock_now())
    return app.store.run(store_arrivals, app, [arrival])[0]


# -- claiming unread messages -------------------------------------------------------------------------

@dataclass(frozen=True)
class Stored:
    id: int
    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str = ""
    helo: str = ""
    auth_tries: int = 0  # authentications that met DNS trouble so far
    taken_over: bool = False  # another daemon's lease on it had run out


def claim_unread(session: Session, owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Stored]:
    """The oldest messages stored but not read, leased to ``owner``, with their bytes."""
    leases = INBOX.claim(session, owner, now, lease_seconds, limit)
    if not leases:
        return []
    taken = {lease.id for lease in leases if lease.taken_over}
    table, raw = INBOX.table, table_of(InboundRaw)
    rows = session.connection().execute(
        sa.select(table.c.id, table.c.mail_from, table.c.rcpt_tos, table.c.peer, table.c.helo, table.c.auth_tries,
                  raw.c.raw)
        .join(raw, raw.c.id == table.c.id).where(table.c.id.in_([lease.id for lease in leases])).order_by(table.c.id))
    return [Stored(int(i or 0), bytes(data), mail_from, tuple(rcpts), peer, helo, tries, taken_over=int(i or 0) in taken)
            for i, mail_from, rcpts, peer, helo, tries, data in rows]


def load_raw(session: Session, inbound_id: int) -> bytes:
    row = session.get(InboundRaw, inbound_id)
    return bytes(row.raw) if row is not None else b""
