"""A message read without touching any transfer: everything the checks look at.

``read_message`` is pure: bytes and envelope in, a ``Reading`` out. The
chain of checks then decides with the help of the database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from transferbot.addresses import AddressBook, header_address
from transferbot.reader.autoreply import auto_reply_reason
from transferbot.reader.bounce import Bounce, read_bounce
from transferbot.reader.decision import DecisionWord, read_decision
from transferbot.reader.fresh import fresh_text
from transferbot.reader.html import html_segments, html_to_text
from transferbot.reader.message import DEFAULT_CAPS, Caps, body, header, headers, parse

_REF = re.compile(r"\[ref:([a-z2-7]{24})\]", re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")


@dataclass(frozen=True)
class Reading:
    """What the reader sees in one message, before any lookup."""

    digest: str
    message_id: str
    subject: str
    from_header: str
    from_address: str | None
    envelope_from: str
    envelope_tokens: tuple[str, ...]
    bounce_keys: tuple[str, ...]
    thread_ids: tuple[str, ...]
    body_tokens: tuple[str, ...]
    auto_reply: str | None
    bounce: Bounce | None
    auth_headers: tuple[str, ...]
    body_kind: str
    fresh_text: str
    decision: DecisionWord
    defects: tuple[str, ...] = field(default=())


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def fresh_from_body(kind: str, text: str, caps: Caps = DEFAULT_CAPS) -> str:
    """Fresh text of a body: HTML through its structure, then the text rules."""
    if kind != "html":
        return fresh_text(text, caps)
    segments = html_segments(text)
    for segment in segments:
        fresh = fresh_text(segment, caps)
        if fresh:
            return fresh
    return ""


def read_message(raw: bytes, mail_from: str, rcpt_tos: list[str], book: AddressBook,
                 caps: Caps = DEFAULT_CAPS) -> Reading:
    msg = parse(raw)
    envelope_tokens: list[str] = []
    bounce_keys: list[str] = []
    for rcpt in rcpt_tos:
        recipient = book.parse(rcpt)
        if recipient is None or not recipient.tag:
            continue
        (envelope_tokens if recipient.kind == "reply" else bounce_keys).append(recipient.tag)
    thread: list[str] = []
    in_reply_to = header(msg, "In-Reply-To") or ""
    references = header(msg, "References") or ""
    thread.extend(_MSGID.findall(in_reply_to))
    thread.extend(reversed(_MSGID.findall(references)))
    content = body(msg, caps)
    fresh = fresh_from_body(content.kind, content.text, caps)
    full = html_to_text(content.text) if content.kind == "html" else content.text
    body_tokens = list(dict.fromkeys(t.lower() for t in _REF.findall(full[: caps.max_text_chars])))
    from_header = header(msg, "From") or ""
    defects = tuple(sorted({type(d).__name__ for d in getattr(msg, "defects", [])}))
    return Reading(
        digest=digest_of(raw),
        message_id=(header(msg, "Message-ID") or "").strip()[:500],
        subject=" ".join((header(msg, "Subject") or "").split())[:500],
        from_header=from_header[:500],
        from_address=header_address(from_header),
        envelope_from=mail_from,
        envelope_tokens=tuple(dict.fromkeys(envelope_tokens)),
        bounce_keys=tuple(dict.fromkeys(bounce_keys)),
        thread_ids=tuple(dict.fromkeys(thread)),
        body_tokens=tuple(body_tokens),
        auto_reply=auto_reply_reason(msg),
        bounce=read_bounce(msg, mail_from, caps),
        auth_headers=tuple(headers(msg, "Authentication-Results")),
        body_kind=content.kind,
        fresh_text=fresh,
        decision=read_decision(fresh),
        defects=defects,
    )
