"""The database tables (SQLModel). State lives here, not in the scheduler."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from transferbot.core.domain import DeliveryStatus, InboxState, OutboxStatus

MAX_ID = 2**31 - 1  # the largest integer id: they are INTEGER columns, 32 bits on PostgreSQL (64 on SQLite)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes in and out: a timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any) -> Any:
    return Field(default_factory=lambda: type(default)(), sa_column=sa.Column(sa.JSON, nullable=False))


class Meta(SQLModel, table=True):
    key: str = Field(primary_key=True)
    value: str


class Account(SQLModel, table=True):
    id: str = Field(primary_key=True)
    kind: str
    name: str
    locale: str = "en"
    timezone: str = "UTC"
    created_at: datetime = _ts()


class AccountAddress(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("account_id", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(foreign_key="account.id", index=True)
    address: str = Field(index=True)
    position: int = 0


class Entitlement(SQLModel, table=True):
    id: str = Field(primary_key=True)
    product: str
    customer_id: str = Field(foreign_key="account.id")
    isv_id: str = Field(foreign_key="account.id")
    reseller_id: str | None = Field(default=None, foreign_key="account.id")
    state: str = "active"
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Transfer(SQLModel, table=True):
    __table_args__ = (
        # At most one pending transfer per entitlement, enforced by the database.
        sa.Index("one_pending_per_entitlement", "entitlement_id", unique=True,
                 sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'")),
        sa.Index("transfer_status_due", "status", "next_due_at"),
    )
    id: str = Field(primary_key=True)
    entitlement_id: str = Field(foreign_key="entitlement.id", index=True)
    kind: str
    from_reseller_id: str | None = None
    to_reseller_id: str | None = None
    product: str
    note: str = ""
    status: str = "pending"
    fingerprint: str = ""
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    next_due_at: datetime | None = _ts(nullable=True)
    closed_at: datetime | None = _ts(nullable=True)


class Party(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("transfer_id", "role"),)
    id: int | None = Field(default=None, primary_key=True)
    transfer_id: str = Field(foreign_key="transfer.id", index=True)
    role: str
    account_id: str = Field(foreign_key="account.id")
    token: str = Field(unique=True)
    locale: str = "en"
    timezone: str = "UTC"
    decision: str = "pending"
    decided_at: datetime | None = _ts(nullable=True)
    decided_by: int | None = Field(default=None, foreign_key="inboundmessage.id")
    reason: str = ""
    confirmation_message_id: str = ""
    reminders_sent: int = 0
    last_call_sent: bool = False
    last_help_at: datetime | None = _ts(nullable=True)
    last_notice_at: datetime | None = _ts(nullable=True)


class PartyAddress(SQLModel, table=True):
    """An address a party was mailed at; any of them may answer for it."""

    __table_args__ = (sa.UniqueConstraint("party_id", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    party_id: int = Field(foreign_key="party.id", index=True)
    address: str
    position: int = 0
    undeliverable_at: datetime | None = _ts(nullable=True)
    undeliverable_reason: str = ""


class RevokedToken(SQLModel, table=True):
    """A token that stopped working (contact replaced); replies to it are recognised."""

    token: str = Field(primary_key=True)
    party_id: int = Field(foreign_key="party.id")
    revoked_at: datetime = _ts()
    addresses: list[str] = _json([])  # the contact it was mailed at
    last_notice_at: datetime | None = _ts(nullable=True)  # when the old contact was last told


class InboundMessage(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = _ts(index=True)
    peer: str = ""
    mail_from: str = ""
    rcpt_tos: list[str] = _json([])
    message_id: str = Field(default="", index=True)
    digest: str = Field(default="", index=True)
    size: int = 0
    state: str = Field(default=InboxState.NEW.value, index=True)
    outcome: str = "pending"
    checks: list[str] = _json([])
    reason: str = ""
    from_address: str = ""
    subject: str = ""
    transfer_id: str | None = Field(default=None, index=True)
    party_id: int | None = None
    read_at: datetime | None = _ts(nullable=True)
    attempts: int = 0
    lease_owner: str = ""
    lease_until: datetime | None = _ts(nullable=True)
    helo: str = ""  # the name the client gave in HELO/EHLO (SPF checks it for a null sender)
    auth: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    auth_tries: int = 0  # authentications that met DNS trouble
    next_read_at: datetime | None = _ts(nullable=True)  # not read before then (DNS trouble: tried again later)


class OutboundMessage(SQLModel, table=True):
    """A mail to send: its envelope, delivery bookkeeping, and what renders it.

    ``render`` holds what differs per recipient (locale, the party it is for, threading, the facts
    of the notice) and ``snapshot_id`` the facts of the transfer at the moment it was queued, shared
    by the mails of one change. Rendering reads only these two, so any daemon renders the same bytes
    at any time. A daemon delivering it holds a lease (``lease_owner`` until ``lease_until``)."""

    __table_args__ = (sa.Index("outbox_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _ts()
    kind: str
    transfer_id: str | None = Field(default=None, index=True)
    party_id: int | None = None
    key: str = Field(unique=True)
    message_id: str = Field(index=True)
    envelope_from: str
    recipients: list[str] = _json([])
    subject: str = ""
    render: dict[str, Any] = _json({})
    snapshot_id: int | None = Field(default=None, foreign_key="mailsnapshot.id")
    status: str = OutboxStatus.QUEUED.value
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    give_up_at: datetime | None = _ts(nullable=True)
    last_attempt_at: datetime | None = _ts(nullable=True)
    last_error: str = ""
    sent_at: datetime | None = _ts(nullable=True)
    lease_owner: str = ""
    lease_until: datetime | None = _ts(nullable=True)


class MailSnapshot(SQLModel, table=True):
    """The facts of a transfer as one change left them, shared by the mails it caused (immutable)."""

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _ts()
    transfer_id: str | None = Field(default=None, index=True)
    data: dict[str, Any] = _json({})


class InboundRaw(SQLModel, table=True):
    """The bytes of an inbound message, apart, so that updating its state never rewrites them."""

    id: int = Field(primary_key=True, foreign_key="inboundmessage.id")
    raw: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))


class OutboundRaw(SQLModel, table=True):
    """Bytes rendered by release 0.1 for mail it queued; such a row is sent as it is."""

    id: int = Field(primary_key=True, foreign_key="outboundmessage.id")
    raw: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))


class Event(SQLModel, table=True):
    """Append-only audit trail; each row holds the hash of the one before it."""

    __table_args__ = (sa.UniqueConstraint("transfer_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    transfer_id: str = Field(foreign_key="transfer.id", index=True)
    seq: int
    at: datetime = _ts()
    kind: str
    data: dict[str, Any] = _json({})
    prev_hash: str
    hash: str


# -- The HTTP API and webhooks (issue 11) ------------------------------------------------------------------------

class ApiKey(SQLModel, table=True):
    """A key the marketplace's systems or an ISV call the API with. Only its SHA-256 is kept; ``prefix``
    (its first characters, not secret enough to use) names it in listings and logs."""

    id: int | None = Field(default=None, primary_key=True)
    prefix: str = Field(index=True)
    hash: str = Field(unique=True)
    scope: str  # admin | isv
    isv_id: str | None = Field(default=None, foreign_key="account.id")
    name: str = ""
    created_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class IdempotencyRecord(SQLModel, table=True):
    """The response a request with an Idempotency-Key got, replayed for the same key and body for 24 hours."""

    __table_args__ = (sa.UniqueConstraint("api_key_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="apikey.id")
    key: str
    request_hash: str
    status_code: int
    response: dict[str, Any] = _json({})
    created_at: datetime = _ts(index=True)


class WebhookEndpoint(SQLModel, table=True):
    """Where events are delivered: the URL, its signing secret, the event types it wants (empty: all)
    and, when scoped, the one ISV whose transfers it hears about."""

    id: int | None = Field(default=None, primary_key=True)
    url: str
    secret: str
    event_types: list[str] = _json([])
    isv_id: str | None = Field(default=None, foreign_key="account.id")
    created_at: datetime = _ts()
    disabled_at: datetime | None = _ts(nullable=True)  # the receiver answered 410 Gone
    disabled_reason: str = ""
    removed_at: datetime | None = _ts(nullable=True)  # `webhook remove`: kept for the deliveries' history


class WebhookEvent(SQLModel, table=True):
    """One event as it was queued: its ``webhook-id`` and the payload bytes every delivery of it sends."""

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True)
    type: str
    transfer_id: str | None = Field(default=None, index=True)
    created_at: datetime = _ts()
    payload: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))


class WebhookDelivery(SQLModel, table=True):
    """The outbox row for HTTP: one event to one endpoint, its attempts, and who holds it (a lease)."""

    __table_args__ = (
        sa.Index("webhook_due", "next_attempt_at", sqlite_where=sa.text("status = 'queued'"),
                 postgresql_where=sa.text("status = 'queued'")),
    )
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="webhookevent.id", index=True)
    endpoint_id: int = Field(foreign_key="webhookendpoint.id", index=True)
    transfer_id: str | None = Field(default=None, index=True)
    type: str
    created_at: datetime = _ts()
    status: str = DeliveryStatus.QUEUED.value
    attempts: int = 0
    queued_at: datetime = _ts()  # when this round of attempts began: created, or `webhook retry`
    round_attempts: int = 0  # attempts since queued_at (the backoff and the giving up count from there)
    next_attempt_at: datetime = _ts()
    last_attempt_at: datetime | None = _ts(nullable=True)
    delivered_at: datetime | None = _ts(nullable=True)
    last_status_code: int | None = None
    last_error: str = ""
    last_response: str = ""  # the start of the last response body
    history: list[dict[str, Any]] = _json([])  # every attempt: at, daemon, outcome, status_code, error, elapsed_ms
    lease_owner: str = ""
    lease_until: datetime | None = _ts(nullable=True)


# -- the dashboard's operators and their sessions (issue 12) ------------------------------------------------------

class Operator(SQLModel, table=True):
    """A person who signs in to the dashboard (`transferbot operator add`); the password only as an argon2 hash."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    password_hash: str
    created_at: datetime = _ts()
    disabled: bool = False


class OperatorSession(SQLModel, table=True):
    """A dashboard sign-in, shared by every daemon on the database. Only the SHA-256 of the cookie's token is
    kept, so a copy of the database signs nobody in; removing the operator or signing out deletes the row."""

    token_hash: str = Field(primary_key=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    created_at: datetime = _ts()
    expires_at: datetime = _ts(index=True)


def table_of(model: type[SQLModel]) -> sa.Table:
    """A model's table, for Core statements (SQLModel does not declare ``__table__`` to type checkers)."""
    return model.__table__  # type: ignore[attr-defined]
