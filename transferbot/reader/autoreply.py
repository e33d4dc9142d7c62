"""Recognising mail written by a machine on someone's behalf (RFC 3834 and practice).

An auto-reply is never consent and is never answered. The signs, first to
last: ``Auto-Submitted`` present and not ``no``; ``X-Autoreply`` /
``X-Autorespond``; ``Precedence: bulk|junk|list|auto_reply``; mailing-list
headers; a read receipt (RFC 8098 disposition notification); an
out-of-office subject in English, French or German. ``X-Auto-Response-
Suppress`` alone is not a sign: Exchange puts it on mail people write.
"""

from __future__ import annotations

import re
from email.message import Message

from transferbot.reader.decision import fold
from transferbot.reader.message import header

_COMMENT = re.compile(r"\([^()]*\)")

# Matched against the folded subject (lower case, no accents) once reply/forward prefixes are removed.
_SUBJECT = re.compile(
    r"^[\s\[(*]*("
    r"auto(matic|matische|matique|matisch|matica)?[\s_-]*(reply|response|antwort|reponse|antwoord|respuesta|risposta)"
    r"|autoreply|autoresponse|auto-?respon(der|se)|auto\s*:"
    r"|out of (the )?office|ooo\b|away from (my|the) (desk|office)|i am (currently )?(out|away)|on (vacation|holiday)\b"
    r"|vacation|holiday (notice|reply)"
    r"|reponse automatique|absente? du bureau|absence\b|je suis absente?\b|en conges\b"
    r"|abwesenheit|abwesend\b|automatische antwort|nicht im buro|ich bin (nicht|abwesend)"
    r"|urlaubs?(notiz|abwesenheit)?\b"
    r")",
)
_REPLY_PREFIX = re.compile(r"^\s*((re|aw|wg|fw|fwd|tr|antw|sv|vs)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_PRECEDENCE = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply", "X-Vacation")


def _first_token(value: str) -> str:
    """The value without RFC 5322 comments or parameters, lower case: 'auto-replied (vacation)' -> 'auto-replied'."""
    text = value
    for _ in range(3):
        text = _COMMENT.sub(" ", text)
    return text.split(";")[0].strip().lower()


def _content_type(msg: Message) -> tuple[str, str]:
    try:
        ctype = msg.get_content_type()
        report_type = str(msg.get_param("report-type") or "").lower() if ctype == "multipart/report" else ""
    except Exception:  # noqa: BLE001 - a broken Content-Type reads as plain text
        return "text/plain", ""
    return ctype, report_type


def auto_reply_reason(msg: Message) -> str | None:
    """Why this message is an auto-reply, or None when it reads as written by a person."""
    auto_submitted = header(msg, "Auto-Submitted")
    if auto_submitted is not None and _first_token(auto_submitted) not in ("", "no"):
        return f"Auto-Submitted: {' '.join(auto_submitted.split())[:80]}"
    for name in _AUTOREPLY_HEADERS:
        if header(msg, name) is not None:
            return f"{name} header"
    precedence = _first_token(header(msg, "Precedence") or "")
    if precedence in _PRECEDENCE:
        return f"Precedence: {precedence}"
    if header(msg, "List-Id") is not None or header(msg, "List-Unsubscribe") is not None:
        return "mailing-list headers"
    if (header(msg, "X-MS-Exchange-Generated-Message-Source") or "").strip():
        return "Exchange-generated message"
    ctype, report_type = _content_type(msg)
    if ctype == "multipart/report" and report_type == "disposition-notification":
        return "read receipt (disposition notification)"
    subject = " ".join((header(msg, "Subject") or "").split())
    subject = _REPLY_PREFIX.sub("", subject)
    if _SUBJECT.search(fold(subject)):
        return f"auto-reply subject {subject[:80]!r}"
    return None
