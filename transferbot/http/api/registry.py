"""/v1/accounts and /v1/entitlements: the marketplace's billing system keeps the registry in step.

PUT creates (201) or replaces (200) by id, with admin keys only. Accounts are read with admin keys
only; entitlements also with an ISV key, which sees its own.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from transferbot.app import api_registry
from transferbot.app.apikeys import Principal
from transferbot.core.clock import now
from transferbot.http.api.auth import require_admin
from transferbot.http.api.context import Context, Ident, problems
from transferbot.http.api.schemas import (
    Account,
    AccountPage,
    AccountRequest,
    Entitlement,
    EntitlementPage,
    EntitlementRequest,
)

PAGE_DEFAULT, PAGE_MAX = 50, 200
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the page before")]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="items per page")]


def router(ctx: Context) -> APIRouter:
    r = APIRouter(prefix="/v1")
    who = Depends(ctx.principal)
    defaults = (ctx.app.config.workflow.default_locale, ctx.app.config.workflow.default_timezone)

    @r.put("/accounts/{account_id}", tags=["registry"], response_model=None, summary="Create or replace an account",
           description="Validated as `transferbot account add` validates (an address that is not valid is a 422 "
                       "naming it). An open transfer keeps the addresses it was filed with. Admin keys only.",
           responses={200: {"model": Account, "description": "replaced"},
                      201: {"model": Account, "description": "created"},
                      **problems(400, 401, 403, 409, 413, 422, 429)})
    async def put_account(account_id: Ident, body: AccountRequest, principal: Principal = who) -> JSONResponse:
        require_admin(principal)
        document, created = await ctx.write(api_registry.put_account, account_id, body.kind.value, body.name,
                                            body.emails, body.locale, body.timezone, defaults, now())
        return JSONResponse(document, status_code=201 if created else 200)

    @r.get("/accounts/{account_id}", tags=["registry"], response_model=None, summary="Read an account",
           responses={200: {"model": Account, "description": "the account"}, **problems(401, 403, 404, 429)})
    async def get_account(account_id: Ident, principal: Principal = who) -> JSONResponse:
        require_admin(principal)
        return JSONResponse(await ctx.read(api_registry.get_account, account_id))

    @r.get("/accounts", tags=["registry"], response_model=None, summary="List accounts",
           description="By id, a page at a time. Admin keys only.",
           responses={200: {"model": AccountPage, "description": "one page"}, **problems(401, 403, 422, 429)})
    async def list_accounts(principal: Principal = who, cursor: Cursor = None,
                            limit: Limit = PAGE_DEFAULT) -> JSONResponse:
        require_admin(principal)
        return JSONResponse(await ctx.read(api_registry.accounts_page, cursor, limit))

    @r.put("/entitlements/{entitlement_id}", tags=["registry"], response_model=None,
           summary="Create or replace an entitlement",
           description="Validated as `transferbot entitlement add` validates. Its customer, ISV and reseller cannot "
                       "change while a transfer of it is open (409). Admin keys only.",
           responses={200: {"model": Entitlement, "description": "replaced"},
                      201: {"model": Entitlement, "description": "created"},
                      **problems(400, 401, 403, 404, 409, 413, 422, 429)})
    async def put_entitlement(entitlement_id: Ident, body: EntitlementRequest,
                              principal: Principal = who) -> JSONResponse:
        require_admin(principal)
        document, created = await ctx.write(api_registry.put_entitlement, entitlement_id, body.product, body.customer,
                                            body.isv, body.reseller, body.state.value, now())
        return JSONResponse(document, status_code=201 if created else 200)

    @r.get("/entitlements/{entitlement_id}", tags=["registry"], response_model=None, summary="Read an entitlement",
           responses={200: {"model": Entitlement, "description": "the entitlement"}, **problems(401, 404, 429)})
    async def get_entitlement(entitlement_id: Ident, principal: Principal = who) -> JSONResponse:
        return JSONResponse(await ctx.read(api_registry.get_entitlement, principal, entitlement_id))

    @r.get("/entitlements", tags=["registry"], response_model=None, summary="List entitlements",
           description="By id, a page at a time; an ISV key sees its own.",
           responses={200: {"model": EntitlementPage, "description": "one page"}, **problems(401, 422, 429)})
    async def list_entitlements(principal: Principal = who, cursor: Cursor = None,
                                limit: Limit = PAGE_DEFAULT) -> JSONResponse:
        return JSONResponse(await ctx.read(api_registry.entitlements_page, principal, cursor, limit))

    return r
