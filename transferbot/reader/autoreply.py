"""Recognising mail written by a machine on someone's behalf (RFC 3834 and practice).

An auto-reply is never consent and is never answered. ``X-Auto-Response-
Suppress`` alone is not a sign: Exchange puts it on mail people write.
"""

from __future__ import annotations

import re
from email.message import Message

from transferbot.reader.decision import fold
from transferbot.reader.message import header

_SUBJECT = re.compile(
    r"^\s*(\[?(auto(matic|matische|matique)?[\s_-]*(reply|response|antwort|r[ée]ponse))"
    r"|out of (the )?office|ooo\b|abwesenheit|abwesenheitsnotiz|absence"
    r"|r[ée]ponse automatique|automatische antwort|autoreply|auto-reply|vacation|away from (my|the) (desk|office)"
    r"|i am (currently )?(out|away)|je suis absent|ich bin (nicht|abwesend))",
    re.IGNORECASE,
)
_PRECEDENCE = {"bulk", "junk", "list", "auto_reply", "auto-reply"}


def auto_reply_reason(msg: Message) -> str | None:
    """Why this message is an auto-reply, or None when it reads as written by a person."""
    auto_submitted = header(msg, "Auto-Submitted")
    if auto_submitted is not None and auto_submitted.strip().lower().split(";")[0].strip() not in ("", "no"):
        return f"Auto-Submitted: {auto_submitted.strip()}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if header(msg, name) is not None:
            return f"{name} header"
    precedence = (header(msg, "Precedence") or "").strip().lower()
    if precedence in _PRECEDENCE:
        return f"Precedence: {precedence}"
    if header(msg, "List-Id") is not None or header(msg, "List-Unsubscribe") is not None:
        return "mailing-list headers"
    if (header(msg, "X-MS-Exchange-Generated-Message-Source") or "").strip():
        return "Exchange-generated message"
    subject = header(msg, "Subject") or ""
    subject = re.sub(r"^\s*((re|aw|wg|fw|fwd|tr)\s*:\s*)+", "", subject, flags=re.IGNORECASE)
    if _SUBJECT.search(fold(subject)) or _SUBJECT.search(subject):
        return f"auto-reply subject {subject.strip()[:80]!r}"
    return None
