"""The ASGI application the daemon serves: health, the API (/v1), metrics and the operators' dashboard (/ui)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from transferbot import __version__
from transferbot.app.context import App
from transferbot.http import bodylimit as limits
from transferbot.http import health, hosts, openapi, problems
from transferbot.http.api import v1
from transferbot.http.metrics import Metrics
from transferbot.http.metrics import router as metrics_router
from transferbot.http.ui import dashboard


def create(app: App, readiness: health.Readiness, on_change: Callable[[], None] | None = None,
           metrics: Metrics | None = None) -> FastAPI:
    """``on_change`` is called after the API or the dashboard changed something (the daemon wakes its
    dispatchers); ``metrics`` is the daemon's registry (a fresh one without a daemon)."""
    api = FastAPI(title="transferbot", version=__version__, docs_url=None, redoc_url=None,
                  description="Email-driven approval of marketplace entitlement transfers: the API for ISVs and "
                              "the marketplace's systems.")
    problems.install(api)
    api.include_router(health.router(app, readiness))
    # -- the API for ISVs and the marketplace's systems --
    api.include_router(v1.router(app, on_change))
    api.add_middleware(limits.BodyLimit, max_bytes=app.config.http.max_body_bytes)
    openapi.install(api)
    # -- metrics and the operators' dashboard --
    api.include_router(metrics_router(metrics if metrics is not None else Metrics(app)))
    api.mount("/ui", dashboard(app, poke=on_change), name="ui")
    # -- outermost: a request for a host that is not ours goes no further (not even its body is read) --
    api.add_middleware(hosts.HostGuard, hosts=app.config.http.hosts, hsts=app.config.http.https)
    return api
