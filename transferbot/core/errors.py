"""The errors of the rules, typed once.

Each front end maps them once, by ``kind``, never route by route: the API to a problem document (invalid
422, unknown 404, conflict 409, too-soon 429, with ``Retry-After`` from ``retry_after``), the dashboard to
a page with the same status, the CLI to its exit code. The text is for the user, in every front end.
"""

from __future__ import annotations


class Refusal(Exception):
    """A request or command that the rules refuse; the text is for the user.

    ``kind`` says what sort of refusal it is: "invalid" (the request itself is wrong), "unknown" (no such
    entitlement, account or transfer), "conflict" (the state forbids it, e.g. an open transfer exists),
    "too-soon" (asked again sooner than a rule allows). ``code`` names a refusal more finely where a client
    acts on it (``idempotency-key-in-use``); ``retry_after`` (seconds) says when asking again may succeed."""

    kind: str = "invalid"
    code: str = ""
    retry_after: int | None = None


class Unknown(Refusal):
    """Something named does not exist (an entitlement, an account, a transfer)."""

    kind = "unknown"


class Conflict(Refusal):
    """The request is valid but the current state forbids it (an open transfer exists, a transfer is closed)."""

    kind = "conflict"


class TooSoon(Refusal):
    """Asked again sooner than a rule allows; ``retry_after``: seconds until it would be allowed."""

    kind = "too-soon"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
