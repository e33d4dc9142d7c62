"""Parsing a raw message safely and finding the text its author wrote.

Everything here is bounded (parts walked, bytes decoded, lines kept) so that
no message can make the reader slow, and nothing raises on malformed input:
a header that cannot be parsed reads as absent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Literal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caps:
    """Bounds on how much of a message the reader looks at."""

    max_parts: int = 64
    max_depth: int = 8
    max_part_bytes: int = 512 * 1024
    max_text_chars: int = 200_000
    max_lines: int = 2_000
    max_line_chars: int = 4_000


DEFAULT_CAPS = Caps()


def parse(raw: bytes) -> EmailMessage:
    """Parse bytes into a message; the email package is lenient and records defects."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def header(msg: Message, name: str) -> str | None:
    """One header as text, or None when absent or unparseable (never raises)."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - a malformed header reads as absent
        try:
            raw_items = msg.raw_items() if isinstance(msg, EmailMessage) else msg.items()  # type: ignore[attr-defined]
            for key, raw_value in raw_items:
                if key.lower() == name.lower():
                    return str(raw_value)
        except Exception:  # noqa: BLE001
            return None
        return None
    if value is None:
        return None
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        return None


def headers(msg: Message, name: str) -> list[str]:
    """Every occurrence of a header, as text."""
    out: list[str] = []
    try:
        values = msg.get_all(name) or []
    except Exception:  # noqa: BLE001
        return out
    for value in values:
        try:
            out.append(str(value))
        except Exception:  # noqa: BLE001
            continue
    return out


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else UTF-8, else Windows-1252."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("cp1252", errors="replace")


def part_text(part: Message, caps: Caps = DEFAULT_CAPS) -> str:
    """The decoded text of a leaf text part (transfer encoding and charset undone)."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        payload = raw.encode("utf-8", "replace") if isinstance(raw, str) else b""
    payload = payload[: caps.max_part_bytes]
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return decode_bytes(payload, charset)[: caps.max_text_chars]


def walk(msg: Message, caps: Caps = DEFAULT_CAPS) -> list[Message]:
    """Leaf and container parts, depth-first, bounded in count and depth."""
    out: list[Message] = []

    def visit(part: Message, depth: int) -> None:
        if len(out) >= caps.max_parts or depth > caps.max_depth:
            return
        out.append(part)
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                for child in payload:
                    if isinstance(child, Message):
                        visit(child, depth + 1)

    visit(msg, 0)
    return out


def _is_attachment(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return False
    return disposition == "attachment"


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:  # noqa: BLE001
        return "text/plain"


@dataclass(frozen=True)
class Body:
    kind: Literal["plain", "html", "none"]
    text: str


def body(msg: Message, caps: Caps = DEFAULT_CAPS) -> Body:
    """The author's text: the first inline text/plain part, else the first text/html.

    Parts inside attached messages (message/rfc822) are not the author's.
    """
    plain: Message | None = None
    html: Message | None = None
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < caps.max_parts:
        part, depth = stack.pop(0)
        seen += 1
        ctype = _content_type(part)
        if part.is_multipart():
            if ctype == "message/rfc822" or depth >= caps.max_depth:
                continue
            payload = part.get_payload()
            if isinstance(payload, list):
                stack[0:0] = [(child, depth + 1) for child in payload if isinstance(child, Message)]
            continue
        if _is_attachment(part):
            continue
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and html is None:
            html = part
    if plain is not None:
        text = part_text(plain, caps)
        if text.strip() or html is None:
            return Body("plain", text)
    if html is not None:
        return Body("html", part_text(html, caps))
    return Body("none", "")


def bounded_lines(text: str, caps: Caps = DEFAULT_CAPS) -> list[str]:
    """Split into at most max_lines lines of at most max_line_chars each."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")[: caps.max_text_chars]
    lines = text.split("\n", caps.max_lines)[: caps.max_lines]
    return [line[: caps.max_line_chars] for line in lines]
