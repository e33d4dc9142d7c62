"""What the routers of the API (/v1) share: the caller's key, the use-case runners, refusals as problems.

Every operation takes the caller's key (http.auth), runs one use case of the service layer in one
transaction (writes through ``store.transact``, so the daemon's loop never waits on the database),
and lets a refusal of the rules go to the API's one error handler (http.problems), which answers it
as a problem document by its kind.
After a change the dispatchers are woken, so the mail and webhooks it caused go out at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from transferbot.app.apikeys import Principal
from transferbot.app.context import App
from transferbot.http.api import auth
from transferbot.http.api.ratelimit import RateLimiter
from transferbot.http.api.schemas import NO_CONTROLS
from transferbot.http.api.schemas import Problem as ProblemModel
from transferbot.http.problems import Problem

T = TypeVar("T")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(auth.bearer)]
Ident = Annotated[str, Path(min_length=1, max_length=256, pattern=NO_CONTROLS,
                            description="an id (no control characters)")]
DESCRIPTIONS = {
    400: "the body could not be read (not JSON, or not in the encoding it declares)",
    401: "no API key, or one that is not valid (unknown or revoked)",
    403: "the key may not do this (an ISV key, where an admin key is needed)",
    404: "no such resource, or one the key may not see",
    406: "the Accept header asks for a format this resource does not have",
    409: "the current state forbids it (an open transfer exists; the transfer is closed)",
    413: "the request body is larger than [http] max_body_bytes",
    422: "the request is not valid: the problem's detail says why (errors lists invalid fields)",
    429: "too many requests with this key, or (resend) too soon for a rule: wait Retry-After seconds",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of an operation, for its OpenAPI entry (problem documents, each)."""
    return {code: {"model": ProblemModel, "description": DESCRIPTIONS[code]} for code in codes}


class Context:
    """What the /v1 routers share: the app, the caller's principal, and the use-case runners."""

    def __init__(self, app: App, on_change: Callable[[], None]) -> None:
        self.app = app
        self.on_change = on_change
        cfg = app.config.api
        check = auth.authenticator(app, RateLimiter(cfg.rate_limit_per_minute, cfg.rate_limit_burst))

        async def principal(credentials: Credentials) -> Principal:
            return await check(credentials)

        self.principal = principal

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.app.store.read_async(fn, *args)

    async def write(self, fn: Callable[..., T], *args: Any, wake: bool = True) -> T:
        """``fn`` in a write transaction; then, unless ``wake`` is False (a write that causes no mail or
        webhook), the dispatchers are woken."""
        result = await self.app.store.transact(fn, *args)
        if wake:
            self.on_change()
        return result


async def known_query(request: Request) -> None:
    """A query parameter the operation does not take is refused (a misspelt filter would silently filter
    nothing)."""
    route = request.scope.get("route")
    if route is None or not request.query_params:
        return
    allowed = _query_names(route.dependant)
    unknown = [name for name in request.query_params if name not in allowed]
    if unknown:
        raise Problem(422, f"unknown query parameter {unknown[0]!r}", kind="invalid-request",
                      errors=[{"field": f"query.{name}", "message": "not a parameter of this operation"}
                              for name in unknown])


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
