"""Who a request acts as: ``Authorization: Bearer KEY``, checked against the stored hashes, then rate-limited.

401 without a valid key (``WWW-Authenticate: Bearer``), 429 past the key's rate (``Retry-After``),
403 for what the key may not do (``require_admin``). A key never reaches a log: uvicorn's access
log is off, and nothing here logs the header or the key (only its id, once it is known).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from transferbot.app import apikeys
from transferbot.app.apikeys import Principal
from transferbot.app.context import App
from transferbot.http.api.ratelimit import RateLimiter
from transferbot.http.problems import Problem

bearer = HTTPBearer(auto_error=False, scheme_name="apiKey",
                    description="An API key made with `transferbot apikey create` (`tbk_…`).")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="transferbot"'}


def authenticator(app: App, limiter: RateLimiter) -> Callable[[HTTPAuthorizationCredentials | None],
                                                              Awaitable[Principal]]:
    """The dependency every /v1 operation takes: the principal, or a 401 or 429 problem."""

    async def principal(credentials: HTTPAuthorizationCredentials | None) -> Principal:
        if credentials is None:
            raise Problem(401, "an API key is required: send Authorization: Bearer KEY", kind="unauthorized",
                          headers=CHALLENGE)
        found = await app.store.read_async(apikeys.authenticate, credentials.credentials)
        if found is None:
            raise Problem(401, "the API key is not valid (unknown, malformed or revoked)", kind="unauthorized",
                          headers=CHALLENGE)
        wait = limiter.take(found.key_id)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise Problem(429, f"too many requests with this key; try again in {seconds} s", kind="rate-limited",
                          headers={"Retry-After": str(seconds)})
        return found

    return principal


def require_admin(principal: Principal) -> None:
    if not principal.admin:
        raise Problem(403, "this needs an admin key (the marketplace's own systems); an ISV key may not do it",
                      kind="forbidden")
