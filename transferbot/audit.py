"""The audit trail: append-only events, each chained to the one before by hash.

Changing, removing or reordering any stored event breaks the chain from that
event on, which ``first_broken`` finds; that is what makes the trail usable
as evidence in a certificate of completion.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session, col, select

from transferbot.models import Event

GENESIS = "0" * 64
_HEADS = "transferbot.chain_heads"


def canonical(value: Any) -> str:
    """Deterministic JSON: the bytes that are hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(details: dict[str, Any]) -> str:
    """The hash of the details every party is shown; printed in every email and in the certificate."""
    return "sha256:" + hashlib.sha256(canonical(details).encode("utf-8")).hexdigest()


def event_hash(prev_hash: str, transfer_id: str, seq: int, at: datetime, kind: str, data: dict[str, Any]) -> str:
    body = canonical({"transfer": transfer_id, "seq": seq, "at": at.isoformat(), "kind": kind, "data": data})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def append_event(session: Session, transfer_id: str, kind: str, data: dict[str, Any], at: datetime) -> Event:
    """Add one event at the end of a transfer's chain (inside the caller's transaction).

    Events are in commit order, and a timestamp is never earlier than the one
    before it: work timed before its transaction began is stamped when it commits.
    The chain's head is remembered for the rest of the transaction (the
    write transaction holds the lock, so nobody else can append meanwhile)."""
    heads: dict[str, tuple[int, str, datetime | None]] = session.info.setdefault(_HEADS, {})
    head = heads.get(transfer_id)
    if head is None:
        last = session.exec(
            select(Event).where(Event.transfer_id == transfer_id).order_by(col(Event.seq).desc()).limit(1)
        ).first()
        head = (last.seq, last.hash, last.at) if last else (0, GENESIS, None)
    last_seq, prev, last_at = head
    if last_at is not None and at < last_at:
        at = last_at
    seq = last_seq + 1
    event = Event(transfer_id=transfer_id, seq=seq, at=at, kind=kind, data=data, prev_hash=prev,
                  hash=event_hash(prev, transfer_id, seq, at, kind, data))
    session.add(event)
    heads[transfer_id] = (seq, event.hash, at)
    return event


def forget_heads(session: Session) -> None:
    """After a savepoint is rolled back, the remembered heads may name events that are gone."""
    session.info.pop(_HEADS, None)


class _ChainLink(Protocol):
    transfer_id: str
    seq: int
    at: datetime
    kind: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


def first_broken(events: Sequence[_ChainLink]) -> tuple[int, str] | None:
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


def events_of(session: Session, transfer_id: str) -> list[Event]:
    return list(session.exec(select(Event).where(Event.transfer_id == transfer_id).order_by(col(Event.seq))))
