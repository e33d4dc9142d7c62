"""Idempotency-Key: the same key and body answer the same response again and do nothing more.

The record is written in the transaction that did the work, so a response is kept exactly when its
effect was committed. Only successes are kept: a refusal (unknown entitlement, open transfer) is
decided afresh, so a client that fixed the cause may retry with the same key. The same key with
another body is refused, and keys are forgotten after 24 hours (expired records are deleted as new
ones are written).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from transferbot.core.errors import Refusal
from transferbot.store.models import IdempotencyRecord, table_of

KEPT = timedelta(hours=24)
MAX_KEY = 255


class KeyReused(Refusal):
    """The same Idempotency-Key with a different request."""


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise Refusal(f"Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters")
    return key


def request_hash(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path and the parsed body (not its spacing or key order)."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def find(session: Session, api_key_id: int, key: str, request: str, now: datetime) -> IdempotencyRecord | None:
    """The kept response for this key, or None; KeyReused when the key came with another request."""
    row = session.exec(select(IdempotencyRecord).where(IdempotencyRecord.api_key_id == api_key_id,
                                                       IdempotencyRecord.key == key)).first()
    if row is None:
        return None
    if row.created_at <= now - KEPT:
        session.delete(row)
        session.flush()
        return None
    if row.request_hash != request:
        raise KeyReused(f"Idempotency-Key {key!r} was used for another request (a different body); use a new key")
    return row


def keep(session: Session, api_key_id: int, key: str, request: str, status: int, body: dict[str, Any],
         now: datetime) -> None:
    table = table_of(IdempotencyRecord)
    session.connection().execute(sa.delete(table).where(table.c.created_at <= now - KEPT))
    session.add(IdempotencyRecord(api_key_id=api_key_id, key=key, request_hash=request, status_code=status,
                                  response=body, created_at=now))
    session.flush()
