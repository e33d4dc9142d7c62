"""Recognising bounces (delivery status notifications) and what they say.

A message is a bounce when it is a DSN (RFC 3464: ``multipart/report;
report-type=delivery-status``), comes from MAILER-DAEMON or postmaster, or
has the null envelope sender -- except an auto-reply sent, as RFC 3834
asks, with the null sender (an out-of-office is not a bounce).

A DSN's per-recipient ``Action: failed`` with a 5.x.x status is permanent;
4.x.x and ``delayed`` are not. A bounce without a DSN structure is read in
the one plain format that states permanence for each address, qmail's
(QSBMF), or through ``X-Failed-Recipients`` with a 5.x.x status; anything
else is a transient bounce. The outgoing message a bounce concerns is named
by the VERP key in the envelope recipient, or failing that by the
Message-ID of the returned original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import Message

from transferbot.core.addresses import header_address, try_normalize
from transferbot.inbound.reader.autoreply import auto_reply_reason
from transferbot.inbound.reader.message import DEFAULT_CAPS, Caps, body, header, part_text, walk

_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_SMTP_CODE = re.compile(r"(?:^|[\s;])([245])\d\d(?=[\s-])")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
_QMAIL = re.compile(r"this is the qmail-send program", re.IGNORECASE)
_QMAIL_COPY = re.compile(r"^--- (below this line is a copy of the message|enclosed are the original headers)",
                         re.IGNORECASE | re.MULTILINE)
_QMAIL_ADDRESS = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*$")
_PERMANENT_TEXT = re.compile(r"\bpermanent (error|failure)\b|\bfailed permanently\b", re.IGNORECASE)
MAX_RECIPIENTS = 50


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    action: str
    status: str
    diagnostic: str = ""
    original: str = ""  # Original-Recipient, when it differs from Final-Recipient

    @property
    def permanent(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address, self.original) if self.original and self.original != self.address else (self.address,)


@dataclass(frozen=True)
class Bounce:
    why: str
    recipients: tuple[FailedRecipient, ...] = ()
    original_message_ids: tuple[str, ...] = ()
    is_report: bool = False

    @property
    def permanent(self) -> bool:
        return any(r.permanent for r in self.recipients)

    @property
    def permanent_addresses(self) -> list[str]:
        out: list[str] = []
        for recipient in self.recipients:
            if recipient.permanent:
                out.extend(a for a in recipient.addresses if a not in out)
        return out


def _field_groups(text: str) -> list[dict[str, str]]:
    """The header-like groups of a message/delivery-status body."""
    groups: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n")[:400]:
        if not line.strip():
            if current:
                groups.append(current)
                current = {}
            last = ""
            continue
        if line[:1] in " \t" and last:
            current[last] += " " + line.strip()
            continue
        key, sep, value = line.partition(":")
        if sep:
            last = key.strip().lower()
            current[last] = value.strip()
    if current:
        groups.append(current)
    return groups


def _delivery_status_text(part: Message, caps: Caps) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package parses it as a list of header blocks
        chunks = []
        for block in payload:
            if isinstance(block, Message):
                chunks.append("\n".join(f"{k}: {' '.join(str(v).split())}" for k, v in block.items()))
        return "\n\n".join(chunks)
    return part_text(part, caps)


def _address_of(value: str) -> str:
    """The address of a recipient field such as 'rfc822; <Alice@Example.com>'."""
    address = (value.partition(";")[2] if ";" in value else value).strip().strip("<>").strip()
    return try_normalize(address) or address.lower()


def _status(group: dict[str, str]) -> str:
    """The enhanced status code; from the diagnostic when the Status field lacks one."""
    for source in (group.get("status", ""), group.get("diagnostic-code", "")):
        match = _STATUS.search(source)
        if match:
            return match.group(0)
    code = _SMTP_CODE.search(group.get("diagnostic-code", ""))
    return f"{code.group(1)}.0.0" if code else group.get("status", "").strip()


def _recipients(groups: list[dict[str, str]]) -> list[FailedRecipient]:
    out = []
    for group in groups:
        final = group.get("final-recipient") or group.get("original-recipient")
        if not final:
            continue
        address = _address_of(final)
        original = _address_of(group["original-recipient"]) if group.get("original-recipient") else ""
        action = group.get("action", "").strip().lower().split()[0] if group.get("action", "").strip() else ""
        out.append(FailedRecipient(address, action, _status(group), group.get("diagnostic-code", "")[:300],
                                   original if original != address else ""))
        if len(out) >= MAX_RECIPIENTS:
            break
    return out


def _qmail_recipients(text: str) -> list[FailedRecipient]:
    """qmail's bounce format: '<address>:' paragraphs before the copy of the message."""
    head = _QMAIL_COPY.split(text, maxsplit=1)[0]
    permanent = "permanent error" in head.lower()
    out: list[FailedRecipient] = []
    for paragraph in re.split(r"\n\s*\n", head.replace("\r\n", "\n")):
        lines = paragraph.strip().split("\n")
        match = _QMAIL_ADDRESS.match(lines[0].strip()) if lines else None
        if not match:
            continue
        detail = " ".join(line.strip() for line in lines[1:])
        status = _STATUS.search(detail)
        code = status.group(0) if status else ("5.0.0" if permanent else "4.0.0")
        action = "failed" if permanent else "delayed"
        out.append(FailedRecipient(_address_of(match.group(1)), action, code, detail[:300]))
        if len(out) >= MAX_RECIPIENTS:
            break
    return out


def _plain_recipients(msg: Message, caps: Caps) -> list[FailedRecipient]:
    """What a bounce without a DSN structure says about its recipients."""
    text = body(msg, caps).text[:20_000]
    if _QMAIL.search(text[:2000]):
        return _qmail_recipients(text)
    failed = header(msg, "X-Failed-Recipients")
    if not failed:
        return []
    statuses = [m.group(0) for m in _STATUS.finditer(text)]
    status = next((s for s in statuses if s.startswith("5")), statuses[0] if statuses else "")
    if not status and _PERMANENT_TEXT.search(text):
        status = "5.0.0"
    addresses = [_address_of(a) for a in failed.split(",") if a.strip()][:MAX_RECIPIENTS]
    return [FailedRecipient(a, "failed", status or "4.0.0") for a in addresses]


def _returned_ids(msg: Message, caps: Caps) -> list[str]:
    ids: list[str] = []
    for part in walk(msg, caps):
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                value = header(inner, "Message-ID")
                if value:
                    ids.append(value.strip())
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers"):
            text = part_text(part, caps)
            try:
                inner = message_from_string(text, policy=policy.default)
                value = header(inner, "Message-ID")
            except Exception:  # noqa: BLE001
                value = None
            if value:
                ids.append(value.strip())
    return ids


def _quoted_ids(msg: Message, caps: Caps) -> list[str]:
    """Message-IDs of a returned copy pasted into a plain bounce (qmail and others)."""
    text = body(msg, caps).text[:60_000]
    return [m.group(1).strip() for m in re.finditer(r"(?im)^message-id:\s*(<[^<>\s]+@[^<>\s]+>)", text)]


def read_bounce(msg: Message, envelope_sender: str, caps: Caps = DEFAULT_CAPS) -> Bounce | None:
    """The bounce this message is, or None when it is not one."""
    ctype = msg.get_content_type() if not _broken(msg) else ""
    report_type = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    is_dsn = ctype == "multipart/report" and str(report_type).lower() == "delivery-status"
    sender = header_address(header(msg, "From")) or ""
    from_daemon = bool(_DAEMON.match(sender) or _DAEMON.match(envelope_sender.strip().strip("<>")))
    why = ""
    if is_dsn:
        why = "delivery status notification"
    elif from_daemon:
        why = f"sent by {sender or envelope_sender}"
    elif envelope_sender.strip() in ("", "<>"):
        if auto_reply_reason(msg):
            return None  # an auto-reply with the null sender, as RFC 3834 asks: the auto-reply check decides
        why = "null envelope sender"
    if not why:
        return None
    recipients: list[FailedRecipient] = []
    if is_dsn:
        for part in walk(msg, caps):
            if part.get_content_type() in _DSN_TYPES:
                recipients.extend(_recipients(_field_groups(_delivery_status_text(part, caps))))
    else:
        recipients = _plain_recipients(msg, caps)
    ids = _returned_ids(msg, caps)
    if not ids and not is_dsn:
        ids = _quoted_ids(msg, caps)
    if not ids:
        ids = list(_MSGID.findall(" ".join(header(msg, h) or "" for h in ("In-Reply-To", "References"))))
    return Bounce(why=why, recipients=tuple(recipients[:MAX_RECIPIENTS]),
                  original_message_ids=tuple(dict.fromkeys(ids)), is_report=is_dsn)


def _broken(msg: Message) -> bool:
    try:
        msg.get_content_type()
        return False
    except Exception:  # noqa: BLE001
        return True
