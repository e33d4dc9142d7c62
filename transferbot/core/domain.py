"""The vocabulary of transfers: enumerations shared by every layer."""

from __future__ import annotations

from enum import StrEnum


class AccountKind(StrEnum):
    CUSTOMER = "customer"
    ISV = "isv"
    RESELLER = "reseller"


class EntitlementState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"


class TransferKind(StrEnum):
    DIRECT_TO_RESELLER = "direct-to-reseller"
    RESELLER_TO_DIRECT = "reseller-to-direct"
    RESELLER_CHANGE = "reseller-change"


class TransferStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Role(StrEnum):
    CUSTOMER = "customer"
    ISV = "isv"
    CURRENT_RESELLER = "current-reseller"
    NEW_RESELLER = "new-reseller"


ROLE_ORDER: tuple[Role, ...] = (Role.CUSTOMER, Role.ISV, Role.CURRENT_RESELLER, Role.NEW_RESELLER)


class Decision(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class Outcome(StrEnum):
    """What became of an inbound message (stored on it, shown by `inbox`)."""

    PENDING = "pending"  # stored, not read yet
    APPROVED = "approved"
    DECLINED = "declined"
    UNCLEAR = "unclear"
    STATUS = "status"
    AUTO_REPLY = "auto-reply"
    BOUNCE = "bounce"
    BOUNCE_IGNORED = "bounce-ignored"  # a delivery report not at a bounce address of ours: changes nothing
    NOT_A_PARTY = "not-a-party"
    DUPLICATE = "duplicate"
    ALREADY_DECIDED = "already-decided"
    CLOSED = "closed"
    NO_TRANSFER = "no-transfer"
    LOOP = "loop"
    FAILED = "failed"


class MailKind(StrEnum):
    """One template per kind of email."""

    CONFIRMATION = "confirmation"
    RECEIPT = "receipt"
    REMINDER = "reminder"
    LAST_CALL = "last-call"
    COMPLETED = "completed"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    HELP = "help"
    STATUS = "status"
    IGNORED_SENDER = "ignored-sender"
    CONTACT_REPLACED = "contact-replaced"
    OPERATOR_ALERT = "operator-alert"


class OutboxStatus(StrEnum):
    """Where an outbox row (a mail) stands."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """Where a webhook delivery stands."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


class InboxState(StrEnum):
    """Where an inbound message stands: waiting to be read, read (its outcome recorded), or failed to read."""

    NEW = "new"
    DONE = "done"
    FAILED = "failed"
