"""/v1/transfers: file a transfer (idempotently), read one or a page, cancel, resend, the certificate."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from transferbot.app import api_transfers, idempotency
from transferbot.app.apikeys import Principal
from transferbot.app.controls import REASON_LIMIT
from transferbot.app.transfers import check_note
from transferbot.core.clock import now
from transferbot.core.domain import TransferStatus
from transferbot.http.api.context import Context, Ident, problems
from transferbot.http.api.schemas import CancelRequest, ResendRequest, Resent, Transfer, TransferPage, TransferRequest
from transferbot.http.problems import Problem

PAGE_DEFAULT, PAGE_MAX = 50, 200
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=idempotency.MAX_KEY, pattern=r"^[\x21-\x7e]+$",
    description="Any unique string (a UUID). The same key and body within 24 hours answer the first response "
                "again and file nothing more; the same key with another body is a 422; while a request with "
                "the key is under way, a 409 `idempotency-key-in-use` (retry after `Retry-After` seconds). "
                "A refused request keeps nothing: fixed, it may be sent again with its key.")]


def negotiate(accept: str | None) -> str | None:
    """"json" or "html" by the Accept header's q-values (JSON when both are equal or nothing is asked);
    None when neither is acceptable."""
    if not accept or not accept.strip():
        return "json"
    quality = {"json": (-1, 0.0), "html": (-1, 0.0)}  # (specificity of the best match, q)
    matches = {"json": ("application/json", "application/*"), "html": ("text/html", "text/*")}
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        media = media.lower()
        for fmt, (exact, family) in matches.items():
            specificity = 2 if media == exact else 1 if media == family else 0 if media == "*/*" else -1
            if specificity >= 0 and specificity > quality[fmt][0]:
                quality[fmt] = (specificity, q)
    json_q, html_q = quality["json"][1], quality["html"][1]
    if json_q <= 0 and html_q <= 0:
        return None
    return "html" if html_q > json_q else "json"


def router(ctx: Context) -> APIRouter:
    r = APIRouter(prefix="/v1/transfers", tags=["transfers"])
    who = Depends(ctx.principal)
    stale = timedelta(seconds=ctx.app.config.database.lease_seconds)  # a claim outlived by its request
    filing_problems = problems(400, 401, 404, 409, 413, 422, 429)
    filing_problems[409] = {**filing_problems[409], "description": (
        "an open transfer of the entitlement exists; or a request with this Idempotency-Key is under way "
        "(type `idempotency-key-in-use`): send it again after Retry-After seconds for its answer")}

    @r.post("", status_code=201, response_model=None, summary="File a transfer",
            description="File a transfer of an entitlement, as the ISV (an ISV key: only its own entitlements). "
                        "Every party is mailed at once. Answers the transfer as the key sees it (`GET "
                        "/v1/transfers/{id}`). With an Idempotency-Key, a request sent while another with the "
                        "same key is under way is a 409 of type `idempotency-key-in-use` with `Retry-After`: "
                        "sent again then, it gets the first request's answer.",
            responses={201: {"model": Transfer, "description": "filed (or filed before, with this Idempotency-Key "
                                                                "and body: the first response again)"},
                       **filing_problems})
    async def file_transfer(body: TransferRequest, principal: Principal = who,
                            idempotency_key: IdempotencyKey = None) -> JSONResponse:
        note = check_note(body.note, "note")
        claim = None
        if idempotency_key is not None:
            key = idempotency.check_key(idempotency_key)
            request = idempotency.request_hash("POST", "/v1/transfers", body.model_dump(mode="json"))
            found = await ctx.write(idempotency.claim, principal.key_id, key, request, now(), stale, wake=False)
            if isinstance(found, idempotency.Kept):
                return JSONResponse(found.response, status_code=found.status, headers={"Idempotent-Replayed": "true"})
            claim = found
        try:
            document = await ctx.write(api_transfers.file_transfer, ctx.app, principal, body.entitlement,
                                       body.to_reseller, note, claim, now())
        except BaseException:
            if claim is not None:  # nothing was filed: the key is free for a retry
                await asyncio.shield(ctx.write(idempotency.release, claim, wake=False))
            raise
        return JSONResponse(document, status_code=201)

    @r.get("", response_model=None, summary="List transfers",
           description="Transfers, oldest first, a page at a time (each as `transferbot list --json` prints it); "
                       "an ISV key sees only its own.",
           responses={200: {"model": TransferPage, "description": "one page"}, **problems(401, 422, 429)})
    async def list_transfers(
        principal: Principal = who,
        status: Annotated[TransferStatus | None, Query(description="only transfers in this state")] = None,
        entitlement: Annotated[str | None, Query(max_length=256, description="only this entitlement's")] = None,
        cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the page before")] = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="items per page")] = PAGE_DEFAULT,
    ) -> JSONResponse:
        page = await ctx.read(api_transfers.transfers_page, principal, status.value if status else None, entitlement,
                              cursor, limit)
        return JSONResponse(page)

    @r.get("/{transfer_id}", response_model=None, summary="Read a transfer",
           description="An admin key gets the operator's view (`audience` `operator`): the transfer as "
                       "`transferbot show --json` prints it, without reply tokens. An ISV key gets the ISV's "
                       "(`audience` `isv`): what its copy of the certificate shows, each party by account, role, "
                       "decision and time, the trail by kind, time and hash, and its own addresses; no other "
                       "party's address, no sender, IP, HELO name, authentication result, Message-ID or token.",
           responses={200: {"model": Transfer, "description": "the transfer as the key sees it"},
                      **problems(401, 404, 429)})
    async def get_transfer(transfer_id: Ident, principal: Principal = who) -> JSONResponse:
        return JSONResponse(await ctx.read(api_transfers.get_transfer, principal, transfer_id))

    @r.post("/{transfer_id}/cancel", response_model=None, summary="Cancel a pending transfer",
            description="The ISV withdraws the request; every party is told why.",
            responses={200: {"model": Transfer, "description": "cancelled"},
                       **problems(400, 401, 404, 409, 413, 422, 429)})
    async def cancel_transfer(transfer_id: Ident, body: CancelRequest, principal: Principal = who) -> JSONResponse:
        reason = check_note(body.reason, "reason", REASON_LIMIT)
        return JSONResponse(await ctx.write(api_transfers.cancel, ctx.app, principal, transfer_id, reason, now()))

    @r.post("/{transfer_id}/resend", response_model=None, summary="Mail the confirmation again",
            description="The confirmation again (same reply address, same thread) to the parties still to answer, "
                        "or to one. A party is resent at most once an hour: one resent within the hour is left "
                        "out, and when that leaves nobody the answer is a 429 with `Retry-After`.",
            responses={200: {"model": Resent, "description": "queued"}, **problems(400, 401, 404, 409, 413, 422, 429)})
    async def resend(transfer_id: Ident, body: ResendRequest | None = None, principal: Principal = who) -> JSONResponse:
        role = body.role.value if body is not None and body.role is not None else None
        return JSONResponse(await ctx.write(api_transfers.resend, ctx.app, principal, transfer_id, role, now()))

    @r.get("/{transfer_id}/certificate", response_model=None, summary="The certificate of a transfer",
           description="JSON, or HTML with `Accept: text/html`. An admin key gets the operator's full record; an "
                       "ISV key the copy every party gets with its completion notice.",
           responses={200: {"description": "the certificate",
                            "content": {"application/json": {"schema": {"type": "object"}},
                                        "text/html": {"schema": {"type": "string"}}}},
                      **problems(401, 404, 406, 429)})
    async def certificate(transfer_id: Ident, principal: Principal = who,
                          accept: Annotated[str | None, Header(include_in_schema=False)] = None) -> Response:
        fmt = negotiate(accept)
        if fmt is None:
            raise Problem(406, "the certificate is application/json or text/html", kind="not-acceptable")
        text = await ctx.read(api_transfers.certificate_of, ctx.app, principal, transfer_id, fmt, now())
        if fmt == "html":
            return HTMLResponse(text)
        return Response(text, media_type="application/json")

    return r

