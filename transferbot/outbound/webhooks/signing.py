"""Standard Webhooks signatures, made by the specification's reference library (``standardwebhooks``).

What is signed is ``{webhook-id}.{webhook-timestamp}.{body}``. The id and body stay the same across
retries; the timestamp is the attempt's, so every attempt is signed afresh (receivers refuse
timestamps more than five minutes off, which is their defence against replays).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


def sign_headers(secret: str, msg_id: str, timestamp: dt.datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt to deliver ``body``.

    ``timestamp`` must be timezone-aware: the library reads a datetime's wall clock as UTC
    (``replace(tzinfo=utc)``), so it is converted to UTC here first. ``body`` must be UTF-8 (the
    library signs text); payload() always is.
    """
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    if not msg_id or "." in msg_id or any(c.isspace() for c in msg_id):
        raise ValueError("webhook-id must be non-empty, without '.' or spaces")
    utc = timestamp.astimezone(dt.UTC)
    signature = Webhook(secret).sign(msg_id, utc, body.decode("utf-8"))
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(math.floor(utc.timestamp())),
        HEADER_SIGNATURE: signature,
    }


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> Any:
    """Check a delivery as a receiver would (tests, a local receiver); return the parsed payload.

    Raises ``standardwebhooks.webhooks.WebhookVerificationError`` on a bad or stale signature.
    """
    return Webhook(secret).verify(body, dict(headers))
