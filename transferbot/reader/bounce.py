"""Recognising bounces (delivery status notifications) and what they say.

A DSN (RFC 3464) is ``multipart/report; report-type=delivery-status``; its
per-recipient ``Action: failed`` with a 5.x.x status is permanent, 4.x.x and
``delayed`` are not. The outgoing message it concerns is named by the VERP
key in the envelope recipient, or failing that by the Message-ID of the
returned original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import Message

from transferbot.addresses import header_address, try_normalize
from transferbot.reader.message import DEFAULT_CAPS, Caps, header, part_text, walk

_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]{1,250}@[^<>\s]{1,250}>")
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    action: str
    status: str
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        return self.action == "failed" and self.status.startswith("5")


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
        return [r.address for r in self.recipients if r.permanent]


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
                chunks.append("\n".join(f"{k}: {v}" for k, v in block.items()))
        return "\n\n".join(chunks)
    return part_text(part, caps)


def _recipients(groups: list[dict[str, str]]) -> list[FailedRecipient]:
    out = []
    for group in groups:
        final = group.get("final-recipient") or group.get("original-recipient")
        if not final:
            continue
        address = final.partition(";")[2].strip() if ";" in final else final.strip()
        address = try_normalize(address.strip("<>")) or address.strip("<>").lower()
        action = group.get("action", "").strip().lower()
        match = _STATUS.search(group.get("status", ""))
        status = match.group(0) if match else group.get("status", "").strip()
        out.append(FailedRecipient(address, action, status, group.get("diagnostic-code", "")[:300]))
    return out


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


def read_bounce(msg: Message, envelope_sender: str, caps: Caps = DEFAULT_CAPS) -> Bounce | None:
    """The bounce this message is, or None when it is not one."""
    ctype = msg.get_content_type() if not _broken(msg) else ""
    report_type = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    is_dsn = ctype == "multipart/report" and str(report_type).lower() == "delivery-status"
    sender = header_address(header(msg, "From")) or ""
    why = ""
    if is_dsn:
        why = "delivery status notification"
    elif envelope_sender.strip() in ("", "<>"):
        why = "null envelope sender"
    elif _DAEMON.match(sender) or _DAEMON.match(envelope_sender.strip("<>")):
        why = f"sent by {sender or envelope_sender}"
    if not why:
        return None
    recipients: list[FailedRecipient] = []
    if is_dsn:
        for part in walk(msg, caps):
            if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
                recipients.extend(_recipients(_field_groups(_delivery_status_text(part, caps))))
    ids = _returned_ids(msg, caps)
    if not ids:
        ids = [m for m in _MSGID.findall(" ".join(header(msg, h) or "" for h in ("In-Reply-To", "References")))]
    return Bounce(why=why, recipients=tuple(recipients), original_message_ids=tuple(ids), is_report=is_dsn)


def _broken(msg: Message) -> bool:
    try:
        msg.get_content_type()
        return False
    except Exception:  # noqa: BLE001
        return True
