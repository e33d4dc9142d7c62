"""The ASGI application the daemon serves: health now; the API (/v1) and dashboard (/ui) mount here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from transferbot import __version__
from transferbot.http import health, problems
from transferbot.service.app import App

if TYPE_CHECKING:
    from transferbot.daemon import Daemon


def create(app: App, readiness: health.Readiness, daemon: Daemon | None = None) -> FastAPI:
    api = FastAPI(title="transferbot", version=__version__, docs_url=None, redoc_url=None,
                  description="Email-driven approval of marketplace entitlement transfers: the API for ISVs and "
                              "the marketplace's systems.")
    problems.install(api)
    api.include_router(health.router(app, readiness))
    # -- metrics and the operators' dashboard (issue 12) --
    from transferbot.http import metrics
    from transferbot.http.ui import dashboard

    api.include_router(metrics.router(metrics.Metrics(app, daemon)))
    api.mount("/ui", dashboard(app, poke=daemon.dispatcher.poke if daemon is not None else None), name="ui")
    # -- end of issue 12 --
    return api
