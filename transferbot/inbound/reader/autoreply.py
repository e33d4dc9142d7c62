"""Recognising mail written by a machine on someone's behalf (RFC 3834 and practice).

An auto-reply is never consent and is never answered. The signs, first to
last: ``Auto-Submitted`` present and not ``no``; ``X-Autoreply`` /
``X-Autorespond``; ``Precedence: bulk|junk|list|auto_reply``; mailing-list
headers; a read receipt (RFC 8098 disposition notification); an
out-of-office or helpdesk-acknowledgment subject in English, French or
German. ``X-Auto-Response-Suppress`` alone is not a sign: Exchange puts it
on mail people write.

Some machines send none of these: Debian's vacation(1), helpdesks that
acknowledge a ticket (Freshdesk, Zendesk, Jira Service Management). Their
wording gives them away ("I will not be reading my mail for a while", "your
request has been received", "ceci est un message automatique"):
``machine_text_reason`` recognises it, and the reader asks it only of a
text that states no decision, so a person's answer is never taken for a
robot's. ``machine_mail_reason`` adds, for the same texts, what else gives a machine away: a
helpdesk's mailer, a helpdesk's "reply above this line" marker at the top, a client's command (an
Outlook recall).
"""

from __future__ import annotations

import re
from email.message import Message

from transferbot.inbound.reader.decision import fold
from transferbot.inbound.reader.message import header

_COMMENT = re.compile(r"\([^()]*\)")

# Matched against the folded subject (lower case, no accents) once reply/forward prefixes are removed.
_SUBJECT = re.compile(
    r"^[\s\[(*]*("
    r"auto(matic|matische|matique|matisch|matica)?[\s_-]*(reply|response|antwort|reponse|antwoord|respuesta|risposta)"
    r"|autoreply|autoresponse|auto-?respon(der|se)|auto\s*:"
    r"|out of (the )?office|ooo\b|away from (my|the) (desk|office|e-?mail|mail|computer)\b"
    r"|i am (currently )?(out|away)|on (vacation|holiday)\b"
    r"|vacation|holiday (notice|reply)"
    r"|reponse automatique|absente? du bureau|absence\b|je suis absente?\b|en conges\b"
    r"|abwesenheit|abwesend\b|automatische antwort|nicht im buro|ich bin (nicht|abwesend)"
    r"|urlaubs?(notiz|abwesenheit)?\b"
    # helpdesk acknowledgments
    r"|(ticket|request|case|demande|requete|anfrage)( #?\d+)? (received|recue?|erhalten|eingegangen)\b"
    r"|ticket #?\d* ?(created|cree|erstellt)\b|#?\d+\]? ticket (created|received|cree|erstellt)\b"
    r"|(your|votre|ihre) (request|ticket|case|demande|requete|anfrage) (#?\d+ )?"
    r"(has been|a (bien )?ete|ist( bei uns)?|wurde) (received|created|recue?|enregistree?|creee?|eingegangen|erstellt)"
    r"|we('ve| have)? received your (request|ticket|message)"
    r"|case #?\d+ has been created|accuse de reception|eingangsbestatigung"
    r")",
)

# Wording that only machines write: vacation programs and helpdesk acknowledgments (folded text).
_MACHINE_TEXT = re.compile(
    r"(this is an? (automated|automatic|auto-generated|automatically generated) (message|reply|response|e-?mail"
    r"|notification)"
    r"|(please )?do not reply (to|directly to) this (e-?mail|message)"
    r"|i will not be reading my (e-?)?mail|will be read when i('m| am) back"
    r"|i am (currently )?(out of (the )?office|away from (the|my) (office|desk)"
    r"|on (vacation|holiday|leave|annual leave))"
    r"|i'm (currently )?(out of (the )?office|away from (the|my) (office|desk)|on (vacation|holiday|leave))"
    r"|with (limited|no) access to (my )?e-?mail"
    r"|we would like to acknowledge that we have received your request"
    r"|a (support )?ticket has been (created|opened|logged)"
    r"|your (request|ticket|case|enquiry|inquiry) (\(?#?[\w-]{1,20}\)? )?has been (received|created|logged|opened)"
    r"|we('ve| have)? received your request"
    r"|ceci est un(e)? (message|e-?mail|courriel|reponse) automatique"
    r"|merci de ne pas (y )?repondre|ne repondez pas a ce (message|courriel|e-?mail)"
    r"|je suis (actuellement )?(absente?|en conges?)\b|je serai de retour le\b"
    r"|votre (demande|ticket|requete) (n. ?|no |#)?[\w-]{0,20} ?a (bien )?ete"
    r" (recue?|enregistree?|creee?|prise en compte)"
    r"|un ticket a ete (cree|ouvert|enregistre)"
    r"|dies ist eine automatisch(e|e generierte|) (antwort|nachricht|e-?mail|benachrichtigung)"
    r"|bitte antworten sie nicht auf diese (e-?mail|nachricht)"
    r"|ich bin (derzeit |zurzeit |momentan |(bis|vom|ab) .{1,30}? )?(nicht im buro|abwesend|im urlaub|nicht erreichbar)"
    r"|ihre (anfrage|nachricht|e-?mail) ist (bei uns )?eingegangen"
    r"|ihre (anfrage|ticket) (nr\.? ?|#)?[\w-]{0,20} ?(ist|wurde) (bei uns )?(eingegangen|erstellt|angelegt|erfasst)"
    r"|wir haben ihre (anfrage|nachricht|e-?mail) erhalten und"
    r"|ihre (anfrage|ticket|nachricht) \(?(nr\.? ?|#)?[\w-]{1,20}\)? (ist|wurde) (bei uns )?(eingegangen|erstellt|angelegt"
    r"|erfasst)"
    r"|votre (demande|ticket|requete) \(?(n. ?|no |#)?[\w-]{1,20}\)? a (bien )?ete (recue?|enregistree?|creee?)"
    # a client's commands: Outlook's message recall, in the words it sends them
    r"|would like to recall the message|souhaite rappeler le message|mochte die nachricht .{1,300}? zuruckrufen"
    r"|mochte die nachricht zuruckrufen|tried to recall the message)"
)
# Helpdesk and ticketing software, by the X-Mailer or User-Agent it sends with (folded).
_HELPDESK_MAILER = re.compile(r"\b(zendesk|freshdesk|freshservice|jira|servicenow|help ?scout|zammad|otrs|znuny"
                              r"|osticket|kayako|intercom|hubspot service|salesforce service|desk\.com)\b")
# A client's command message by its subject, once reply prefixes are removed: Outlook's recall.
_COMMAND_SUBJECT = re.compile(r"^(recall|rappel|ruckruf|richiamo|recuperar|terugroepen)\s*:")
MACHINE_TEXT_CHARS = 4000
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


def machine_text_reason(text: str) -> str | None:
    """Why a text reads as a machine's (a vacation program, a helpdesk), or None.

    Only the beginning of the text is read, with its lines joined, so that a
    sentence wrapped over two lines is still found."""
    flat = " ".join(fold(text[:MACHINE_TEXT_CHARS]).split())
    match = _MACHINE_TEXT.search(flat)
    return f"machine-written text {match.group(0)[:60]!r}" if match else None


def machine_mail_reason(msg: Message, text: str) -> str | None:
    """Why a message that states no decision is a machine's: a helpdesk's mailer, a helpdesk's "reply
    above this line" marker opening the text (a person writes above it), or a client's command (a
    recall). Asked only of a text that states no decision, as ``machine_text_reason`` is."""
    for name in ("X-Mailer", "User-Agent"):
        mailer = " ".join((header(msg, name) or "").split())[:200]
        if mailer and _HELPDESK_MAILER.search(fold(mailer)):
            return f"helpdesk mailer {mailer[:60]!r}"
    first = next((line.strip() for line in text[:MACHINE_TEXT_CHARS].splitlines() if line.strip()), "")
    start = first.find("##-")
    if start == 0 and first.find("-##", 3) > 0:
        return f"helpdesk reply marker {first[:60]!r} at the top"
    subject = _REPLY_PREFIX.sub("", " ".join((header(msg, "Subject") or "").split()))
    if _COMMAND_SUBJECT.match(fold(subject)):
        return f"client command {subject[:60]!r}"
    return None
