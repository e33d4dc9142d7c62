"""The dashboard's operators: who may sign in, their argon2 password hashes, and their sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile) and never stored
or logged otherwise. A session is a random token in the browser's cookie and its SHA-256 in the database,
so every daemon on the database knows it, signing out or removing the operator ends it everywhere, and a
copy of the database signs nobody in. The dashboard's own key (CSRF tokens) is kept in ``meta`` beside the
token secret, generated on first use.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session, col, delete, select

from transferbot.app.context import App
from transferbot.core.clock import now as clock_now
from transferbot.core.errors import Refusal, Unknown
from transferbot.store.models import Meta, Operator, OperatorSession

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
UI_SECRET_KEY = "ui-secret"

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown, so that a wrong name takes as long as a wrong password.
    Made at the first sign-in, not at import: an argon2 hash takes 64 MiB, which a daemon nobody signs
    in to would otherwise carry as its peak memory."""
    return _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class OperatorView:
    id: int
    name: str
    created_at: datetime
    disabled: bool

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "created_at": self.created_at.isoformat(), "disabled": self.disabled}


def _view(row: Operator) -> OperatorView:
    return OperatorView(row.id or 0, row.name, row.created_at, row.disabled)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise Refusal(f"operator name {name!r} must be 1 to 64 letters, digits, '.', '_', '@', '+' or '-', "
                      "starting with a letter or digit")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Refusal(f"the password must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        raise Refusal(f"the password must be at most {MAX_PASSWORD} characters long")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise Refusal("the password must not contain control characters (give it on one line)")
    return password


def _find(session: Session, name: str) -> Operator | None:
    return session.exec(select(Operator).where(Operator.name == name)).first()


def add_operator(app: App, name: str, password: str) -> OperatorView:
    """Register an operator (the name is what the audit trail shows for its actions)."""
    check_name(name)
    hashed = _hasher.hash(check_password(password))

    def work(session: Session) -> OperatorView:
        if _find(session, name) is not None:
            raise Refusal(f"operator {name} exists already (`operator password {name}` changes its password)")
        row = Operator(name=name, password_hash=hashed, created_at=clock_now())
        session.add(row)
        session.flush()
        return _view(row)

    view = app.store.run(work)
    log.info("operator %s added", name)
    return view


def set_password(app: App, name: str, password: str) -> None:
    """A new password for an operator; every session it has is ended."""
    hashed = _hasher.hash(check_password(password))

    def work(session: Session) -> None:
        row = _find(session, name)
        if row is None:
            raise Unknown(f"unknown operator {name!r}")
        row.password_hash = hashed
        session.add(row)
        session.exec(delete(OperatorSession).where(col(OperatorSession.operator_id) == row.id))

    app.store.run(work)
    log.info("operator %s: password changed; its sessions ended", name)


def remove_operator(app: App, name: str) -> None:
    """Remove an operator and end its sessions at once (on every daemon: they are rows)."""

    def work(session: Session) -> None:
        row = _find(session, name)
        if row is None:
            raise Unknown(f"unknown operator {name!r}")
        session.exec(delete(OperatorSession).where(col(OperatorSession.operator_id) == row.id))
        session.delete(row)

    app.store.run(work)
    log.info("operator %s removed; its sessions ended", name)


def list_operators(app: App) -> list[OperatorView]:
    with app.store.read() as session:
        return [_view(r) for r in session.exec(select(Operator).order_by(col(Operator.name)))]


# -- signing in ---------------------------------------------------------------------------------------------

def password_matches(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the operator exists (argon2 verification is the cost)."""
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def operator_for_sign_in(session: Session, name: str) -> Operator | None:
    """The enabled operator of that name, if any (read-only)."""
    row = _find(session, name) if NAME.fullmatch(name) else None
    return row if row is not None and not row.disabled else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(session: Session, operator_id: int, hours: float, now: datetime | None = None) -> str:
    """A new session for a signed-in operator; returns the token for the cookie (kept nowhere else).
    Expired sessions of anyone are swept out on the way."""
    moment = now or clock_now()
    session.exec(delete(OperatorSession).where(col(OperatorSession.expires_at) < moment))
    token = secrets.token_urlsafe(32)
    session.add(OperatorSession(token_hash=token_hash(token), operator_id=operator_id, created_at=moment,
                                expires_at=moment + timedelta(hours=hours)))
    return token


def close_session(session: Session, token: str) -> None:
    session.exec(delete(OperatorSession).where(col(OperatorSession.token_hash) == token_hash(token)))


def session_operator(session: Session, token: str, now: datetime | None = None) -> str | None:
    """The name of the operator a session token belongs to, while it lasts and the operator is enabled."""
    if not token or len(token) > 128:
        return None
    moment = now or clock_now()
    row = session.exec(select(Operator.name).join(OperatorSession, col(OperatorSession.operator_id) == Operator.id)
                       .where(OperatorSession.token_hash == token_hash(token),
                              col(OperatorSession.expires_at) > moment, Operator.disabled == False)  # noqa: E712
                       ).first()
    return row


def registered(session: Session, name: str) -> bool:
    """Whether an enabled operator of that name exists (a trusted proxy's header names one)."""
    return operator_for_sign_in(session, name) is not None


def ui_secret(session: Session) -> bytes:
    """The dashboard's key, kept in ``meta`` so that every daemon shares it (migration 0005 makes it; should
    the row be gone, it is made again here)."""
    row = session.get(Meta, UI_SECRET_KEY)
    if row is None:
        row = Meta(key=UI_SECRET_KEY, value=secrets.token_hex(32))
        session.add(row)
        session.flush()
    return row.value.encode("utf-8")


def stored_ui_secret(session: Session) -> bytes | None:
    row = session.get(Meta, UI_SECRET_KEY)
    return row.value.encode("utf-8") if row is not None else None
