"""Finding the fresh text of a plain-text reply: what the person wrote, not what they quoted.

The quoted original is cut at the first line that starts it: a ``>`` line,
an attribution (``On … wrote:``, ``Le … a écrit :``, ``Am … schrieb …:``,
also wrapped over two or three lines), an Outlook header block (``From:``
followed by ``Sent:``/``To:``/``Subject:`` in English, French or German), an
``-----Original Message-----`` style rule, our own reply marker, or a
signature. When nothing precedes the quote, the reply was written under it
(bottom-posting) and the first unquoted text after the quote is taken.
"""

from __future__ import annotations

import re

from transferbot.reader.message import DEFAULT_CAPS, Caps, bounded_lines

# Our own "reply above this line" marker, in any locale: ##- … -##
_MARKER = re.compile(r"^[>\s]*##-.*-##\s*$")

_QUOTE = re.compile(r"^\s*>")

_RULE = re.compile(
    r"^\s*[-_=*]{2,}\s*("
    r"original message|original-nachricht|urspr[üu]ngliche nachricht|message d'origine|message original"
    r"|mensaje original|messaggio originale|oorspronkelijk bericht|originalnachricht|forwarded message"
    r"|weitergeleitete nachricht|message transf[ée]r[ée]|wiadomo[śs][ćc] oryginalna|исходное сообщение"
    r")\s*[-_=*]{2,}\s*$",
    re.IGNORECASE,
)
_FORWARD = re.compile(
    r"^\s*(begin forwarded message|d[ée]but du message r[ée]exp[ée]di[ée]|anfang der weitergeleiteten nachricht)\s*:",
    re.IGNORECASE,
)

_ATTRIBUTION = re.compile(
    r"^\s*("
    r"on\b.{0,400}\bwrote\s*:"  # On <date>, <name> wrote:
    r"|le\b.{0,400}\ba\s+[ée]crit\s*:"  # Le <date>, <name> a écrit :
    r"|am\b.{0,400}\bschrieb\b.{0,400}:"  # Am <date> schrieb <name>:
    r"|.{0,400}\bschrieb\s+am\b.{0,400}:"  # <name> schrieb am <date>:
    r"|.{0,400}\bhat\s+am\b.{0,400}\bgeschrieben\s*:"  # <name> hat am <date> geschrieben:
    r"|.{0,400}\b(wrote|a\s+[ée]crit|schrieb|escribi[óo]|scrisse|schreef|napisa[łl]\(a\)|napisa[łl]|написал\(а\)|написал|skrev|kirjoitti|[ée]crivait)\s*:"
    r"|.{0,200}\d{1,4}[./-]\d{1,2}[./-]\d{1,4}.{0,200}<[^>@\s]+@[^>\s]+>\s*:"  # 2026-11-21 10:00 GMT+01:00 Name <a@b>:
    r")\s*$",
    re.IGNORECASE,
)

_HEADER_NAMES = (
    r"from|de|von|van|da|od|от|fra|från|sent|envoy[ée]|gesendet|date|datum|verzonden|enviado|inviato|wys[łl]ano"
    r"|to|[àa]|an|aan|para|a|cc|subject|objet|betreff|onderwerp|asunto|oggetto|temat|тема|reply-to|r[ée]pondre [àa]"
)
_HEADER_LINE = re.compile(rf"^\s*\*?\s*({_HEADER_NAMES})\s*\*?\s*:\s*\*?.*$", re.IGNORECASE)
_FROM_LINE = re.compile(r"^\s*\*?\s*(from|de|von|van|da|od|от|fra|från)\s*\*?\s*:\s*\*?\s*\S", re.IGNORECASE)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")

_SIGNATURE = re.compile(
    r"^\s*("
    r"--\s?"
    r"|sent from my .{1,40}|sent from (outlook|mail|yahoo|gmail|samsung).{0,40}|get outlook for .{1,20}"
    r"|envoy[ée] (de|depuis) (mon|l'application|outlook).{0,40}"
    r"|von meinem .{1,40} gesendet|gesendet von .{1,40}|gesendet mit .{1,40}"
    r")\s*$",
    re.IGNORECASE,
)


def _join(lines: list[str], start: int, count: int) -> str:
    return " ".join(line.strip() for line in lines[start:start + count])


def is_attribution(lines: list[str], index: int) -> int:
    """How many lines (1-3) form an attribution starting here; 0 when none."""
    first = lines[index].strip()
    if not first or len(first) > 600:
        return 0
    for span in (1, 2, 3):
        if index + span > len(lines):
            break
        if span > 1 and not lines[index + span - 1].strip():
            break
        if _ATTRIBUTION.match(_join(lines, index, span)):
            return span
    return 0


def is_header_block(lines: list[str], index: int) -> bool:
    """An Outlook-style quoted header block: From: plus at least one more header within 6 lines."""
    if not _FROM_LINE.match(lines[index]):
        return False
    more = 0
    for line in lines[index + 1:index + 7]:
        if not line.strip():
            continue
        if _HEADER_LINE.match(line):
            more += 1
            if more >= 1:
                return True
        else:
            # a wrapped value of the From: line (long display name/address) is allowed once
            continue
    return False


def _rule_before_header(lines: list[str], index: int) -> bool:
    if not _UNDERSCORES.match(lines[index]):
        return False
    for line in lines[index + 1:index + 4]:
        if line.strip():
            return bool(_HEADER_LINE.match(line))
    return False


def cut_kind(lines: list[str], index: int) -> str | None:
    """What starts at this line, if it starts the quoted original or a signature."""
    line = lines[index]
    if _QUOTE.match(line):
        return "quote"
    stripped = line.strip()
    if not stripped:
        return None
    if _MARKER.match(line):
        return "marker"
    if _RULE.match(stripped) or _FORWARD.match(stripped):
        return "rule"
    if _rule_before_header(lines, index):
        return "rule"
    if is_header_block(lines, index):
        return "headers"
    if is_attribution(lines, index):
        return "attribution"
    if _SIGNATURE.match(line.rstrip("\n")):
        return "signature"
    return None


def first_cut(lines: list[str], start: int = 0) -> tuple[int, str | None]:
    for index in range(start, len(lines)):
        kind = cut_kind(lines, index)
        if kind:
            return index, kind
    return len(lines), None


def _skip_quoted(lines: list[str], index: int) -> int:
    """Past the quoted region that starts here: attribution, > lines, blanks, our marker."""
    n = len(lines)
    while index < n:
        line = lines[index]
        if not line.strip() or _QUOTE.match(line) or _MARKER.match(line):
            index += 1
            continue
        span = is_attribution(lines, index)
        if span:
            index += span
            continue
        break
    return index


def _clean(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip("\n").strip()


def fresh_text(text: str, caps: Caps = DEFAULT_CAPS) -> str:
    """The fresh text of a plain-text reply body."""
    lines = bounded_lines(text, caps)
    cut, kind = first_cut(lines)
    top = _clean(lines[:cut])
    if top or kind is None:
        return top
    # Nothing above the quote: the answer may be written under it (bottom-posting).
    if kind == "signature":
        return ""
    start = _skip_quoted(lines, cut)
    while start < len(lines):
        end, end_kind = first_cut(lines, start)
        below = _clean(lines[start:end])
        if below:
            return below
        if end_kind in (None, "signature"):
            return ""
        start = _skip_quoted(lines, end) if end_kind in ("quote", "attribution", "marker") else end + 1
    return ""
