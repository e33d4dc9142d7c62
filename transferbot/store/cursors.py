"""Opaque page cursors for the HTTP API: the sort key of a page's last row, in URL-safe base64.

Opaque so that a client passes back what it was given rather than building one; checked on the way
in, so a cursor that no listing gave is a clear 422, never a query error.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from transferbot.core.errors import Refusal

MAX_CURSOR = 512


def encode(*values: Any) -> str:
    text = json.dumps(list(values), separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode(cursor: str | None, arity: int) -> list[str] | None:
    """The values a cursor holds (strings, ``arity`` of them), or Refusal naming the cursor as invalid."""
    if cursor is None:
        return None
    problem = Refusal("cursor is not one this listing gave (pass next_cursor back as it is)")
    if len(cursor) > MAX_CURSOR:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw.decode("ascii"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise problem from None
    if not isinstance(values, list) or len(values) != arity or \
            not all(isinstance(v, str) and "\x00" not in v for v in values):
        raise problem
    return values
