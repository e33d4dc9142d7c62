"""/healthz (the process answers) and /readyz (it can do its work: database reachable and at this
release's schema, SMTP listener bound, not stopping). A graceful stop turns /readyz to 503 first,
so a load balancer stops sending before the listeners close."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from transferbot.app.context import App
from transferbot.store import schema


@dataclass
class Readiness:
    """What the daemon tells the HTTP side about itself."""

    stopping: bool = False
    smtp_bound: Callable[[], bool] = lambda: False


def router(app: App, readiness: Readiness) -> APIRouter:
    r = APIRouter(tags=["health"])

    @r.get("/healthz", summary="The process is alive", responses={200: {"description": "alive"}})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @r.get("/readyz", summary="The daemon can do its work",
           responses={200: {"description": "ready"}, 503: {"description": "not ready, with the reasons"}})
    async def readyz() -> JSONResponse:
        problems: list[str] = []
        if readiness.stopping:
            problems.append("stopping")
        if not readiness.smtp_bound():
            problems.append("SMTP listener not bound")
        try:
            revision = await app.store.read_async(lambda session: schema.current_in(session.connection()))
            if revision != schema.head():
                problems.append(f"database schema at {revision}, expected {schema.head()}")
        except Exception as exc:  # noqa: BLE001 - unreachable is exactly what this reports
            problems.append(f"database unreachable: {type(exc).__name__}")
        status = 503 if problems else 200
        return JSONResponse({"status": "ready" if not problems else "not ready", "problems": problems},
                            status_code=status)

    return r
