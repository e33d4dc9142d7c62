"""The errors of the rules, typed once: each front end maps them once (the API to problem documents, the
dashboard to a status and a message, the CLI to an exit code), never route by route."""

from __future__ import annotations


class Refusal(Exception):
    """A request or command that the rules refuse; the text is for the user.

    ``kind`` says what sort of refusal it is, so the HTTP API answers the right status without
    reading the words: "invalid" (422), "unknown" (404: no such entitlement, account or transfer),
    "conflict" (409: the state forbids it, e.g. an open transfer exists). The CLI prints the words alone."""

    kind: str = "invalid"


class Unknown(Refusal):
    """Something named does not exist (an entitlement, an account, a transfer)."""

    kind = "unknown"


class Conflict(Refusal):
    """The request is valid but the current state forbids it (an open transfer exists, a transfer is closed)."""

    kind = "conflict"
