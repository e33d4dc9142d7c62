"""Webhooks: event payloads, Standard Webhooks signatures, guarded HTTP delivery and its retry schedule.

No database and no daemon here: the outbox and dispatcher call these pure functions and the one
``WebhookClient`` per daemon. See each module for why it is shaped as it is.
"""

from __future__ import annotations

from transferbot.outbound.webhooks.backoff import next_attempt, retry_delay
from transferbot.outbound.webhooks.delivery import Attempt, Outcome, WebhookClient
from transferbot.outbound.webhooks.events import EVENT_TYPES, EventType, new_event_id, new_secret, payload
from transferbot.outbound.webhooks.signing import sign_headers, verify
from transferbot.outbound.webhooks.urls import AddressGuard, AddressRefused, UrlError, validate_url

__all__ = [
    "EVENT_TYPES",
    "AddressGuard",
    "AddressRefused",
    "Attempt",
    "EventType",
    "Outcome",
    "UrlError",
    "WebhookClient",
    "new_event_id",
    "new_secret",
    "next_attempt",
    "payload",
    "retry_delay",
    "sign_headers",
    "validate_url",
    "verify",
]
