"""Parsing a raw message safely and finding the text its author wrote.

Everything here is bounded so that no message can make the reader slow, and
nothing raises on malformed input (a header that cannot be read is absent):

* the raw bytes are capped in size and lines before the stdlib parser sees
  them, the top-level header section is capped, and multipart/message types
  past a budget are neutered, because the feed parser's cost grows with
  lines x nesting depth (and it hits RecursionError a few hundred levels deep);
* the message is parsed with the ``compat32`` policy, which keeps header
  values as raw strings: ``policy.default`` parses every structured header it
  is asked for, which costs ~100 us a header and can take minutes on a
  hostile address list. ``header()`` decodes the few headers we read itself,
  from values capped in length;
* text parts are decoded in any declared charset and transfer encoding, with
  UTF-8 then Windows-1252 as fallbacks for a wrong or unknown declaration.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from email import policy as email_policy
from email.errors import MessageDefect
from email.header import decode_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses
from typing import Literal


@dataclass(frozen=True)
class Caps:
    """Bounds on how much of a message the reader looks at."""

    max_parts: int = 64
    max_depth: int = 8
    max_part_bytes: int = 512 * 1024
    max_text_chars: int = 200_000
    max_lines: int = 2_000
    max_line_chars: int = 4_000
    # What the stdlib parser is given: its cost grows with lines x nesting depth.
    max_message_bytes: int = 8 * 1024 * 1024
    max_raw_lines: int = 60_000
    max_header_bytes: int = 256 * 1024
    max_header_chars: int = 16_384  # one header value, as read by header()
    max_multiparts: int = 16  # multipart/ and message/ types; later ones read as opaque leaves
    max_html_chars: int = 200_000


DEFAULT_CAPS = Caps()

# compat32 keeps raw header strings; the parser asks it for Content-Type on every part.
_POLICY = email_policy.compat32
_CONTENT_TYPE_NEST = re.compile(rb"(?i)content-type[ \t]*:[\s\x1c-\x1f]*(?=(?:multipart|message)/)")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n|\r\r")


class CappedInputDefect(MessageDefect):
    """The reader looked at a bounded prefix or a flattened structure of this message."""


class UnparseableStructureDefect(MessageDefect):
    """The MIME structure could not be parsed; only the headers were read."""


def _cap_raw(raw: bytes, caps: Caps) -> tuple[bytes, bool]:
    """The bounded bytes the parser is given, and whether anything was cut."""
    data = raw[: caps.max_message_bytes]
    capped = len(data) < len(raw)
    # Header section: keep at most max_header_bytes of it, then the body.
    head_end = _BLANK_LINE.search(data, 0, caps.max_header_bytes + 4)
    if head_end is None and len(data) > caps.max_header_bytes:
        rest = _BLANK_LINE.search(data, caps.max_header_bytes)
        cut = max(data.rfind(b"\n", 0, caps.max_header_bytes), data.rfind(b"\r", 0, caps.max_header_bytes))
        head = data[: cut + 1] if cut > 0 else b""
        data = head + (data[rest.start():] if rest else b"\n")
        capped = True
    # Lines: the parser splits on \n, \r and \r\n; its cost is lines x depth.
    if data.count(b"\n") + data.count(b"\r") > caps.max_raw_lines:
        lines = data.splitlines(keepends=True)
        if len(lines) > caps.max_raw_lines:
            data = b"".join(lines[: caps.max_raw_lines])
            capped = True
    # Nesting: each level needs a multipart/ or message/ Content-Type; past the
    # budget they read as opaque leaves ("x-multipart/…").
    lowered = data.lower()
    if lowered.count(b"multipart/") + lowered.count(b"message/") > caps.max_multiparts \
            and len(_CONTENT_TYPE_NEST.findall(data)) > caps.max_multiparts:
        seen = 0

        def neuter(match: re.Match[bytes]) -> bytes:
            nonlocal seen
            seen += 1
            return match.group(0) if seen <= caps.max_multiparts else match.group(0) + b"x-"

        data = _CONTENT_TYPE_NEST.sub(neuter, data)
        capped = True
    return data, capped


def parse(raw: bytes, caps: Caps = DEFAULT_CAPS) -> EmailMessage:
    """Parse bounded bytes into a message; never raises, records what it had to give up."""
    data, capped = _cap_raw(raw, caps)
    try:
        msg = BytesParser(EmailMessage, policy=_POLICY).parsebytes(data)
    except Exception:  # noqa: BLE001 - RecursionError, MemoryError, a parser bug: fall back to the headers
        try:
            msg = BytesHeaderParser(EmailMessage, policy=_POLICY).parsebytes(data[: caps.max_header_bytes])
        except Exception:  # noqa: BLE001
            msg = EmailMessage(policy=_POLICY)
        msg.set_payload("")
        msg.defects.append(UnparseableStructureDefect())
    assert isinstance(msg, EmailMessage)
    if capped:
        msg.defects.append(CappedInputDefect())
    return msg


# -- headers ----------------------------------------------------------------

_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender", "resent-from", "resent-to",
                              "resent-sender", "return-path", "delivered-to", "disposition-notification-to"})
_FOLD = re.compile(r"\r?\n(?=[ \t])|\r(?=[ \t])")
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')
MAX_HEADER_CHARS = DEFAULT_CAPS.max_header_chars
MAX_STRUCTURED_HEADER_CHARS = 2_048


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _clean_raw(name: str, value: object, limit: int) -> str:
    """A raw header value as one line of text: capped, unfolded, 8-bit bytes decoded."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        # the newest References are last; everything else keeps its start
        text = text[-limit:] if name.lower() == "references" else text[:limit]
    if _has_surrogates(text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), "utf-8")
    text = _FOLD.sub("", text)
    return text.replace("\r", " ").replace("\n", " ").strip()


def decode_words(text: str) -> str:
    """Undo RFC 2047 encoded words, each in its charset with our fallbacks."""
    if "=?" not in text:
        return text
    try:
        chunks = decode_header(text)
    except Exception:  # noqa: BLE001 - a broken encoded word stays as written
        return text
    out: list[str] = []
    for chunk, charset in chunks:
        out.append(chunk if isinstance(chunk, str) else decode_bytes(chunk, charset))
    return "".join(out)


def _format_address(name: str, address: str) -> str:
    if not name:
        return address
    if _SPECIALS.search(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>" if address else name


def _decode_value(name: str, text: str) -> str:
    if "=?" not in text:
        return text
    if name.lower() in _ADDRESS_HEADERS:
        # split addresses before decoding, so that a decoded display name cannot forge structure
        try:
            pairs = getaddresses([text])
        except Exception:  # noqa: BLE001
            return decode_words(text)
        return ", ".join(_format_address(decode_words(n), a) for n, a in pairs if n or a)
    return decode_words(text)


def _raw_values(msg: Message, name: str) -> list[object]:
    wanted = name.lower()
    try:
        # the stored (name, raw value) pairs; raw_items() is the public copy of the same list
        items = getattr(msg, "_headers", None)
        if not isinstance(items, list):
            items = list(msg.raw_items())
        return [value for key, value in items if isinstance(key, str) and key.lower() == wanted]
    except Exception:  # noqa: BLE001
        return []


def _read(msg: Message, name: str, value: object, limit: int) -> str | None:
    try:
        if isinstance(getattr(msg, "policy", None), email_policy.EmailPolicy):
            # A message parsed elsewhere with policy.default: its own header parser, whose address
            # parser is quadratic on some inputs (16 K of quotes: 3 s), on a value capped shorter.
            text = _clean_raw(name, value, min(limit, MAX_STRUCTURED_HEADER_CHARS))
            return str(msg.policy.header_fetch_parse(name, text))
        return _decode_value(name, _clean_raw(name, value, limit))
    except Exception:  # noqa: BLE001 - a malformed header reads as absent
        return None


def header(msg: Message, name: str, limit: int = MAX_HEADER_CHARS) -> str | None:
    """The first occurrence of a header as decoded text, or None (never raises, capped)."""
    for value in _raw_values(msg, name):
        return _read(msg, name, value, limit)
    return None


def headers(msg: Message, name: str, limit: int = MAX_HEADER_CHARS) -> list[str]:
    """Every occurrence of a header, as decoded text."""
    out: list[str] = []
    for value in _raw_values(msg, name)[:100]:
        text = _read(msg, name, value, limit)
        if text is not None:
            out.append(text)
    return out


# -- text parts ---------------------------------------------------------------

# Labels that WHATWG decodes as Windows-1252 (a superset); mail says latin-1 and means it.
_AS_CP1252 = frozenset({"us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "cp819",
                        "ansi_x3.4-1968", "windows-1252", "cp1252", "iso_8859-1", "iso-ir-100", "646"})
# Codecs that are not charsets a mail client writes, or that are slow on big input.
_REFUSED_CODECS = frozenset({"punycode", "idna", "unicode_escape", "raw_unicode_escape", "undefined",
                             "mbcs", "oem", "charmap", "unicode_internal", "escape_codec"})


def _codec(charset: str | None) -> str | None:
    """The Python codec name for a declared charset, or None when unusable."""
    if not charset or len(charset) > 40:
        return None
    label = charset.strip().strip('"').lower()
    if label in _AS_CP1252:
        return "cp1252"
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None, truncated: bool = False) -> str:
    """Decode with the declared charset, else UTF-8, else Windows-1252 (never raises).

    A single-byte declaration on bytes that are valid UTF-8 with non-ASCII in
    them is taken to be wrong: such bytes are almost never meant as Latin-1.
    ``truncated`` tolerates a multi-byte sequence cut at the end.
    """
    declared = _codec(charset)
    candidates: list[str] = []
    if declared == "cp1252" and not data.isascii():
        candidates.append("utf-8")
    if declared:
        candidates.append(declared)
    candidates.extend(c for c in ("utf-8", "cp1252") if c not in candidates)
    for candidate in candidates:
        try:
            if truncated:
                return codecs.getincrementaldecoder(candidate)("strict").decode(data, final=False)
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError, ValueError, TypeError):
            continue
    return data.decode("cp1252", errors="replace")


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        return None
    return charset if isinstance(charset, str) else None


def part_text(part: Message, caps: Caps = DEFAULT_CAPS) -> str:
    """The decoded text of a leaf text part (transfer encoding and charset undone)."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if not isinstance(payload, bytes):
        try:
            raw = part.get_payload()
        except Exception:  # noqa: BLE001
            raw = None
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    truncated = len(payload) > caps.max_part_bytes
    return decode_bytes(payload[: caps.max_part_bytes], _charset(part), truncated)[: caps.max_text_chars]


def walk(msg: Message, caps: Caps = DEFAULT_CAPS) -> list[Message]:
    """Leaf and container parts, depth-first, bounded in count and depth."""
    out: list[Message] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack and len(out) < caps.max_parts:
        part, depth = stack.pop()
        out.append(part)
        if depth >= caps.max_depth or not part.is_multipart():
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            children = [child for child in payload[: caps.max_parts] if isinstance(child, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))
    return out


def _is_attachment(part: Message) -> bool:
    """Attached, or named like a file (``name=``/``filename=``): not text the author typed in."""
    try:
        return part.get_content_disposition() == "attachment" or part.get_filename() is not None
    except Exception:  # noqa: BLE001
        return False


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

    Parts inside attached messages (message/rfc822) are not the author's. A
    text/plain part that is only white space gives way to the HTML one.
    """
    plain: Message | None = None
    html: Message | None = None
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack and seen < caps.max_parts:
        part, depth = stack.pop()
        seen += 1
        ctype = _content_type(part)
        if part.is_multipart():
            if ctype.startswith("message/") or depth >= caps.max_depth:
                continue
            payload = part.get_payload()
            if isinstance(payload, list):
                children = [child for child in payload[: caps.max_parts] if isinstance(child, Message)]
                stack.extend((child, depth + 1) for child in reversed(children))
            continue
        if _is_attachment(part):
            continue
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and html is None:
            html = part
        if plain is not None and html is not None:
            break
    if plain is not None:
        text = part_text(plain, caps)
        if text.strip() or html is None:
            return Body("plain", text)
    if html is not None:
        return Body("html", part_text(html, caps))
    return Body("none", "")


def bounded_lines(text: str, caps: Caps = DEFAULT_CAPS) -> list[str]:
    """Split into at most max_lines lines of at most max_line_chars each.

    Lines end where ``str.splitlines`` ends them (also at U+2028, form feed…),
    as the decision reader does, so both agree on what the first line is.
    """
    lines = text[: caps.max_text_chars].splitlines()[: caps.max_lines]
    return [line[: caps.max_line_chars] for line in lines]


# -- inline PGP (RFC 4880, section 7) -----------------------------------------------------------------

_PGP_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_PGP_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
_PGP_END = "-----END PGP SIGNATURE-----"
_PGP_LOOK = 40  # lines: the armour starts the text, or follows a few unsigned lines (a list's header)


def unwrap_clearsigned(text: str) -> tuple[str, bool]:
    """The text of an inline PGP clearsigned body as its author wrote it, and whether it was one.

    The armour line and its armour headers ("Hash: SHA256") up to the first blank line are dropped,
    dash-escaped lines ("- -----Original Message-----") are unescaped, and the signature block is
    dropped; text outside the armour is kept. The signature stays in the stored raw message (it is
    not verified: sender authentication decides who sent the reply)."""
    if _PGP_BEGIN not in text[:8000]:
        return text, False
    lines = text.splitlines()
    begin = next((i for i, line in enumerate(lines[:_PGP_LOOK]) if line.rstrip() == _PGP_BEGIN), None)
    if begin is None:
        return text, False
    start = begin + 1
    while start < len(lines) and lines[start].strip():
        start += 1  # armour headers (Hash:, Charset:), ended by a blank line
    signature = next((i for i in range(start + 1, len(lines)) if lines[i].rstrip() == _PGP_SIGNATURE), None)
    if signature is None:
        return text, False  # no signature block: not the armour it looked like
    signed = [line[2:] if line.startswith("- ") else line for line in lines[start + 1:signature]]
    end = next((i for i in range(signature, len(lines)) if lines[i].rstrip() == _PGP_END), len(lines) - 1)
    return "\n".join([*lines[:begin], *signed, *lines[end + 1:]]), True
