"""The operators' dashboard under /ui/: server-rendered pages, readable without JavaScript.

Assembled as an application of its own, mounted by ``transferbot.http.app``, so that its errors are pages
(not the API's problem documents) and it stays out of the API's OpenAPI document. A small vendored htmx
(``static/htmx.min.js``, BSD Zero-Clause) refreshes the board in place; every page works without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from transferbot.app.context import App
from transferbot.core.errors import Refusal
from transferbot.http import problems
from transferbot.http.ui import actions, pages
from transferbot.http.ui.auth import Auth, Forbidden, NotSignedIn, Poke
from transferbot.http.ui.forms import FormError
from transferbot.http.ui.render import SECURITY_HEADERS, page

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response


class _Guarded:
    """Every answer of the dashboard (pages, redirects, errors, files) carries SECURITY_HEADERS unless it set its own."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in headers:
                        headers[key] = value
            await send(message)

        await self.inner(scope, receive, guarded)


def dashboard(app: App, poke: Poke | None = None, auth: Auth | None = None) -> FastAPI:
    site = pages.Site(app, auth or Auth(app), poke)
    ui = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    ui.add_middleware(_Guarded)
    ui.mount("/static", _Static(directory=STATIC), name="static")
    ui.include_router(pages.router(site))
    ui.include_router(actions.router(site))

    @ui.exception_handler(NotSignedIn)
    async def _sign_in_first(request: Request, _exc: NotSignedIn) -> Response:
        if request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/sign-in?next={pages.quote_next(target)}", status_code=303)
        return page(request, "refused.html", code=401, error="Sign in first: nothing was changed.",
                    back="/ui/sign-in")

    @ui.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        log.warning("dashboard: %s %s refused: %s", request.method, request.url.path, exc)
        return page(request, "refused.html", code=403, back="/ui/board",
                    error="This form had expired or did not come from this dashboard: nothing was changed. "
                          "Reload the page and try again.")

    @ui.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> Response:
        """Every refusal of the rules, mapped once: its status by its kind (as the API's), shown where the
        route said (``request.state.on_refusal``: the transfer page with what was typed, say), else on a
        page of its own with the way back. Something that does not exist is "no such page"."""
        code, headers = problems.status_of(exc), problems.retry_headers(exc)
        who = getattr(request.state, "who", None)
        log.info("dashboard: %s %s refused%s: %s", request.method, request.url.path,
                 f" for {who.name}" if who is not None else "", exc)
        show = getattr(request.state, "on_refusal", None)
        if exc.kind == "unknown" or (show is None and request.method in ("GET", "HEAD")):
            return page(request, "missing.html", code=code, who=who, what=str(exc), headers=headers)
        if show is not None:
            response: Response = await show(exc, code, headers)
            return response
        return page(request, "refused.html", code=code, who=who, error=str(exc), headers=headers,
                    back=getattr(request.state, "back", "/ui/board"))

    @ui.exception_handler(FormError)
    async def _bad_form(request: Request, exc: FormError) -> Response:
        return page(request, "refused.html", code=exc.status, error=str(exc), back="/ui/board")

    @ui.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        what = "No such page." if exc.status_code == 404 else str(exc.detail)
        return page(request, "missing.html", code=exc.status_code, what=what,
                    headers=getattr(exc, "headers", None))

    @ui.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _exc: RequestValidationError) -> Response:
        return page(request, "missing.html", code=404, what="No such page.")

    @ui.exception_handler(Exception)
    async def _crash(request: Request, _exc: Exception) -> Response:
        log.exception("dashboard: %s %s raised", request.method, request.url.path)
        return page(request, "refused.html", code=500, back="/ui/board",
                    error="An internal error; the operator's log has the details.")

    return ui
