"""The ASGI application the daemon serves: health now; the API (/v1) and dashboard (/ui) mount here."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from transferbot import __version__
from transferbot.http import health, problems
from transferbot.service.app import App


def create(app: App, readiness: health.Readiness, on_change: Callable[[], None] | None = None) -> FastAPI:
    """``on_change`` is called after the API changed something (the daemon wakes its dispatchers)."""
    api = FastAPI(title="transferbot", version=__version__, docs_url=None, redoc_url=None,
                  description="Email-driven approval of marketplace entitlement transfers: the API for ISVs and "
                              "the marketplace's systems.")
    problems.install(api)
    api.include_router(health.router(app, readiness))
    # -- the API for ISVs and the marketplace's systems (issue 11) --
    from transferbot.http import limits, openapi, v1

    api.include_router(v1.router(app, on_change))
    api.add_middleware(limits.BodyLimit, max_bytes=app.config.http.max_body_bytes)
    openapi.install(api)
    # -- end of the API --
    return api
