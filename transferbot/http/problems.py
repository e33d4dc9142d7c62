"""Errors as RFC 9457 problem details: ``application/problem+json`` with type, title, status and detail.

Every error the HTTP server answers goes through here, so an integrator parses one shape: a refusal
of the rules (``core.errors``) is answered by its kind, here and only here, and carries the CLI's own
words as ``detail``; a request that does not validate lists its
invalid fields under ``errors``; our own trouble is a 500 with no internals in it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from transferbot.core.errors import Refusal

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://transferbot.dev/problems/"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          406: "Not acceptable", 409: "Conflict", 413: "Request too large", 415: "Unsupported media type",
          422: "Unprocessable content", 429: "Too many requests", 500: "Internal error",
          503: "Service unavailable"}


STATUS = {"invalid": 422, "unknown": 404, "conflict": 409, "too-soon": 429}
"""The status of each kind of refusal, for the API and the dashboard alike."""
REFUSAL_TYPES = {404: "not-found", 409: "conflict", 422: "refused", 429: "too-soon"}


def status_of(exc: Refusal) -> int:
    return STATUS.get(exc.kind, 422)


def retry_headers(exc: Refusal) -> dict[str, str] | None:
    return {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None


class Problem(Exception):
    """Raised by a handler: answered as a problem document with this status."""

    def __init__(self, status: int, detail: str, *, kind: str = "", headers: dict[str, str] | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers, self.errors = status, detail, kind, headers, errors


def problem(status: int, detail: str, *, kind: str = "", headers: dict[str, str] | None = None,
            errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    title = TITLES.get(status, "Error")
    body: dict[str, Any] = {"type": TYPE_BASE + (kind or title.lower().replace(" ", "-")), "title": title,
                            "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(api: FastAPI) -> None:
    """Answer every error of ``api`` as a problem document."""

    @api.exception_handler(Problem)
    async def _problem(_request: Request, exc: Problem) -> JSONResponse:
        return problem(exc.status, exc.detail, kind=exc.kind, headers=exc.headers, errors=exc.errors)

    @api.exception_handler(Refusal)
    async def _refused(_request: Request, exc: Refusal) -> JSONResponse:
        status = status_of(exc)
        return problem(status, str(exc), kind=exc.code or REFUSAL_TYPES[status], headers=retry_headers(exc))

    @api.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @api.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
                  for e in exc.errors()]
        fields = ", ".join(e["field"] or "body" for e in errors)
        return problem(422, f"the request is not valid: {fields}", kind="invalid-request", errors=errors)

    @api.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("HTTP %s %s raised", request.method, request.url.path)
        return problem(500, "an internal error; the operator's log has the details")
