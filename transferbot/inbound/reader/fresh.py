"""Finding the fresh text of a plain-text reply: what the person wrote, not what they quoted.

The quoted original starts at the first line that is one of: a ``>`` line;
an attribution (``On … wrote:``, ``Le … a écrit :``, ``Am … schrieb …:``,
``… schrieb am …:``, ``<date> <name> <address>:``, also wrapped over two or
three lines, and HCL Notes' ``-----"Name" <address> wrote: -----``); an
Outlook header block (``From:`` with ``Sent:``/``To:``/``Subject:``, in
English, French, German and a few more, with or without a rule of
underscores above it); an ``-----Original Message-----`` style rule
(Zimbra's and Yahoo's ``----- Mail original -----`` too) or a
forwarded-message line; our own ``##- … -##`` reply marker. A signature
(``-- ``, "Sent from my iPhone", …) ends the fresh text too.

When nothing precedes the quote, the answer may be written under it
(bottom-posting). That is only read after ``>`` lines: the original is then
clearly delimited. After a header block, a rule, our marker, or an
attribution followed by unprefixed text, the original runs to the end of the
message with no mark where it stops, so nothing after it is read: our own
email, quoted that way, says APPROVE and DECLINE.

Every check is linear in the line's length: a line is only tested as an
attribution when it ends with a colon, and no pattern nests unbounded
repetitions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from transferbot.inbound.reader.message import DEFAULT_CAPS, Caps, bounded_lines

CutKind = str  # quote | attribution | headers | rule | marker | signature

# Invisible characters some clients put around text; no-break spaces read as spaces.
_INVISIBLE: dict[int, str | None] = {
    ord(c): None for c in "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff\xad\u034f\u180e\u1427"}
_INVISIBLE.update({ord(c): " " for c in "\xa0\u2007\u202f\u3000"})

MAX_ATTRIBUTION_CHARS = 500
MAX_ATTRIBUTION_LINE = 300

# -- rules and forwarded-message lines ----------------------------------------------

_RULE_CHARS = "-_=*~ \t"
_RULE_WORDS = frozenset({
    "original message", "original-nachricht", "ursprüngliche nachricht", "urspruengliche nachricht",
    "originalnachricht", "message d'origine", "message d’origine", "message original", "mensaje original",
    "messaggio originale", "oorspronkelijk bericht", "originalbericht", "wiadomość oryginalna",
    "исходное сообщение", "original meddelelse", "opprinnelig melding", "ursprungligt meddelande",
    "alkuperäinen viesti", "mensagem original", "forwarded message", "weitergeleitete nachricht",
    "message transféré", "message transfere", "message réexpédié", "mensaje reenviado",
    "messaggio inoltrato", "doorgestuurd bericht", "пересылаемое сообщение", "reply message",
    "original email", "e-mail d'origine",
    # Zimbra and Yahoo Mail (France, Germany): "----- Mail original -----" above their own header block
    "mail original", "original mail", "ursprüngliche mail", "urspruengliche mail", "ursprüngliche message",
    "urspruengliche message", "mail transféré", "mail transfere", "weitergeleitete mail",
})
_FORWARD_WORDS = frozenset({
    "begin forwarded message", "début du message réexpédié", "début du message transféré",
    "anfang der weitergeleiteten nachricht", "inicio del mensaje reenviado", "inizio messaggio inoltrato",
    "begin doorgestuurd bericht",
})

# -- Outlook header blocks ------------------------------------------------------------

_HEADER_KINDS: dict[str, str] = {}
for _kind, _names in {
    "from": "from de von van da od от fra från frá lähettäjä expéditeur expediteur remitente",
    "date": "sent date envoyé envoye envoyé_le envoye_le gesendet datum verzonden enviado fecha inviato data "
            "wysłano wyslano "
            "отправлено дата sendt skickat lähetetty datum/uhrzeit",
    "to": "to à a an aan para til till do кому vastaanottaja destinataire destinataires empfänger",
    "cc": "cc cci bcc kopie copie kopia копия kopio",
    "subject": "subject objet betreff onderwerp asunto oggetto temat тема emne ämne assunto aihe sujet",
    "reply-to": "reply-to répondre_à antwort_an risposta responder_a beantwoorden_aan",
}.items():
    for _name in _names.split():
        _HEADER_KINDS[_name.replace("_", " ")] = _kind

# -- attributions -----------------------------------------------------------------------

_OPENERS = ("on ", "le ", "am ", "el ", "em ", "il ", "op ", "den ", "dnia ", "w dniu ", "at ", "в ", "在", "pe ")
_VERB_END = re.compile(
    r"(wrote|writes|has written|a\s+écrit|a\s+ecrit|écrivait|ecrivait|schrieb|geschrieben|geschreven"
    r"|escribió|escribio|a\s+scris"
    r"|escreveu|ha\s+scritto|scrisse|schreef|skrev|kirjoitti|napisał\(a\)|napisał|napisala|napisała"
    r"|написал\(а\)|написала|написал|пише|写道|寫道|kirjutas|írta|yazdı)\s*[:：]$"
)
_DATED_VERBS = (" schrieb am ", " hat am ", " wrote on ", " a écrit le ", " escribió el ", " schreef op ")
_MID_VERBS = (" schrieb ", " skrev ", " schreef ", " escribió ", " scrisse ", " écrivait ")
_DATE_HINT = re.compile(r"\d{1,2}[:.h]\d{2}|\d{4}")
_ZOHO = re.compile(r"-{2,}\s*(on|le|am)\s.*\s(wrote|a écrit|schrieb)\s*-{2,}")
_RULE_ENDS = "-\u2013\u2014 \t"
# Gmail's older forms, with no colon: "2013/7/20 Name <a@b>", "2016-03-03 17:21 GMT+01:00 Name"
_GMAIL_DATED = re.compile(r"\d{4}/\d{1,2}/\d{1,2} [^<>]{1,120}<[^<>\s@]{1,200}@[^<>\s]{1,200}>"
                          r"|\d{4}-\d{2}-\d{2} \d{1,2}:\d{2} GMT[+-]\d{1,2}:\d{2} \S.{0,120}")

# -- signatures ------------------------------------------------------------------------------

_SIGNATURE = re.compile(
    r"(sent from my |sent from (outlook|mail|yahoo|gmail|samsung|my|windows|mailbox|aol|proton|\[mail\])"
    r"|sent with |sent via |sent using |get outlook for |get \[outlook|obtenir outlook pour |obtener outlook para "
    r"|outlook für .{1,60} herunterladen|scarica outlook per |outlook voor .{1,60} downloaden"
    r"|envoyé de mon |envoyé depuis mon |envoye de mon |envoye depuis mon |envoyé à partir de |envoyé avec "
    r"|envoyé depuis l'application |envoyé de l'application |envoyé depuis outlook "
    r"|von meinem .{1,60} gesendet|gesendet von meinem |gesendet mit |gesendet von |von meinem iphone"
    r"|verzonden met |verzonden vanaf |sendt fra min |skickat från min |enviado desde mi |enviado do meu "
    r"|inviato da |inviato dal mio )"
)

_MARKER_OPEN, _MARKER_CLOSE = "##-", "-##"


def _clean_lines(text: str, caps: Caps) -> list[str]:
    return [line.translate(_INVISIBLE) for line in bounded_lines(text, caps)]


def is_quote(line: str) -> bool:
    return line.lstrip().startswith(">")


def is_marker(line: str) -> bool:
    """Our own ``##- … -##`` reply marker (any locale), also quoted or inside markup."""
    start = line.find(_MARKER_OPEN)
    return start >= 0 and line.find(_MARKER_CLOSE, start + 3) >= 0


def is_rule(line: str) -> bool:
    """``-----Original Message-----`` and its kin, or a forwarded-message line."""
    stripped = line.strip()
    if not stripped or len(stripped) > 120:
        return False
    core = stripped.strip(_RULE_CHARS).lower()
    if core.endswith(":"):
        core = core[:-1].rstrip()
    if core in _FORWARD_WORDS:
        return True
    return core in _RULE_WORDS and len(stripped) - len(core) >= 4


def _header_kind(line: str) -> str | None:
    """The kind of a ``Name: value`` header line (``*From:*`` too), read without a regex.

    A pattern with optional stars between runs of white space backtracks
    quadratically on a line of spaces (minutes for 2,000 lines of 4,000).
    """
    head = line[:64].lstrip(" \t").lstrip("*").lstrip(" \t")
    colon = head.find(":")
    wide = head.find("：")
    if colon < 0 or 0 <= wide < colon:
        colon = wide
    if colon <= 0:
        return None
    name = head[:colon].rstrip(" \t").rstrip("*").rstrip(" \t")
    if not name or len(name) > 25:
        return None
    return _HEADER_KINDS.get(" ".join(name.lower().split()))


def is_header_block(lines: list[str], index: int) -> bool:
    """An Outlook-style header block starting here: From plus at least two other header kinds."""
    kind = _header_kind(lines[index])
    if kind not in ("from", "date", "subject", "to"):
        return False
    kinds = {kind}
    count, blanks, others = 1, 0, 0
    for line in lines[index + 1:index + 14]:
        if not line.strip():
            blanks += 1
            if blanks > 2:
                break
            continue
        other = _header_kind(line)
        if other is None:
            others += 1  # a wrapped value
            if others > 3:
                break
            continue
        kinds.add(other)
        count += 1
        if "from" in kinds and len(kinds) >= 3:
            return True
    return False


def _rule_before_headers(lines: list[str], index: int) -> bool:
    """A rule of underscores (Outlook) or dashes followed by a header line."""
    stripped = lines[index].strip()
    if len(stripped) < 5 or stripped.strip("_-") or (stripped.strip("-") == "" and len(stripped) < 10):
        return False
    if stripped.strip("_") == "":
        return True  # Outlook's rule of underscores ends the fresh text whatever follows
    for line in lines[index + 1:index + 4]:
        if line.strip():
            return _header_kind(line) is not None
    return False


def _looks_like_attribution(text: str) -> bool:
    """Whether one (joined) line is an attribution; the caller checked it ends with a colon."""
    low = text.lower()
    has_digit = any(ch.isdigit() for ch in low)
    if _VERB_END.search(low[-40:]):
        return has_digit or "@" in low or low.startswith(_OPENERS)
    if not has_digit:
        return False
    if low.startswith(("am ", "den ", "op ", "el ", "le ", "il ")) and any(v in low for v in _MID_VERBS):
        return True
    if any(phrase in low for phrase in _DATED_VERBS):  # "<name> schrieb am <date>:", Notes' "wrote on <date>:"
        return True
    # <date> <name> <address>:  (Gmail in some locales, Yandex, Mail.ru)
    tail = low.rstrip(" :：")
    if tail.endswith(">"):
        address = tail[tail.rfind("<") + 1:-1].strip() if "<" in tail else ""
    else:
        address = tail.rsplit(None, 1)[-1] if tail.split() else ""
    if "@" in address and " " not in address and _DATE_HINT.search(low):
        return True
    return False


def _is_notes_attribution(line: str) -> bool:
    """HCL Notes / Verse: ``-----"Name" <address> wrote: -----`` (``schrieb: -----``, ``a écrit : -----``)."""
    if not (line.startswith("--") and line.rstrip().endswith("--")):
        return False
    inner = line.strip(_RULE_ENDS)
    if not inner.endswith((":", "：")) or len(inner) < 8:
        return False
    low = inner.lower()
    verb = _VERB_END.search(low[-40:])
    return verb is not None and bool(low[:max(0, len(low) - 40) + verb.start()].strip())  # a name before it


def _attribution_start(line: str) -> bool:
    """Whether a line can begin an attribution wrapped over several lines."""
    low = line.strip().lower()
    return bool(low) and (low.startswith(_OPENERS) or low[0].isdigit() or "@" in low or "<" in low
                          or any(phrase in low for phrase in _DATED_VERBS))


def is_attribution(lines: list[str], index: int) -> int:
    """How many lines (1-3) form an attribution starting here; 0 when none."""
    first = lines[index].strip()
    if not first or len(first) > MAX_ATTRIBUTION_LINE or first.startswith(">"):
        return 0
    if first.endswith((":", "：")):
        return 1 if _looks_like_attribution(first) else 0
    if first.startswith("-") and (_ZOHO.fullmatch(first.lower()) or _is_notes_attribution(first)):
        return 1
    if first[:1].isdigit() and _GMAIL_DATED.fullmatch(first):
        return 1
    if not _attribution_start(first):
        return 0
    joined = first
    for span in (2, 3):
        if index + span > len(lines):
            break
        nxt = lines[index + span - 1].strip()
        if not nxt or len(nxt) > MAX_ATTRIBUTION_LINE:
            break
        if nxt.startswith(">") and not (joined.rfind("<") > joined.rfind(">") and len(nxt) <= 30):
            break  # a quote line, unless it closes an address wrapped as "<a@b" / "> wrote:"
        joined = joined + ("" if joined.endswith("<") or nxt.startswith(">") else " ") + nxt
        if len(joined) > MAX_ATTRIBUTION_CHARS:
            break
        if nxt.endswith((":", "：")):
            return span if _looks_like_attribution(joined) else 0
    return 0


def is_signature(line: str) -> bool:
    stripped = line.strip()
    if stripped == "--":  # "-- " and the "--" many clients leave
        return True
    if not stripped or len(stripped) > 120:
        return False
    return bool(_SIGNATURE.match(stripped.lower()))


def cut_kind(lines: list[str], index: int) -> CutKind | None:
    """What starts at this line, if it starts the quoted original or a signature."""
    line = lines[index]
    if is_quote(line):
        return "quote"
    if not line.strip():
        return None
    if is_marker(line):
        return "marker"
    if is_rule(line) or _rule_before_headers(lines, index):
        return "rule"
    if is_header_block(lines, index):
        return "headers"
    if is_attribution(lines, index):
        return "attribution"
    if is_signature(line):
        return "signature"
    return None


def first_cut(lines: list[str], start: int = 0) -> tuple[int, CutKind | None]:
    for index in range(start, len(lines)):
        kind = cut_kind(lines, index)
        if kind:
            return index, kind
    return len(lines), None


@dataclass(frozen=True)
class Fresh:
    """The fresh text, what ended it, and whether text further down may still be an answer."""

    text: str
    cut: CutKind | None = None
    open: bool = True  # False: the original runs to the end, nothing after it is the author's


def _skip_quoted(lines: list[str], index: int) -> tuple[int, bool]:
    """Past the quoted region (attributions, ``>`` lines, blanks) that starts here.

    Also says whether it ended with ``>`` lines: only then is the text that
    follows delimited from the original. After an attribution it is the
    original itself, unprefixed.
    """
    n, quoted = len(lines), False
    while index < n:
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        if is_quote(line):
            quoted = True
            index += 1
            continue
        span = is_attribution(lines, index)
        if span:
            quoted = False
            index += span
            continue
        break
    return index, quoted


def _clean(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip()


def split_fresh(text: str, caps: Caps = DEFAULT_CAPS) -> Fresh:
    """The fresh text of a plain-text body, with how it ended."""
    lines = _clean_lines(text, caps)
    cut, kind = first_cut(lines)
    top = _clean(lines[:cut])
    if top or kind is None:
        return Fresh(top, kind, open=kind in (None, "quote", "attribution"))
    # Nothing above the quote: the answer may be written under it (bottom-posting).
    while kind in ("quote", "attribution"):
        start, quoted = _skip_quoted(lines, cut)
        if start >= len(lines):
            return Fresh("", kind, open=True)  # only quote so far: a later segment may hold the answer
        if not quoted:
            return Fresh("", kind, open=False)  # attribution over unprefixed text: the original
        cut, end_kind = first_cut(lines, start)
        below = _clean(lines[start:cut])
        if below:
            return Fresh(below, end_kind, open=False)
        kind = end_kind
    return Fresh("", kind, open=False)


def fresh_text(text: str, caps: Caps = DEFAULT_CAPS) -> str:
    """The fresh text of a plain-text reply body."""
    return split_fresh(text, caps).text
