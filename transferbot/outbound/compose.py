"""Rendering our emails: Jinja templates to a MIME message (text + HTML).

One template per kind of email renders both parts: it is rendered once with
``format="text"`` by an environment without autoescape and once with
``format="html"`` by one with autoescape on, importing the macros of that
format. Text and HTML therefore cannot drift apart, and translators see one
string per sentence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime as rfc2822_date
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, pass_environment
from jinja2.ext import Extension
from jinja2.filters import do_wordwrap
from jinja2.lexer import Token, TokenStream

from transferbot.core.domain import MailKind
from transferbot.outbound import i18n, mime


def templates_dir() -> Path:
    """templates/ inside the installed package, else the source checkout's."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "mail").is_dir():
            return candidate
    raise RuntimeError("transferbot's templates are missing from the installation")


class ConstantGettext(Extension):
    """``_("literal")`` translated once, when a template is compiled, not at every render.

    An environment serves one locale, so such a call always gives the same text; through the i18n
    extension it costs a call chain per use (about a quarter of rendering a notice). The constant is
    what newstyle gettext returns: the translation with ``%%`` as ``%``, and, where the environment
    autoescapes, marked safe (translators' text is not escaped). Calls with arguments keep the
    extension's path."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        translations = getattr(self.environment, "constant_translations", None)
        window: list[Token] = []
        previous: Token | None = None
        for token in stream:
            window.append(token)
            if len(window) < 4:
                continue
            name, lparen, literal, rparen = window
            if (translations is not None and name.type == "name" and name.value == "_"
                    and lparen.type == "lparen" and literal.type == "string" and rparen.type == "rparen"
                    and (previous is None or previous.type != "dot")):
                text = translations.gettext(literal.value) % {}
                yield lparen
                yield Token(literal.lineno, "string", text)
                if self.environment.autoescape:
                    yield Token(literal.lineno, "pipe", "|")
                    yield Token(literal.lineno, "name", "safe")
                yield rparen
                previous = rparen
                window = []
                continue
            previous = window.pop(0)
            yield previous
        yield from window


@cache
def environment(locale: str, fmt: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        autoescape=(fmt == "html"),
        extensions=["jinja2.ext.i18n", "jinja2.ext.do", ConstantGettext],
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # shipped with the package: no need to stat the file at every mail
    )
    translations = i18n.translations(locale)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.constant_translations = translations  # type: ignore[attr-defined]  # read by ConstantGettext
    env.globals["locale"] = locale
    env.globals["format"] = fmt
    env.filters["when"] = _when_filter(locale)
    env.filters["wordwrap"] = _wordwrap
    return env


@pass_environment
def _wordwrap(env: Environment, s: str, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:
    """Jinja's own ``wordwrap``, remembered: most paragraphs of a notice are the same sentence in every
    notice of a locale, and textwrap costs more than the rest of the text part's template."""
    return _wrapped(str(s), width, break_long_words, wrapstring or env.newline_sequence, break_on_hyphens)


@lru_cache(maxsize=4096)
def _wrapped(s: str, width: int, break_long_words: bool, wrapstring: str, break_on_hyphens: bool) -> str:
    return do_wordwrap(_PLAIN, s, width, break_long_words, wrapstring, break_on_hyphens)


_PLAIN = Environment()  # do_wordwrap reads only the newline sequence of an environment, and gets it here


def _when_filter(locale: str) -> Any:
    def when(value: datetime, tz: str) -> str:
        return i18n.format_when(value, locale, tz)

    return when


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _template(locale: str, fmt: str, kind: MailKind) -> Template:
    return environment(locale, fmt).get_template(f"mail/{kind.value}.j2")


def render(kind: MailKind, locale: str, context: dict[str, Any]) -> Rendered:
    """Render a kind of email in a locale; the context is plain data."""
    text_tmpl = _template(locale, "text", kind)
    # One render of the whole text part; the subject block is then rendered in the same context,
    # where the template's top-level imports and macros are defined.
    ctx = text_tmpl.new_context({**context, "format": "text"})
    text = text_tmpl.environment.concat(text_tmpl.root_render_func(ctx))
    subject = text_tmpl.environment.concat(text_tmpl.blocks["subject"](ctx))
    subject = re.sub(r"[ \t\r\n]+", " ", subject).strip()  # keeps French no-break spaces
    html = _template(locale, "html", kind).render({**context, "format": "html", "subject": subject})
    return Rendered(subject=subject, text=_tidy(text), html=html)


def _tidy(text: str) -> str:
    """Collapse runs of blank lines that template logic leaves behind."""
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip("\n") + "\n"


@dataclass(frozen=True)
class Envelope:
    """Headers of one outgoing message, besides its rendered content."""

    from_name: str
    from_address: str
    to: tuple[str, ...]
    message_id: str
    date: datetime
    reply_to: str | None = None
    in_reply_to: str | None = None
    transfer_id: str | None = None
    locale: str = "en"
    kind: str = ""


def _address(addr: str, name: str = "") -> Address:
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def one_line(text: str) -> str:
    """A header value on one line: control characters and line or paragraph separators (which the
    email package, splitting as str.splitlines does, takes for line ends) become spaces. Names are
    checked when they are registered; this holds for data stored before that check."""
    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)


def build_message(rendered: Rendered, env: Envelope) -> EmailMessage:
    """A complete MIME message. Header values pass through the email package,
    which refuses CR/LF in them, so no name or note can inject a header."""
    msg = EmailMessage()
    msg["From"] = _address(env.from_address, env.from_name)
    msg["To"] = [_address(a) for a in env.to]
    if env.reply_to:
        msg["Reply-To"] = _address(env.reply_to, env.from_name)
    msg["Subject"] = one_line(rendered.subject)
    msg["Date"] = rfc2822_date(env.date)
    msg["Message-ID"] = env.message_id
    if env.in_reply_to:
        msg["In-Reply-To"] = env.in_reply_to
        msg["References"] = env.in_reply_to
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    if env.transfer_id:
        msg["X-Transferbot-Transfer"] = env.transfer_id
    if env.kind:
        msg["X-Transferbot-Kind"] = env.kind
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = env.locale  # after set_content, which drops Content-* headers
    return msg


def build_bytes(rendered: Rendered, env: Envelope, key: str, attachments: Sequence[bytes] = ()) -> bytes | None:
    """The message ``build_message`` makes, written straight to bytes (``mime`` says why), with the
    boundaries ``fix_boundaries`` gives; ``None`` when a value is one the email package must handle."""
    name = one_line(env.from_name)
    try:
        head = [mime.address_header("From", [mime.mailbox(env.from_address, name)]),
                mime.address_header("To", [mime.mailbox(a) for a in env.to])]
        if env.reply_to:
            head.append(mime.address_header("Reply-To", [mime.mailbox(env.reply_to, name)]))
        head += [mime.header("Subject", one_line(rendered.subject)), mime.header("Date", rfc2822_date(env.date)),
                 mime.header("Message-ID", mime.plain(env.message_id))]
        if env.in_reply_to:
            head += [mime.header("In-Reply-To", mime.plain(env.in_reply_to)),
                     mime.header("References", mime.plain(env.in_reply_to))]
        head += [b"Auto-Submitted: auto-generated\r\n", b"X-Auto-Response-Suppress: All\r\n"]
        if env.transfer_id:
            head.append(mime.header("X-Transferbot-Transfer", mime.plain(env.transfer_id)))
        if env.kind:
            head.append(mime.header("X-Transferbot-Kind", mime.plain(env.kind)))
        head += [b"MIME-Version: 1.0\r\n", mime.header("Content-Language", mime.plain(env.locale))]
    except mime.Unusual:
        return None
    parts = [mime.text_part("plain", rendered.text), mime.text_part("html", rendered.html)]
    if attachments:
        inner = mime.multipart("alternative", f"=_tb_{key}_1", parts)
        raw = mime.multipart("mixed", f"=_tb_{key}_0", [inner, *attachments], b"".join(head))
    else:
        raw = mime.multipart("alternative", f"=_tb_{key}_0", parts, b"".join(head))
    return None if mime.long_lines(raw) else raw


def attachment(filename: str, content_type: str, data: bytes) -> EmailMessage:
    """An attachment part, encoded once, to be attached to several messages (text in UTF-8, declared)."""
    maintype, _, subtype = content_type.partition("/")
    part = EmailMessage()
    params = {"charset": "utf-8"} if maintype == "text" or subtype == "json" else None
    part.set_content(data, maintype=maintype, subtype=subtype, filename=filename, disposition="attachment",
                     cte="base64", params=params)
    return part


def fix_boundaries(msg: EmailMessage, key: str) -> None:
    """MIME boundaries derived from the message's key, not random: the same row gives the same bytes.
    The key is random and never part of any content, so no part can contain its boundary."""
    for number, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_tb_{key}_{number}")
