"""Listings a page at a time, for the API and the CLI alike.

A cursor is the sort key of a page's last row (a list of strings), as JSON in URL-safe base64: opaque,
so that a client passes back what it was given rather than building one, and checked on the way in, so
that a cursor no listing gave is a clear refusal naming it, never a query error.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from transferbot.core.errors import Refusal
from transferbot.store.models import MAX_ID

MAX_CURSOR = 512


def encode(*values: str) -> str:
    text = json.dumps(list(values), separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def refused(name: str = "cursor") -> Refusal:
    """The answer to a cursor no listing gave (``name``: what the caller calls it, as ``--cursor``)."""
    return Refusal(f"{name} is not one this listing gave (pass next_cursor back as it is)")


def decode(cursor: str | None, arity: int, name: str = "cursor") -> list[str] | None:
    """The values a cursor holds (strings, ``arity`` of them), or a refusal naming the cursor."""
    if cursor is None:
        return None
    if len(cursor) > MAX_CURSOR:
        raise refused(name)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw.decode("ascii"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise refused(name) from None
    if not isinstance(values, list) or len(values) != arity or \
            not all(isinstance(v, str) and "\x00" not in v for v in values):
        raise refused(name)
    return values


def decode_id(cursor: str | None, name: str = "cursor") -> int | None:
    """The row id a cursor of a listing by id holds."""
    values = decode(cursor, 1, name)
    if values is None:
        return None
    value = values[0]
    if not value.isascii() or not value.isdigit() or len(value) > len(str(MAX_ID)) or int(value) > MAX_ID:
        raise refused(name)
    return int(value)


@dataclass(frozen=True)
class Page:
    """One page of a listing: its rows, the cursor of the next page (None on the last), and how many rows come
    after it (a listing that does not count them says 1 while there are more)."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    more: int

    def as_json(self) -> dict[str, Any]:
        """The CLI's page (``--json``)."""
        return {"items": self.items, "next_cursor": self.next_cursor, "more": self.more}

    def as_api(self) -> dict[str, Any]:
        """The API's page (its schema has no count)."""
        return {"items": self.items, "next_cursor": self.next_cursor}


def page_of(items: list[dict[str, Any]], more: int, last: tuple[str, ...] | None = None) -> Page:
    """A page of ``items`` with ``more`` rows after it; the next page's cursor holds ``last``, the sort key of
    its last row (by default the row's id)."""
    if not items or not more:
        return Page(items, None, more)
    return Page(items, encode(*(last if last is not None else (str(items[-1]["id"]),))), more)
