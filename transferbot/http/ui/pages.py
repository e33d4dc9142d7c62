"""The dashboard's pages (GET only, and no GET changes anything): sign-in, board, transfer, inbox, outbox."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from transferbot.app import outbox
from transferbot.app.context import App
from transferbot.app.queries import dashboard
from transferbot.core.domain import DeliveryStatus, OutboxStatus, Outcome, TransferStatus
from transferbot.core.errors import Refusal
from transferbot.http.ui.auth import Auth, Poke
from transferbot.http.ui.render import SECURITY_HEADERS, page
from transferbot.store.models import MAX_ID

# What a successful action says when the page it leads back to is shown (``?done=KEY``): fixed texts only.
NOTICES = {
    "cancelled": "The transfer is cancelled; every party is told why.",
    "resent": "The confirmation is queued again.",
    "replaced": "The contact is replaced: the old reply address no longer counts; the new one has a fresh "
                "confirmation.",
    "mail-retried": "The message is queued again.",
    "all-retried": "Every failed message is queued again.",
    "read-again": "The message was read again.",
    "webhook-retried": "The webhook delivery is queued again (same event id, same payload).",
    "signed-out": "You are signed out.",
}


@dataclass
class Site:
    """What every page and action of the dashboard shares."""

    app: App
    auth: Auth
    poke: Poke | None = None

    @property
    def form_limit(self) -> int:
        return self.app.config.http.max_body_bytes


# A row id in a path. Past what the id columns hold, PostgreSQL refuses the query and SQLite's driver raises
# OverflowError (a 500, both); out of range, it is no such page (404), as any unknown id is.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _int(value: str | None) -> int | None:
    """A row id in a query (``before``): anything but digits up to MAX_ID is ignored, as if not given."""
    return int(value) if value and value.isdigit() and len(value) <= len(str(MAX_ID)) and int(value) <= MAX_ID \
        else None


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a page of the dashboard, never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value \
            and all(32 < ord(c) < 127 for c in value):
        return value
    return "/ui/board"


def quote_next(target: str) -> str:
    return quote(target, safe="/")


def notice_of(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("done", ""))


async def transfer_view(site: Site, request: Request, tid: str, *, code: int = 200, error: str | None = None,
                        form: dict[str, str] | None = None, who: Any = None,
                        headers: dict[str, str] | None = None) -> Response:
    """The transfer page; after a refused action, with its one-line error and what the operator typed."""
    t = await _thread(dashboard.transfer_page, site.app, tid)
    pending_roles = [p["role"] for p in t["parties"] if p["decision"] == "pending"]
    return page(request, "transfer.html", code=code, headers=headers, who=who, t=t, error=error, form=form or {},
                notice=None if error else notice_of(request), roles=[p["role"] for p in t["parties"]],
                pending_roles=pending_roles, nav="board")


async def _thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def router(site: Site) -> APIRouter:
    r = APIRouter()
    auth = site.auth

    @r.get("/")
    async def home() -> Response:
        return RedirectResponse("/ui/board", status_code=303)

    @r.get("/sign-in")
    async def sign_in_form(request: Request) -> Response:
        if await auth.who(request) is not None:
            return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
        token = auth.sign_in_token(request)
        response = page(request, "sign_in.html", csrf=token, username="", next=safe_next(
            request.query_params.get("next")), notice=notice_of(request))
        auth.set_sign_in_cookie(response, token)
        return response

    @r.get("/board")
    async def board(request: Request) -> Response:
        who = await auth.require(request)
        status = request.query_params.get("status", "")
        q = request.query_params.get("q", "")

        def shown(sections: list[Any], error: str | None = None, code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
            return page(request, "board.html", code=code, headers=headers, who=who, sections=sections, status=status,
                        q=q, error=error, statuses=[s.value for s in TransferStatus], nav="board")

        async def on_refusal(exc: Refusal, code: int, headers: dict[str, str] | None) -> Response:
            return shown([], str(exc), code, headers)  # a filter refused: the board, empty, says why

        request.state.on_refusal = on_refusal
        return shown(await site.app.store.read_async(dashboard.board, status or None, q))

    @r.get("/transfers/{tid}")
    async def transfer(request: Request, tid: str) -> Response:
        who = await auth.require(request)
        return await transfer_view(site, request, tid, who=who)

    @r.get("/inbox")
    async def inbox(request: Request) -> Response:
        who = await auth.require(request)
        outcome = request.query_params.get("outcome", "")

        def shown(listing: dashboard.Listing, error: str | None = None, code: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
            return page(request, "inbox.html", code=code, headers=headers, who=who, listing=listing, outcome=outcome,
                        error=error, outcomes=[o.value for o in Outcome], notice=notice_of(request), nav="inbox")

        async def on_refusal(exc: Refusal, code: int, headers: dict[str, str] | None) -> Response:
            return shown(dashboard.Listing([], None, 0), str(exc), code, headers)  # a filter refused

        request.state.on_refusal = on_refusal
        return shown(await site.app.store.read_async(dashboard.inbox, outcome or None,
                                                     _int(request.query_params.get("before"))))

    @r.get("/inbox/{inbound_id}")
    async def inbound(request: Request, inbound_id: RowId) -> Response:
        who = await auth.require(request)
        item = await site.app.store.read_async(dashboard.inbound_one, inbound_id)
        return page(request, "inbound.html", who=who, m=item, show_raw=request.query_params.get("raw") == "1",
                    notice=notice_of(request), nav="inbox")

    @r.get("/inbox/{inbound_id}/raw")
    async def inbound_raw(request: Request, inbound_id: RowId) -> Response:
        who = await auth.require(request)
        raw = await site.app.store.read_async(dashboard.inbound_raw, inbound_id)
        if raw is None:
            return page(request, "missing.html", code=404, who=who, what=f"unknown inbound message #{inbound_id}")
        return _plain(dashboard.raw_text(raw), f"inbound-{inbound_id}.eml.txt")

    @r.get("/outbox")
    async def outbox_page(request: Request) -> Response:
        who = await auth.require(request)
        status = request.query_params.get("status", "")
        if status and status not in {s.value for s in OutboxStatus}:
            status = ""
        listing = await site.app.store.read_async(dashboard.outbox, status or None,
                                                  _int(request.query_params.get("before")))
        return page(request, "outbox.html", who=who, listing=listing, status=status,
                    statuses=[s.value for s in OutboxStatus], notice=notice_of(request), nav="outbox")

    @r.get("/webhooks")
    async def webhooks_page(request: Request) -> Response:
        who = await auth.require(request)
        status = request.query_params.get("status", "")
        if status and status not in DeliveryStatus.__members__.values():
            status = ""
        endpoints, listing = await site.app.store.read_async(dashboard.webhooks, status or None,
                                                             _int(request.query_params.get("before")))
        return page(request, "webhooks.html", who=who, endpoints=endpoints, listing=listing, status=status,
                    statuses=[s.value for s in DeliveryStatus], notice=notice_of(request), nav="webhooks")

    @r.get("/outbox/{outbound_id}/raw")
    async def outbound_raw(request: Request, outbound_id: RowId) -> Response:
        who = await auth.require(request)
        raw = await _thread(outbox.raw_of, site.app, outbound_id)
        if not raw:
            return page(request, "missing.html", code=404, who=who, what=f"unknown outbox message #{outbound_id}")
        return _plain(dashboard.raw_text(raw), f"outbound-{outbound_id}.eml.txt")

    return r


def _plain(text: str, filename: str) -> Response:
    """A raw message as plain text: never HTML, never sniffed as anything else, run by nothing."""
    return PlainTextResponse(text, headers={**SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'; "
                                            "sandbox", "Content-Disposition": f'inline; filename="{filename}"'})

