"""Text from the wire, made storable; and the Message-ID of a raw message, one parser for the edge and the reader.

Any database column may receive what a sender wrote: NUL characters (which PostgreSQL's text type
refuses) and lone surrogates (which UTF-8 cannot encode) are replaced, so one message's bytes can
never fail a transaction that stores others with it. The edge stores it without parsing the whole message (it is hot), and the reader's duplicate check
compares against what the edge stored, so both must read the same value from the same bytes, an
8-bit Message-ID included (decoded as UTF-8, invalid bytes replaced: the same bytes give the same
text, which a PostgreSQL text column can hold).
"""

from __future__ import annotations

import re

_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)
_BLANK = re.compile(rb"\r?\n\r?\n")
HEAD_LIMIT = 65536
MAX_LENGTH = 500


def message_id_of(raw: bytes) -> str:
    """The first Message-ID header's value, unfolded and stripped ('' when there is none)."""
    head = raw[:HEAD_LIMIT]
    blank = _BLANK.search(head)
    if blank is not None:
        head = head[: blank.start() + 1]
    match = _MESSAGE_ID.search(head)
    if match is None:
        return ""
    value = b" ".join(match.group(1).split())
    return storable(value.decode("utf-8", "replace").strip()[:MAX_LENGTH])


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """The text with NUL and lone surrogates replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def decoded(data: bytes, limit: int = 1000) -> str:
    """Bytes received (an envelope address, say) as storable text: UTF-8, invalid bytes as escapes."""
    return storable(data[:limit].decode("utf-8", "backslashreplace"))
