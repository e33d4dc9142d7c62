"""Idempotency-Key: the same key and body answer the same response again and do nothing more.

A request with a key first claims it, in a short transaction of its own: an in-flight record
(``status_code`` 0) inserted with ``INSERT … ON CONFLICT DO NOTHING`` on the key's unique index,
committed at once. Of several requests with one key, on any daemon and either database, exactly one
claims it; the others find its record and answer from it: the kept response (the same status and
body again), or, while the first is still under way, ``InUse`` (409 with Retry-After, as Stripe
answers), or ``KeyReused`` when the key came with another body (422). Never the answer a different
request would get, such as the open-transfer conflict the first one's transfer causes.

The request's work then runs in its own transaction, which writes the response into the record
(``keep``): a response is kept exactly when its effect was committed. Only successes are kept. A
request that was refused, or failed, changed nothing (its transaction rolled back), so its claim is
released and the same key may be sent again once the cause is fixed. Stripe keeps the result of any
request that began to execute, errors included, because its effects are not all-or-nothing; here
nothing of a failed request remains, so there is nothing a retry could do twice. A claim whose
request died with its daemon is taken over after ``stale`` (the lease of claimed work). Keys are
forgotten after 24 hours.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from transferbot.core.errors import Conflict, Refusal
from transferbot.store.models import IdempotencyRecord, table_of

KEPT = timedelta(hours=24)
MAX_KEY = 255
IN_FLIGHT = 0  # the status_code of a record whose request is under way
RETRY_AFTER = 1  # seconds: what a request that found its key in use is told to wait
_TABLE = table_of(IdempotencyRecord)


class KeyReused(Refusal):
    """The same Idempotency-Key with a different request."""


class InUse(Conflict):
    """A request with this Idempotency-Key is under way: its answer is for the asking once it is done."""

    code = "idempotency-key-in-use"
    retry_after = RETRY_AFTER


@dataclass(frozen=True)
class Claim:
    """A key claimed for one request: its record, which ``keep`` fills or ``release`` frees."""

    id: int
    key: str


@dataclass(frozen=True)
class Kept:
    """The response the first request with a key got."""

    status: int
    response: dict[str, Any]


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise Refusal(f"Idempotency-Key must be 1 to {MAX_KEY} visible ASCII characters")
    return key


def request_hash(method: str, path: str, body: Any) -> str:
    """What makes two requests the same: method, path and the parsed body (not its spacing or key order)."""
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _in_use(key: str) -> InUse:
    return InUse(f"a request with Idempotency-Key {key!r} is under way; retry in {RETRY_AFTER} s for its answer")


def claim(session: Session, api_key_id: int, key: str, request: str, now: datetime,
          stale: timedelta) -> Claim | Kept:
    """Claim ``key`` for this request (commit at once, then do the work): its Claim, or the response the
    first request with the key got. InUse while that one is under way; KeyReused for another body."""
    conn = session.connection()
    mine = sa.and_(_TABLE.c.api_key_id == api_key_id, _TABLE.c.key == key)
    conn.execute(sa.delete(_TABLE).where(sa.or_(
        _TABLE.c.created_at <= now - KEPT,
        sa.and_(mine, _TABLE.c.status_code == IN_FLIGHT, _TABLE.c.created_at <= now - stale))))
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (insert(_TABLE).values(api_key_id=api_key_id, key=key, request_hash=request, status_code=IN_FLIGHT,
                                       response={}, created_at=now)
                 .on_conflict_do_nothing(index_elements=["api_key_id", "key"]).returning(_TABLE.c.id))
    for _ in range(3):
        claimed = conn.execute(statement).scalar()
        if claimed is not None:
            return Claim(int(claimed), key)
        # Each statement sees what was committed before it began (READ COMMITTED): the record now in the way.
        row = conn.execute(sa.select(_TABLE.c.request_hash, _TABLE.c.status_code, _TABLE.c.response)
                           .where(mine)).first()
        if row is None:
            continue  # released between the two statements: claim it again
        if row.request_hash != request:
            raise KeyReused(f"Idempotency-Key {key!r} was used for another request (a different body); "
                            f"use a new key")
        if row.status_code == IN_FLIGHT:
            raise _in_use(key)
        return Kept(int(row.status_code), dict(row.response))
    raise _in_use(key)


def keep(session: Session, claimed: Claim, status: int, body: dict[str, Any]) -> None:
    """Keep the response in the claimed record, in the transaction that did the work. InUse (and so
    nothing of the work committed) if the claim was taken over meanwhile, as one gone stale."""
    result = session.connection().execute(
        sa.update(_TABLE).where(_TABLE.c.id == claimed.id, _TABLE.c.status_code == IN_FLIGHT)
        .values(status_code=status, response=body))
    if result.rowcount != 1:
        raise _in_use(claimed.key)


def release(session: Session, claimed: Claim) -> None:
    """Free a claim whose request changed nothing (refused, or failed): the key may be sent again."""
    session.connection().execute(
        sa.delete(_TABLE).where(_TABLE.c.id == claimed.id, _TABLE.c.status_code == IN_FLIGHT))
