"""The one pager (store/paging.py): opaque cursors checked on the way in, every row once across pages."""

from __future__ import annotations

import base64

import pytest

from transferbot.app.arrivals import store_inbound
from transferbot.app.context import App
from transferbot.app.queries import views
from transferbot.core.errors import Refusal
from transferbot.store import paging
from transferbot.store.models import MAX_ID


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_holds_its_sort_key_and_nothing_else_is_taken() -> None:
    cursor = paging.encode("2026-01-01T00:00:00+00:00", "TR-1")
    assert paging.decode(cursor, 2) == ["2026-01-01T00:00:00+00:00", "TR-1"]
    assert paging.decode(None, 2) is None
    assert paging.decode_id(paging.encode("42")) == 42
    forged = [cursor[:-3],  # truncated
              "12",  # a row id, as the CLI's cursors were spelt
              "not a cursor!", _b64("{}"), _b64('["a"]'),  # another listing's arity
              _b64('["1", 2]'), _b64('["a\\u0000"]'), "A" * (paging.MAX_CURSOR + 4)]
    for bad in forged:
        with pytest.raises(Refusal, match="^cursor is not one this listing gave"):
            paging.decode(bad, 2)
    for bad in [paging.encode("-1"), paging.encode("1e3"), paging.encode(str(MAX_ID + 1)), paging.encode("١٢"),
                paging.encode("1", "2")]:
        with pytest.raises(Refusal, match="^--cursor is not one"):
            paging.decode_id(bad, "--cursor")


def test_paging_through_a_listing_yields_every_row_once(app: App) -> None:
    ids = [store_inbound(app, f"Message-ID: <p{n}@x.example>\r\n\r\nhi\r\n".encode(), "a@x.example",
                         ["transfer@transfers.example.com"], "192.0.2.1") for n in range(7)]
    seen: list[int] = []
    cursor: str | None = None
    mores: list[int] = []
    while True:
        page = views.inbox_page(app, limit=3, cursor=cursor)
        seen += [item["id"] for item in page.items]
        mores.append(page.more)
        if page.next_cursor is None:
            break
        assert not page.next_cursor.isdigit(), "opaque, not a row id"
        cursor = page.next_cursor
    assert seen == ids and mores == [4, 1, 0]


def test_the_cli_listing_refuses_a_forged_cursor(app: App) -> None:
    store_inbound(app, b"Message-ID: <f@x.example>\r\n\r\nhi\r\n", "a@x.example", ["t@transfers.example.com"],
                  "192.0.2.1")
    for forged in ["1", paging.encode("1")[:-1], paging.encode("TR-1", "x")]:
        with pytest.raises(Refusal, match="^--cursor is not one this listing gave"):
            views.inbox_page(app, limit=1, cursor=forged)
