"""The API for ISVs and the marketplace's systems (/v1): its routers (transfers, the registry), under one.

Every operation takes the caller's key (http.auth), runs one use case of the service layer in one
transaction, and answers a refusal of the rules as a problem document (http.context).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends

from transferbot.app.context import App
from transferbot.http.api import registry, transfers
from transferbot.http.api.context import Context, known_query


def router(app: App, on_change: Callable[[], None] | None = None) -> APIRouter:
    ctx = Context(app, on_change or (lambda: None))
    r = APIRouter(dependencies=[Depends(known_query)])
    r.include_router(transfers.router(ctx))
    r.include_router(registry.router(ctx))
    return r
