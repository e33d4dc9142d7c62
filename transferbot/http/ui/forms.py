"""Reading a dashboard form: URL-encoded only, its size bounded before it is parsed."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

MAX_FIELDS = 20


class FormError(Exception):
    """A form we cannot read; ``status`` is the HTTP answer (413, 415 or 400)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """The fields of a browser's form post (the first value of each), at most ``limit`` bytes of it."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError(415, "send the dashboard's forms as a browser does (application/x-www-form-urlencoded)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FormError(413, f"the form is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormError(413, f"the form is larger than {limit} bytes")
    try:
        pairs = parse_qsl(bytes(body).decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "the form could not be read (not UTF-8, or too many fields)") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields
