"""Our outgoing messages written straight to bytes.

Why not ``EmailMessage``: its header objects parse every value we set and its generator folds them
again, about 4 ms a message, more than rendering both templates (bench/README.md). These messages
are our own: every header is one we choose, the addresses were validated when registered, the
bodies are our templates' output. So they are assembled here with the standard library's encoders
(``email.header`` for RFC 2047 words and folding, ``email.utils`` for addresses and dates,
``binascii`` quoted-printable), and anything out of the ordinary (a non-ASCII address or
Message-ID, a value that looks like an encoded word, a line that would pass 998 characters) is
left to the email package, so ``build`` returns ``None`` and the caller takes that path.

No header value may hold CR or LF: ``header`` refuses them, so no name or note can add a header.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from email.header import Header
from email.utils import formataddr

CRLF = b"\r\n"
FOLD_AT = 78  # RFC 5322's SHOULD; 998 is the MUST, checked below


class Unusual(Exception):
    """A value the fast path leaves to the email package."""


def plain(value: str) -> str:
    """An ASCII value written as it is (else ``Unusual``)."""
    if not value.isascii() or "=?" in value:
        raise Unusual(value)
    return value


def header(name: str, value: str) -> bytes:
    """``Name: value``, RFC 2047-encoded when not ASCII, folded, ending in CRLF."""
    if "\r" in value or "\n" in value:
        raise ValueError(f"{name}: a header value may not contain a line break")
    if "=?" in value:
        raise Unusual(value)
    if value.isascii() and len(name) + 2 + len(value) <= FOLD_AT:
        return f"{name}: {value}".encode("ascii") + CRLF
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name, maxlinelen=FOLD_AT).encode(linesep="\r\n")
    return f"{name}: {encoded}".encode("ascii") + CRLF


def mailbox(address: str, name: str = "") -> str:
    plain(address)
    if "\r" in name or "\n" in name:
        raise ValueError("a display name may not contain a line break")
    if "=?" in name:
        raise Unusual(name)
    return formataddr((name, address), charset="utf-8")


def address_header(name: str, mailboxes: Sequence[str]) -> bytes:
    """``To: a, b`` one mailbox per line once the line grows long (folding at the commas)."""
    line = f"{name}: " + ", ".join(mailboxes)
    if len(line) > FOLD_AT:
        line = f"{name}: " + ",\r\n ".join(m if len(m) <= FOLD_AT - 1 else m.replace(" <", "\r\n <", 1)
                                           for m in mailboxes)
    return line.encode("ascii") + CRLF


def qp(text: str) -> bytes:
    """UTF-8 text as quoted-printable with CRLF line ends."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    encoded = encoded.replace(b"\n", CRLF)
    return encoded if encoded.endswith(CRLF) else encoded + CRLF


def text_part(subtype: str, text: str) -> bytes:
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode("ascii")
            + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(text))


def multipart(subtype: str, boundary: str, parts: Sequence[bytes], headers: bytes = b"") -> bytes:
    """A multipart entity: its headers (``headers`` first), then each part between boundaries."""
    # Each part ends in CRLF and the delimiter begins with one (RFC 2046), as the email package writes it.
    out = [headers, f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii")]
    for i, part in enumerate(parts):
        out.append((b"" if i == 0 else CRLF) + f"--{boundary}\r\n".encode("ascii"))
        out.append(part)
    out.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return b"".join(out)


def long_lines(raw: bytes, limit: int = 998) -> bool:
    return any(len(line) > limit for line in raw.split(CRLF))


