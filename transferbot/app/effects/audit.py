"""The audit trail: append-only events, each chained to the one before by hash.

Changing, removing or reordering any stored event breaks the chain from that
event on, which ``first_broken`` finds; that is what makes the trail usable
as evidence in a certificate of completion.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from transferbot.app.effects.work import Work
from transferbot.store.models import Event, table_of

GENESIS = "0" * 64
_EVENTS = table_of(Event)
_LAST_SEQ = (sa.select(_EVENTS.c.transfer_id, sa.func.max(_EVENTS.c.seq).label("seq"))
             .where(_EVENTS.c.transfer_id.in_(sa.bindparam("ids", expanding=True)))
             .group_by(_EVENTS.c.transfer_id).subquery())
_HEADS_OF = (sa.select(_EVENTS.c.transfer_id, _EVENTS.c.seq, _EVENTS.c.hash, _EVENTS.c.at)
             .join(_LAST_SEQ, sa.and_(_LAST_SEQ.c.transfer_id == _EVENTS.c.transfer_id, _LAST_SEQ.c.seq == _EVENTS.c.seq)))
_EVENTS_OF = sa.select(_EVENTS).where(_EVENTS.c.transfer_id == sa.bindparam("transfer_id")).order_by(_EVENTS.c.seq)


def canonical(value: Any) -> str:
    """Deterministic JSON: the bytes that are hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(details: dict[str, Any]) -> str:
    """The hash of the details every party is shown; printed in every email and in the certificate."""
    return "sha256:" + hashlib.sha256(canonical(details).encode("utf-8")).hexdigest()


def event_hash(prev_hash: str, transfer_id: str, seq: int, at: datetime, kind: str, data: dict[str, Any]) -> str:
    body = canonical({"transfer": transfer_id, "seq": seq, "at": at.isoformat(), "kind": kind, "data": data})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def append_event(work: Work, transfer_id: str, kind: str, data: dict[str, Any], at: datetime) -> None:
    """Add one event at the end of a transfer's chain (inside the Work's transaction).

    Events are in commit order, and a timestamp is never earlier than the one
    before it: work timed before its transaction began is stamped when it commits.
    The chain's head is remembered by the Work (the write transaction holds the
    lock, so nobody else can append meanwhile). The row is written by the Work
    (``Work.write_events``), with the others appended since, in one statement."""
    heads = work.heads
    head = heads.get(transfer_id)
    if head is None:
        load_heads(work, [transfer_id])
        head = heads[transfer_id]
    last_seq, prev, last_at = head
    if last_at is not None and at < last_at:
        at = last_at
    seq = last_seq + 1
    digest = event_hash(prev, transfer_id, seq, at, kind, data)
    work.events.append({"transfer_id": transfer_id, "seq": seq, "at": at, "kind": kind, "data": data,
                        "prev_hash": prev, "hash": digest})
    heads[transfer_id] = (seq, digest, at)


def load_heads(work: Work, transfer_ids: Iterable[str]) -> None:
    """Remember the chain heads of several transfers (one query), for the events the Work appends.
    The caller holds the transfers' locks."""
    heads = work.heads
    wanted = sorted({i for i in transfer_ids if i not in heads})
    if not wanted:
        return
    # The Work's events not yet written are all of transfers whose heads it remembers (Work.forget drops
    # both): those wanted here have none, so their heads are in the table as it is.
    rows = work.session.connection().execute(_HEADS_OF, {"ids": wanted})
    found = {r.transfer_id: (r.seq, r.hash, r.at) for r in rows}
    for transfer_id in wanted:
        heads[transfer_id] = found.get(transfer_id, (0, GENESIS, None))


class ChainLink(Protocol):
    """An event as the trail is read: its columns, by name."""

    transfer_id: str
    seq: int
    at: datetime
    kind: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


def first_broken(events: Sequence[ChainLink]) -> tuple[int, str] | None:
    """The first event (seq, why) whose stored hash or link does not match; None if intact."""
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return event.seq, f"expected event #{expected_seq} here, found #{event.seq}"
        if event.prev_hash != prev:
            return event.seq, "its link to the previous event does not match"
        if event.hash != event_hash(prev, event.transfer_id, event.seq, event.at, event.kind, event.data):
            return event.seq, "its content does not match its hash"
        prev = event.hash
    return None


def events_of(session: Session, transfer_id: str) -> list[ChainLink]:
    """A transfer's trail in order, as read-only rows (every completion notice's certificate reads the whole
    trail: ORM objects cost several times as much, for nothing here). Events a Work holds are not in it
    until written: a change that reads its own trail writes them first (Work.write_events)."""
    return list(session.connection().execute(_EVENTS_OF, {"transfer_id": transfer_id}))
