"""Listings a page at a time: the cursor is the id of the last row of the page before."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transferbot.core.errors import Refusal
from transferbot.store.models import MAX_ID


@dataclass(frozen=True)
class Page:
    """One page of a listing, with how to ask for the next and how many rows come after it."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    more: int

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor, "more": self.more}


def parse_cursor(cursor: str | None) -> int | None:
    """A cursor is the id of the last row of the page before (what ``next_cursor`` said)."""
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > len(str(MAX_ID)) or int(cursor) > MAX_ID:
        raise Refusal(f"--cursor {cursor!r} is not a cursor this listing gave (use its next_cursor)")
    return int(cursor)


def page_of(items: list[dict[str, Any]], more: int) -> Page:
    return Page(items, str(items[-1]["id"]) if items and more else None, more)
