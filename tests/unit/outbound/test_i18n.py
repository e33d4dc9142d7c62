"""Every email in every locale: complete catalogs, and well-formed MIME in English, French and German.

The catalogs are checked against a fresh extraction of the sources (so a new
``_()`` string without a translation fails here), and every kind of email is
rendered in every locale with awkward data, built into a MIME message, parsed
back and inspected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP, default
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from tests.paths import ROOT
from transferbot.core import languages
from transferbot.core.domain import MailKind
from transferbot.outbound import compose, i18n

POT = languages.LOCALE_DIR / "messages.pot"
TRANSLATED = tuple(locale for locale in languages.MAIL if locale != "en")
UPDATE = ("pybabel extract -F babel.cfg -c TRANSLATORS: --project=transferbot --version=0.1.0 "
          "--copyright-holder=transferbot -o transferbot/locale/messages.pot . && "
          "pybabel update -i transferbot/locale/messages.pot -d transferbot/locale --previous; then translate "
          "every empty or fuzzy entry")

MsgKey = tuple[str | None, str | tuple[str, ...]]  # (msgctxt, msgid)
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")

# ---------------------------------------------------------------------------------------------------------------
# Catalogs


@cache
def extracted() -> frozenset[MsgKey]:
    """The msgids the sources hold now, extracted as pybabel does with babel.cfg."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, "babel.cfg")
    found = extract_from_dir(ROOT, method_map, options_map, keywords=DEFAULT_KEYWORDS,
                             comment_tags=("TRANSLATORS:",), strip_comment_tags=True)
    return frozenset((context, message) for _f, _l, message, _c, context in found)


@cache
def catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def keys(cat: Catalog) -> frozenset[MsgKey]:
    return frozenset((m.context, m.id) for m in cat if m.id)


def _describe(keys_: Iterable[MsgKey]) -> str:
    return "\n".join(f"  {msgid!r}" + (f" (context {ctx!r})" if ctx else "") for ctx, msgid in sorted(keys_, key=str))


def test_the_template_is_up_to_date_with_the_sources() -> None:
    have, want = keys(catalog(POT)), extracted()
    assert want, "nothing was extracted: is babel.cfg right?"
    assert have == want, (f"messages.pot is stale; run: {UPDATE}\n"
                          f"new in the sources:\n{_describe(want - have)}\ngone from the sources:\n{_describe(have - want)}")


def test_every_locale_directory_is_a_supported_locale() -> None:
    on_disk = {p.parent.parent.name for p in languages.LOCALE_DIR.glob("*/LC_MESSAGES/messages.po")}
    assert on_disk == set(TRANSLATED)


def _strings(msgid: str | tuple[str, ...], msgstr: str | tuple[str, ...]) -> list[tuple[str, str]]:
    ids = (msgid,) if isinstance(msgid, str) else msgid
    strs = (msgstr,) if isinstance(msgstr, str) else msgstr
    return [(ids[min(i, len(ids) - 1)], s) for i, s in enumerate(strs)]


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_is_translated_with_the_same_placeholders(locale: str) -> None:
    cat = catalog(languages.catalog_path(locale), locale)
    assert keys(cat) == extracted(), (f"{locale} catalog does not match the sources; run: {UPDATE}\n"
                                      f"missing:\n{_describe(extracted() - keys(cat))}\n"
                                      f"stale:\n{_describe(keys(cat) - extracted())}")
    assert not cat.fuzzy, f"{locale}: the catalog header is marked fuzzy"
    problems: list[str] = []
    for message in cat:
        if not message.id:
            continue
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        for msgid, msgstr in _strings(message.id, message.string):
            if not msgstr or not msgstr.strip():
                problems.append(f"untranslated: {msgid!r}")
                continue
            if sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(msgstr)):
                problems.append(f"placeholders differ: {msgid!r} -> {msgstr!r}")
            try:  # Jinja's newstyle gettext always %-formats, so a stray % breaks rendering
                msgstr % {name: "x" for name in PLACEHOLDER.findall(msgid)}
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"bad format ({exc}): {msgstr!r}")
    problems += [f"{m.id!r}: {err}" for m, errors in cat.check() for err in errors]
    assert not problems, f"{locale}:\n" + "\n".join(problems)


def test_french_punctuation_has_a_no_break_space_and_typographic_apostrophes() -> None:
    cat = catalog(languages.catalog_path("fr"), "fr")
    bad = [m.string for m in cat if m.id and isinstance(m.string, str)
           and (re.search(r"(?<![\u00a0\u202f])[:;?!](?!\S)", m.string) or "'" in m.string)]
    assert not bad, bad


def test_the_catalogs_are_what_the_runtime_uses() -> None:
    assert languages.translations("fr").gettext("Customer") == "Client"
    assert languages.translations("de").gettext("Customer") == "Kunde"
    assert languages.translations("en").gettext("Customer") == "Customer"


# ---------------------------------------------------------------------------------------------------------------
# Dates


EXPIRES = datetime(2024, 12, 16, 23, 30, tzinfo=UTC)  # already the 17th in Paris and Berlin
CREATED = datetime(2024, 12, 2, 9, 15, tzinfo=UTC)
NOW = datetime(2024, 12, 9, 8, 0, tzinfo=UTC)
ZONE = {"en": "America/New_York", "fr": "Europe/Paris", "de": "Europe/Berlin"}
MONTH = {"en": "December", "fr": "décembre", "de": "Dezember"}


@pytest.mark.parametrize(("locale", "expected"), [
    ("en", "Monday, December~16, 2024 at 6:30\u202fPM (America/New_York)"),
    ("fr", "mardi~17~décembre~2024 à 00:30 (Europe/Paris)"),
    ("de", "Dienstag, 17.~Dezember~2024 um 00:30~Uhr (Europe/Berlin)"),
])
def test_dates_are_in_the_locales_words_and_the_readers_zone(locale: str, expected: str) -> None:
    """The reader's local day (the 17th in Europe, still the 16th in New York); "~" is a no-break space."""
    assert i18n.format_when(EXPIRES, locale, ZONE[locale]) == expected.replace("~", "\u00a0")


# ---------------------------------------------------------------------------------------------------------------
# Rendering every kind in every locale

TID = "TR-7K3Q9M"
TOKEN = "abcdefghijklmnopqrstuvwx"
EVIL = 'Acme <script>alert("x")</script> & Co'
EVIL_ESCAPED = "Acme &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co"
NOTE = "Line one: see <b>ticket</b> #42 & co.\nLine two: 100% \"done\""
PARTIES = [
    {"role": "customer", "name": EVIL, "decision": "approved", "is_me": True},
    {"role": "isv", "name": "Vendor Inc", "decision": "pending", "is_me": False},
    {"role": "current-reseller", "name": "Reseller One", "decision": "declined", "is_me": False},
    {"role": "new-reseller", "name": "Reseller Two", "decision": "pending", "is_me": False},
]


@dataclass(frozen=True)
class Case:
    name: str
    kind: MailKind
    extra: dict[str, Any] = field(default_factory=dict)
    role: str = "customer"
    decision: str = "pending"
    transfer: bool = True
    operator: bool = False


ADVICE_KEYS = ("from-address", "null-sender", "fix-dkim", "publish-dkim-key", "align-dkim", "fix-spf-record",
               "align-envelope", "fix-spf", "dmarc-policy", "relay-unauthenticated", "publish-spf-or-dkim")

CASES = [
    Case("confirmation", MailKind.CONFIRMATION),
    Case("confirmation-isv", MailKind.CONFIRMATION, role="isv"),
    Case("receipt", MailKind.RECEIPT, decision="approved"),
    Case("reminder", MailKind.REMINDER, role="new-reseller"),
    Case("last-call", MailKind.LAST_CALL),
    Case("completed", MailKind.COMPLETED, decision="approved"),
    Case("declined", MailKind.DECLINED, {"by_role": "current-reseller", "by_name": "Reseller One",
                                         "reason": "We still have a support contract.\nIt runs until March."}),
    Case("declined-no-reason", MailKind.DECLINED, {"by_role": "isv", "by_name": "Vendor Inc", "reason": ""}),
    Case("expired", MailKind.EXPIRED),
    Case("cancelled", MailKind.CANCELLED, {"reason": "Filed by mistake <oops> & withdrawn"}),
    Case("help-negation", MailKind.HELP, {"problem": "negation", "first_line": "I do not approve <yet>"}),
    Case("help-both", MailKind.HELP, {"problem": "both", "first_line": "approve or decline?"}, role="isv"),
    Case("help-empty", MailKind.HELP, {"problem": "empty", "first_line": ""}, role="current-reseller"),
    Case("help-no-word", MailKind.HELP, {"problem": "no-word", "first_line": "ok"}, role="new-reseller"),
    Case("help-condition", MailKind.HELP, {"problem": "condition", "first_line": "I approve, but only from March"}),
    Case("help-question", MailKind.HELP, {"problem": "question", "first_line": "Approve? Who asked?"}, role="isv"),
    Case("help-no-token", MailKind.HELP, {"problem": "no-token", "first_line": ""}, role="new-reseller"),
    Case("help-elsewhere", MailKind.HELP, {"problem": "elsewhere", "first_line": "Approved, see the attached letter"}),
    *(Case(f"help-mismatch-{slot}{'-direct' if direct else ''}", MailKind.HELP, {
        "problem": "mismatch", "first_line": "Approved, move to Reseller Three <now>", "slot": slot,
        "named": "Reseller Three", "expected": "Vendor Inc" if direct else "Reseller Two",
        "direct": "yes" if direct else "", "isv": "Vendor Inc"}, role=role)
      for slot, direct, role in (("to", False, "customer"), ("to", True, "isv"), ("from", False, "new-reseller"),
                                 ("from", True, "customer"), ("product", False, "customer"),
                                 ("customer", False, "current-reseller"))),
    Case("status", MailKind.STATUS),
    Case("status-decided", MailKind.STATUS, decision="approved"),
    Case("ignored-sender", MailKind.IGNORED_SENDER, {"problem": "sender", "sender": "alice@lookalike.example"}),
    Case("ignored-authentication", MailKind.IGNORED_SENDER,
         {"problem": "authentication", "sender": "alice@acme.example"}, role="isv"),
    Case("contact-replaced", MailKind.CONTACT_REPLACED, role="new-reseller"),
    Case("ignored-hidden", MailKind.IGNORED_SENDER, {"problem": "sender", "sender": "", "sender_hidden": True}),
    *(Case(f"ignored-advice-{key}", MailKind.IGNORED_SENDER, {
        "problem": "authentication", "sender": "alice@acme.example", "advice_key": key,
        "advice": {"domain": "acme.example", "signer": "mailer.example", "selector": "s1",
                   "spf_domain": "bounces.example", "client_ip": "203.0.113.5", "detail": "body hash mismatch"}})
      for key in ADVICE_KEYS),
    Case("alert-bounce", MailKind.OPERATOR_ALERT, {"alert": "bounce", "alert_facts": [
        ("role", "new-reseller"), ("address", "ops@r2.example"), ("reason", "550 5.1.1 <ops@r2.example> unknown")]},
        operator=True),
    Case("alert-delivery-failed", MailKind.OPERATOR_ALERT, {"alert": "delivery-failed", "alert_facts": [
        ("message", "<k.tr-7k3q9m@transfers.example>"), ("role", "customer"), ("address", "alice@acme.example"),
        ("error", "554 refused")]}, operator=True),
    Case("alert-expired", MailKind.OPERATOR_ALERT, {"alert": "expired", "alert_facts": [("reason", "")]},
         operator=True),
    Case("alert-cancelled", MailKind.OPERATOR_ALERT, {"alert": "cancelled", "alert_facts": [
        ("reason", EVIL)]}, operator=True),
    Case("alert-bounce-no-transfer", MailKind.OPERATOR_ALERT, {"alert": "bounce", "alert_facts": [
        ("message", "<x@elsewhere.example>"), ("reason", "5.1.1 <script>")]}, transfer=False, operator=True),
]
HELP = {"help-negation", "help-both", "help-empty", "help-no-word", "help-condition", "help-question",
        "help-no-token", "help-elsewhere"}
IGNORED = {"ignored-sender", "ignored-authentication", "ignored-hidden", *(f"ignored-advice-{key}" for key in ADVICE_KEYS)}
MISMATCH = {c.name for c in CASES if c.name.startswith("help-mismatch-")}  # these show the transfer's details
HOW_TO_ANSWER = {"confirmation", "confirmation-isv", "reminder", "last-call", "status"} | IGNORED | HELP | MISMATCH
NO_DATES = {"alert-bounce-no-transfer"} | IGNORED | HELP
NO_FACTS = NO_DATES | {"receipt"}
NO_TOKEN = {"contact-replaced"}  # told at an address that no longer answers: no reply address, no reference


def context(case: Case, locale: str) -> dict[str, Any]:
    tz = ZONE[locale]
    transfer = {
        "id": TID, "kind": "reseller-change", "product": "Analytics Pro", "entitlement": "ent-1",
        "customer": EVIL, "isv": "Vendor Inc",
        "from_channel": {"direct": False, "name": "Reseller One", "isv": "Vendor Inc"},
        "to_channel": {"direct": case.name == "completed", "name": "Reseller Two", "isv": "Vendor Inc"},
        "created_at": CREATED, "expires_at": EXPIRES, "note": NOTE, "fingerprint": "3f2a-91c0", "status": "pending",
    }
    if case.operator:
        return {"t": transfer if case.transfer else None, "me": None, "tz": tz, "now": NOW, "reply_marker": False,
                "asks": False, "parties": [{**p, "is_me": False} for p in PARTIES] if case.transfer else [],
                **case.extra}
    parties = [{**p, "is_me": p["role"] == case.role} for p in PARTIES]
    me = next(p for p in parties if p["is_me"])
    me["decision"] = case.decision
    asks = case.name in HOW_TO_ANSWER
    return {"t": transfer, "parties": parties, "tz": tz, "now": NOW, "reply_marker": asks, "asks": asks,
            "me": {"role": case.role, "name": me["name"], "token": None if case.name in NO_TOKEN else TOKEN,
                   "decision": case.decision}, **case.extra}


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str
    message: EmailMessage


@cache
def mail(case_name: str, locale: str) -> Mail:
    case = next(c for c in CASES if c.name == case_name)
    rendered = compose.render(case.kind, locale, context(case, locale))
    built = compose.build_message(rendered, compose.Envelope(
        from_name="Marketplace", from_address="transfers@transfers.example", to=("alice@acme.example",),
        message_id="<k.tr-7k3q9m@transfers.example>", date=NOW, reply_to=f"transfer+{TOKEN}@transfers.example",
        transfer_id=TID if case.transfer else None, locale=locale, kind=case.kind.value))
    parsed = BytesParser(policy=default).parsebytes(built.as_bytes(policy=SMTP))
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    text, html = (p.get_content().replace("\r\n", "\n") for p in parts)
    assert isinstance(text, str) and isinstance(html, str)
    # A long subject may be folded right after "Subject:"; unfolded, that leaves a leading space.
    subject = str(parsed["Subject"]).strip()
    assert subject == rendered.subject
    return Mail(subject=subject, text=text, html=html, message=parsed)


def test_every_kind_of_email_is_covered() -> None:
    assert {c.kind for c in CASES} == set(MailKind)


class _WellFormed(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


@cache
def _english_fragments() -> frozenset[str]:
    """Sizeable English pieces of every source string (between placeholders): none may show in fr/de mail."""
    fragments = set()
    for _ctx, msgid in extracted():
        for msg in (msgid,) if isinstance(msgid, str) else msgid:
            for piece in PLACEHOLDER.split(msg)[::2]:
                piece = piece.strip(" .,:;()[]")
                if len(piece) >= 12 and " " in piece:
                    fragments.add(piece)
    return frozenset(fragments)


ENGLISH = ("Hello", "Thank you", "Please", "Where things stand", "transfer of", "reply to this email", "bought",
           "through the reseller", "no answer yet", "(you)", "Operator alert", "Marketplace transfers", "Reference:",
           "Moves from", "Answer by", "December", "Monday", "Customer", "reseller")


@pytest.mark.parametrize("locale", languages.MAIL)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_email_renders_as_well_formed_mime(case: Case, locale: str) -> None:
    m = mail(case.name, locale)
    if case.transfer:
        assert m.subject.startswith(f"[{TID}] "), m.subject
    else:
        assert TID not in m.subject and "[" not in m.subject, m.subject
    for part in (m.subject, m.text, m.html):
        for leftover in ("{{", "{%", "{#", "%(", "Undefined"):
            assert leftover not in part, (leftover, part)

    # The HTML part: one document, balanced tags, data escaped.
    checker = _WellFormed()
    checker.feed(m.html)
    checker.close()
    assert m.html.startswith("<!DOCTYPE html>") and f'<html lang="{locale}">' in m.html
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert checker.scripts == 0 and "<script" not in m.html and "<b>" not in m.html and "<oops>" not in m.html
    assert (EVIL in m.text) == (EVIL_ESCAPED in m.html), "names are verbatim in text, escaped in HTML"
    if case.name not in NO_FACTS:
        assert EVIL in m.text
        assert "  | Line one: see <b>ticket</b> #42 & co.\n  | Line two: 100% \"done\"\n" in m.text
        assert "Line two: 100% &#34;done&#34;" in m.html or "Line two: 100% &quot;done&quot;" in m.html

    # Our reply marker first, in the shape the reader finds in any language, only on mail that asks for an
    # answer; the reference last, on every mail to a party that may answer.
    if case.name in HOW_TO_ANSWER:
        assert re.fullmatch(r"##-[^\n]*-##", m.text.splitlines()[0]), m.text.splitlines()[0]
    else:
        assert "##-" not in m.text
    if case.operator or case.name in NO_TOKEN:
        assert "[ref:" not in m.text and "[ref:" not in m.html
    else:
        assert f"[ref:{TOKEN}]" in m.text and f"[ref:{TOKEN}]" in m.html
    if case.name in HOW_TO_ANSWER:
        for word in ("APPROVE", "DECLINE", "STATUS"):
            assert word in m.text and word in m.html
        local = {"en": "APPROUVER", "fr": "APPROUVER", "de": "GENEHMIGEN"}[locale]
        assert local in m.text

    # Dates: the locale's words, the reader's zone.
    if case.name not in NO_DATES:
        assert MONTH[locale] in m.text and f"({ZONE[locale]})" in m.text, m.text
        assert MONTH[locale] in m.html
    answer_by = languages.translations(locale).gettext("Answer by")
    if case.transfer and case.name not in NO_FACTS:
        # Only mail that asks for an answer says by when; the others (receipt, completed, declined, …) do not.
        assert (answer_by in m.text) == (case.name in HOW_TO_ANSWER), m.text
        if case.name in HOW_TO_ANSWER:
            assert i18n.format_when(EXPIRES, locale, ZONE[locale]) in m.text

    # No English left in French or German mail, and French spacing survives wrapping.
    if locale != "en":
        leaks = [p for p in _english_fragments() | set(ENGLISH) if p in m.subject or p in m.text or p in m.html]
        assert not leaks, (leaks, m.text)
    if locale == "fr":
        assert not re.search(r"(?m)^\s*[:;?!]", m.text), m.text
        assert not re.search(r"\w ([;?!]|:(?!\d))", m.text.replace(EVIL, "")), m.text


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_cases_show_every_translated_string(locale: str) -> None:
    """Each translation's own words appear in some rendered mail, so the cases above exercise them all."""
    def squash(text: str) -> str:
        return re.sub(r"\s+", " ", text.replace("\u00a0", " "))

    shown = "\n".join(squash(f"{m.subject}\n{m.text}\n{m.html}") for m in (mail(c.name, locale) for c in CASES))
    unseen = [message.id for message in catalog(languages.catalog_path(locale), locale) if message.id and not all(
        squash(piece) in shown for piece in PLACEHOLDER.split(str(message.string))[::2] if piece.strip())]
    assert not unseen, f"add a case that renders: {unseen}"


@pytest.mark.parametrize("locale", languages.MAIL)
def test_the_message_says_its_language(locale: str) -> None:
    m = mail("confirmation", locale)
    # EmailMessage.set_content() drops Content-* headers set before it: compose must set this one after.
    assert m.message["Content-Language"] == locale, "compose.build_message lost the Content-Language header"


def test_english_wording_is_the_source() -> None:
    m = mail("confirmation", "en")
    flat = " ".join(m.text.split())
    assert m.subject == f"[{TID}] Please approve the transfer of Analytics Pro"
    assert f"Hello {EVIL}," in flat and "You are involved as the customer, so your approval is needed." in flat
    assert "Current reseller: Reseller One" in flat
    assert "Moves from: bought through the reseller Reseller One" in flat


@pytest.mark.parametrize(("locale", "expected"), [
    ("fr", ["[TR-7K3Q9M] Demande d’accord : transfert de la commande Analytics Pro",
            "Vous intervenez en tant que client ; votre accord est donc nécessaire.",
            "Revendeur actuel : Reseller One"]),
    ("de", ["[TR-7K3Q9M] Bitte um Zustimmung: Übertragung von Analytics Pro",
            "Sie sind als Kunde beteiligt, daher benötigen wir Ihre Zustimmung.",
            "Bisheriger Reseller: Reseller One"]),
])
def test_translations_read_naturally(locale: str, expected: list[str]) -> None:
    m = mail("confirmation", locale)
    flat = " ".join((m.subject + "\n" + m.text).replace("\u00a0", " ").split())
    for sentence in expected:
        assert sentence in flat, (sentence, m.text)


def test_every_authentication_advice_has_a_translated_sentence() -> None:
    from transferbot.inbound.senderauth.verdict import ADVICE

    assert set(ADVICE_KEYS) == set(ADVICE), "add the new advice to templates/mail/_details.j2 and to ADVICE_KEYS"


@pytest.mark.parametrize(("case", "locale", "expected"), [
    ("help-condition", "en", "your approval comes with a condition or a reservation"),
    ("help-condition", "fr", "votre accord est assorti d’une condition ou d’une réserve"),
    ("help-condition", "de", "Ihre Zustimmung ist an eine Bedingung oder einen Vorbehalt geknüpft"),
    ("help-question", "en", "your answer is put as a question"),
    ("help-question", "fr", "votre réponse est formulée comme une question"),
    ("help-question", "de", "Ihre Antwort ist als Frage formuliert"),
    ("help-elsewhere", "en", "your approval refers to conditions or terms kept elsewhere"),
    ("help-elsewhere", "fr", "votre accord renvoie à des conditions ou à des réserves formulées ailleurs"),
    ("help-elsewhere", "de", "Ihre Zustimmung verweist auf Bedingungen oder Vorbehalte an anderer Stelle"),
    ("help-mismatch-to", "en", "your reply names Reseller Three, but this transfer moves the order to Reseller Two"),
    ("help-mismatch-to", "fr", "votre réponse mentionne Reseller Three, alors que ce transfert fait passer la "
                               "commande chez Reseller Two"),
    ("help-mismatch-to", "de", "Ihre Antwort nennt Reseller Three, diese Übertragung bringt die Bestellung aber zu "
                               "Reseller Two"),
])
def test_the_help_mail_says_why_a_conditional_or_questioned_approval_did_not_count(
        case: str, locale: str, expected: str) -> None:
    m = mail(case, locale)
    assert expected in " ".join(m.text.replace("\u00a0", " ").split()), m.text
