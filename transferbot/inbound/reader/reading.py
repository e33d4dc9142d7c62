"""A message read without touching any transfer: everything the checks look at.

``read_message`` is pure: bytes and envelope in, a ``Reading`` out. The
chain of checks then decides with the help of the database. It never raises
on any bytes: parsing is bounded and lenient (see ``message``), and a check
that fails on a malformed message reads as "nothing found", recorded among
the defects.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field, replace
from email.message import Message
from email.utils import getaddresses

from transferbot.core.addresses import AddressBook, header_address
from transferbot.inbound.reader.autoreply import (
    MACHINE_TEXT_CHARS,
    auto_reply_reason,
    machine_mail_reason,
    machine_text_reason,
)
from transferbot.inbound.reader.bounce import Bounce, read_bounce
from transferbot.inbound.reader.decision import DecisionWord, read_decision
from transferbot.inbound.reader.details import Stated, stated
from transferbot.inbound.reader.fresh import Fresh, split_fresh
from transferbot.inbound.reader.html import read_html
from transferbot.inbound.reader.message import (
    DEFAULT_CAPS,
    Body,
    Caps,
    body,
    header,
    headers,
    parse,
    unwrap_clearsigned,
)
from transferbot.inbound.wire import message_id_of

log = logging.getLogger(__name__)

_REF = re.compile(r"\[ref:([a-z2-7]{24})\]", re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s@]{1,250}@[^<>\s]{1,250}>")
_ID_SPLIT = re.compile(r"(?<=>)|\s+|,")
_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]{1,200}@[^\s<>\"'(),;:\[\]]{1,200}")


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
    fresh_cut: str = ""  # what ended the fresh text (quote, attribution, headers, rule, marker, signature)
    from_addresses: tuple[str, ...] = ()  # every address in every From header, as written (lower case)
    stated: tuple[Stated, ...] = ()  # the details of a move an approval states (checked against the transfer's)
    signed: str = ""  # "pgp-clearsigned": the text was read inside its inline signature (kept, not verified)

    @property
    def from_domain(self) -> str | None:
        """The From domain when the From holds exactly one address (else no domain can be authenticated)."""
        if len(self.from_addresses) != 1 or self.from_address is None:
            return None
        return self.from_address.rpartition("@")[2] or None


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _fresh_of_segments(segments: list[str], caps: Caps) -> Fresh:
    """HTML: the text before the first quote container, else (bottom-posting) after it,
    as long as nothing so far says the rest is the original."""
    last = Fresh("")
    for segment in segments:
        last = split_fresh(segment, caps)
        if last.text or not last.open:
            return last
    return Fresh("", last.cut, open=False)


def _read_body(kind: str, text: str, caps: Caps) -> tuple[Fresh, str, bool]:
    """The fresh text of a body, its whole visible text, and whether it was inline PGP clearsigned
    (then read inside its signature)."""
    if kind != "html":
        text, signed = unwrap_clearsigned(text)
        return split_fresh(text, caps), text, signed
    segments, everything = read_html(text[: caps.max_html_chars])
    return _fresh_of_segments(segments, caps), everything, False


def fresh_from_body(kind: str, text: str, caps: Caps = DEFAULT_CAPS) -> str:
    """Fresh text of a body: HTML through its structure, then the text rules."""
    return _read_body(kind, text, caps)[0].text


def _without_ours(word: DecisionWord, book: AddressBook) -> DecisionWord:
    """A decline's reason up to the first line that names one of our addresses or carries our
    reference: should the cutting ever miss a quote, the reason that goes to every party still
    carries no party's token."""
    if not word.reason:
        return word
    kept: list[str] = []
    for line in word.reason.splitlines():
        if _REF.search(line) or any(book.is_ours(a.rstrip(".")) for a in _ADDRESS.findall(line)):
            return replace(word, reason="\n".join(kept).strip())
        kept.append(line)
    return word


def _unquoted(text: str) -> str:
    """The beginning of a body without its ``>`` lines: what a machine wrote when no fresh text was
    found above a marker (Zendesk's ``##- … -##`` looks like ours)."""
    return "\n".join(line for line in text[:MACHINE_TEXT_CHARS].splitlines() if not line.lstrip().startswith(">"))


def _message_ids(value: str) -> list[str]:
    """Message-IDs in a threading header, split first so each match is bounded."""
    out: list[str] = []
    for token in _ID_SPLIT.split(value):
        token = token.strip()
        if 5 <= len(token) <= 502 and _MSGID.fullmatch(token):
            out.append(token)
    return out


def _all_from(msg: Message) -> tuple[str, ...]:
    """Every address of every From header: a reply that names two senders is nobody's."""
    try:
        pairs = getaddresses([v[:2000] for v in headers(msg, "From")][:5])
    except Exception:  # noqa: BLE001 - an unreadable From names nobody
        return ()
    return tuple(addr.strip().lower() for _name, addr in pairs[:20] if addr.strip())


def read_message(raw: bytes, mail_from: str, rcpt_tos: list[str], book: AddressBook,
                 caps: Caps = DEFAULT_CAPS) -> Reading:
    """Read one message; never raises on any bytes."""
    msg = parse(raw, caps)
    message_id = message_id_of(raw)  # what the edge stored: the duplicate check compares the two
    defects = {type(d).__name__ for d in getattr(msg, "defects", [])}
    if "UnparseableStructureDefect" in defects:
        log.warning("%s: MIME structure unparseable; read the headers only", message_id or "-")
    envelope_tokens: list[str] = []
    bounce_keys: list[str] = []
    for rcpt in rcpt_tos[:100]:
        try:
            recipient = book.parse(rcpt)
        except Exception:  # noqa: BLE001 - an unreadable recipient names nothing
            recipient = None
        if recipient is None or not recipient.tag:
            continue
        (envelope_tokens if recipient.kind == "reply" else bounce_keys).append(recipient.tag)
    thread: list[str] = []
    thread.extend(_message_ids(header(msg, "In-Reply-To") or ""))
    thread.extend(reversed(_message_ids(header(msg, "References") or "")))
    try:
        content = body(msg, caps)
        fresh, full, signed = _read_body(content.kind, content.text, caps)
    except Exception as exc:  # noqa: BLE001 - an unreadable body says nothing
        log.warning("%s: body unreadable: %s", message_id or "-", type(exc).__name__)
        defects.add("BodyUnreadable")
        content, fresh, full, signed = Body("none", ""), Fresh(""), "", False
    body_tokens = list(dict.fromkeys(t.lower() for t in _REF.findall(full[: caps.max_text_chars])))
    from_header = (header(msg, "From") or "")[:500]
    from_addresses = _all_from(msg)
    try:
        from_address = header_address(from_header)
    except Exception as exc:  # noqa: BLE001 - e.g. RecursionError on nested comments: no usable sender
        log.warning("%s: From header unreadable: %s", message_id or "-", type(exc).__name__)
        defects.add("FromUnreadable")
        from_address = None
    try:
        auto_reply = auto_reply_reason(msg)
    except Exception as exc:  # noqa: BLE001 - a check that fails on a malformed message finds nothing
        log.warning("%s: auto-reply check failed on a malformed message: %s", message_id or "-",
                    type(exc).__name__)
        defects.add("AutoReplyCheckFailed")
        auto_reply = None
    try:
        bounce = read_bounce(msg, mail_from, caps)
    except Exception as exc:  # noqa: BLE001
        log.warning("%s: bounce check failed on a malformed message: %s", message_id or "-", type(exc).__name__)
        defects.add("BounceCheckFailed")
        # a null envelope sender is a bounce by definition (RFC 5321 4.5.5), checks or not
        bounce = Bounce(why="null envelope sender") if mail_from.strip() in ("", "<>") else None
    decision = _without_ours(read_decision(fresh.text), book)
    if auto_reply is None and decision.kind not in ("approve", "decline", "status"):
        auto_reply = machine_text_reason(fresh.text or _unquoted(full)) or machine_mail_reason(msg, full)
    return Reading(
        digest=digest_of(raw),
        message_id=message_id,
        subject=" ".join((header(msg, "Subject") or "").split())[:500],
        from_header=from_header,
        from_address=from_address,
        envelope_from=mail_from,
        envelope_tokens=tuple(dict.fromkeys(envelope_tokens)),
        bounce_keys=tuple(dict.fromkeys(bounce_keys)),
        thread_ids=tuple(dict.fromkeys(thread)),
        body_tokens=tuple(body_tokens),
        auto_reply=auto_reply,
        bounce=bounce,
        auth_headers=tuple(headers(msg, "Authentication-Results")),
        body_kind=content.kind,
        fresh_text=fresh.text,
        decision=decision,
        defects=tuple(sorted(defects)),
        fresh_cut=fresh.cut or "",
        from_addresses=from_addresses,
        stated=stated(fresh.text) if decision.kind == "approve" else (),
        signed="pgp-clearsigned" if signed else "",
    )
