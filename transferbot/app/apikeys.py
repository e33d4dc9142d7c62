"""API keys: made, listed, revoked, and checked on every request.

A key is ``tbk_`` and 32 random bytes (URL-safe base64): 256 bits, so it cannot be guessed and a
fast hash is the right one to keep. Only its SHA-256 is stored: a slow password hash (argon2,
bcrypt) protects low-entropy secrets against guessing from a stolen table, which is not a risk for
a random key, and would cost every API request tens of milliseconds. The first 12 characters
(``prefix``) are kept in clear to name the key in listings and logs; they are not enough to use it.
A request's key is looked up by its prefix and compared by hash with ``hmac.compare_digest``.
The key itself is shown once, when it is made, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.queries.record import iso
from transferbot.app.registry import check_text
from transferbot.core.domain import AccountKind
from transferbot.core.errors import Conflict, Refusal, Unknown
from transferbot.store.models import Account, ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "tbk_"
KEY_BYTES = 32
SHOWN = 12  # characters of a key kept in clear: "tbk_" and 8 of its random part (48 bits)
ADMIN, ISV = "admin", "isv"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: an admin key (the marketplace's systems) or one ISV's key."""

    key_id: int
    prefix: str
    scope: str
    isv: str | None

    @property
    def admin(self) -> bool:
        return self.scope == ADMIN

    def may_act_for(self, isv: str | None) -> bool:
        """Whether this key acts on what belongs to ``isv`` (an entitlement's or a transfer's ISV)."""
        return self.admin or (isv is not None and isv == self.isv)

    @property
    def who(self) -> str:
        """How the audit trail names the caller."""
        return f"api key #{self.key_id} ({'admin' if self.admin else 'isv ' + str(self.isv)})"


def unseen(what: str) -> Unknown:
    """The one answer for a ``what`` (transfer, entitlement) a key may not see, or that does not exist: the
    same words either way, without the id, so that two answers cannot be told apart."""
    return Unknown(f"unknown {what} (none with this id that this key may see)")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def key_summary(row: ApiKey) -> dict[str, Any]:
    return {"id": row.id, "prefix": row.prefix, "scope": row.scope, "isv": row.isv_id, "name": row.name,
            "created_at": iso(row.created_at), "revoked_at": iso(row.revoked_at),
            "state": "revoked" if row.revoked_at else "active"}


def create_key(app: App, isv: str | None, name: str = "", now: datetime | None = None) -> tuple[ApiKey, str]:
    """Make a key for one ISV's systems (``isv``) or an admin key (None); returns its row and the key,
    which exists nowhere else from now on."""
    name = check_text(name, "--name", 200) if name.strip() else ""
    key = new_key()

    def work(session: Session) -> ApiKey:
        if isv is not None:
            account = session.get(Account, isv)
            if account is None:
                raise Unknown(f"unknown account {isv!r} (--isv)")
            if account.kind != AccountKind.ISV.value:
                raise Refusal(f"account {isv} is a {account.kind}, not an isv (--isv)")
        row = ApiKey(prefix=key[:SHOWN], hash=digest(key), scope=ISV if isv else ADMIN, isv_id=isv, name=name,
                     created_at=now or datetime.now(UTC))
        session.add(row)
        session.flush()
        return row

    row = app.store.run(work)
    log.info("api key #%s (%s…) created: %s%s", row.id, row.prefix, row.scope, f" {isv}" if isv else "")
    return row, key


def list_keys(app: App) -> list[dict[str, Any]]:
    with app.store.read() as session:
        return [key_summary(k) for k in session.exec(select(ApiKey).order_by(col(ApiKey.id)))]


def revoke_key(app: App, key_id: int, now: datetime | None = None) -> ApiKey:
    def work(session: Session) -> ApiKey:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise Unknown(f"unknown api key #{key_id}")
        if row.revoked_at is not None:
            raise Conflict(f"api key #{key_id} was revoked already, at {iso(row.revoked_at)}")
        row.revoked_at = now or datetime.now(UTC)
        session.add(row)
        return row

    row = app.store.run(work)
    log.info("api key #%s (%s…) revoked", row.id, row.prefix)
    return row


def authenticate(session: Session, key: str) -> Principal | None:
    """The principal a presented key stands for, or None (unknown, malformed or revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) < SHOWN + 8 or len(key) > 128:
        return None
    wanted = digest(key)
    found: Principal | None = None
    for row in session.exec(select(ApiKey).where(ApiKey.prefix == key[:SHOWN])):
        if hmac.compare_digest(row.hash, wanted) and row.revoked_at is None and found is None:
            found = Principal(row.id or 0, row.prefix, row.scope, row.isv_id)
    return found
