"""Webhook events: their types, their payload bytes, their ids and the endpoints' signing secrets.

The payload is rendered once, when the event is queued, and its bytes are kept: a retry, on any
daemon, sends exactly the same bytes under the same ``webhook-id``, so a receiver can deduplicate.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import secrets
import string
from collections.abc import Mapping
from typing import Any


class EventType(enum.StrEnum):
    """What happened to a transfer. The value is the ``type`` of the payload (Standard Webhooks style)."""

    REQUESTED = "transfer.requested"
    PARTY_DECIDED = "transfer.party_decided"
    COMPLETED = "transfer.completed"
    DECLINED = "transfer.declined"
    EXPIRED = "transfer.expired"
    CANCELLED = "transfer.cancelled"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for at least 24 random bytes
_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 27  # as long as the spec's example (a KSUID); ~160 random bits


def event_type(value: str) -> EventType:
    """The EventType named ``value``, or ValueError listing the known ones (for CLI and API errors)."""
    try:
        return EventType(value)
    except ValueError:
        raise ValueError(f"unknown event type {value!r}; known: {', '.join(EVENT_TYPES)}") from None


def iso_timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a Z, microseconds kept: the spec's example form."""
    if moment.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _encode(value: Any) -> Any:
    """JSON for the few non-JSON types a transfer snapshot holds; anything else is a bug, not a str()."""
    if isinstance(value, dt.datetime):
        return iso_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot put a {type(value).__name__} in a webhook payload")


def payload(type: str | EventType, timestamp: dt.datetime, data: Mapping[str, Any]) -> bytes:
    """The event's body: ``{"data", "timestamp", "type"}`` as compact, key-sorted UTF-8 JSON.

    Deterministic (same input, same bytes) so that rendering twice cannot change a signature or
    confuse a receiver that hashes bodies. ``timestamp`` is when the event happened, not when it is
    sent; the attempt's time goes in the ``webhook-timestamp`` header.
    """
    document = {"type": event_type(str(type)).value, "timestamp": iso_timestamp(timestamp), "data": dict(data)}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_encode)
    return text.encode("utf-8")


def new_event_id() -> str:
    """A fresh ``webhook-id``: ``msg_`` and 27 random letters and digits (never a '.', which the spec forbids)."""
    return "msg_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def new_secret() -> str:
    """A fresh endpoint signing secret: ``whsec_`` and the standard base64 of 32 random bytes.

    Standard (not URL-safe) base64: the reference libraries decode it with the standard alphabet,
    and would silently drop '-' and '_' and so derive a different key.
    """
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")
