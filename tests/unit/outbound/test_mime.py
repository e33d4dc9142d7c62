"""Outgoing messages written straight to bytes (transferbot/mime.py) read back as the email package's did."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from transferbot.core import languages
from transferbot.outbound import compose, mime
from transferbot.outbound.compose import Envelope, Rendered

WHEN = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def envelope(**changes: object) -> Envelope:
    fields: dict[str, object] = dict(
        from_name="Marketplace Transfers", from_address="transfer@transfers.example", to=("ops@acme.example",),
        message_id="<abc.tr-1@transfers.example>", date=WHEN, reply_to="transfer+tok@transfers.example",
        in_reply_to="<reply-1@acme.example>", transfer_id="TR-1", locale="de", kind="receipt")
    fields.update(changes)
    return Envelope(**fields)  # type: ignore[arg-type]


def both(rendered: Rendered, env: Envelope, attachments: list[tuple[str, str, bytes]] = ()) -> tuple[
        email.message.EmailMessage, email.message.EmailMessage]:
    """The fast path's message and the email package's, each parsed back."""
    parts = [compose.attachment(*a) for a in attachments]
    fast = compose.build_bytes(rendered, env, "k1", [p.as_bytes(policy=email.policy.SMTP) for p in parts])
    assert fast is not None
    slow = compose.build_message(rendered, env)
    if parts:
        slow.make_mixed()
        for p in parts:
            slow.attach(p)
    compose.fix_boundaries(slow, "k1")
    parse = lambda raw: email.message_from_bytes(raw, policy=email.policy.default)  # noqa: E731
    return parse(fast), parse(slow.as_bytes(policy=email.policy.SMTP))


def same(a: email.message.EmailMessage, b: email.message.EmailMessage) -> None:
    for name in ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                 "Auto-Submitted", "X-Auto-Response-Suppress", "X-Transferbot-Transfer", "X-Transferbot-Kind",
                 "Content-Language", "MIME-Version"):
        if name == "Content-Language" and b.get_content_type() == "multipart/mixed":
            # make_mixed() moves Content-* headers to the inner part; the fast path keeps the message's language
            # on the message, where it describes the whole
            assert str(a[name]) == str(b.get_payload()[0][name]), name
            continue
        assert str(a[name]) == str(b[name]), name
    assert a.get_content_type() == b.get_content_type()
    for kind in ("plain", "html"):
        assert a.get_body((kind,)).get_content() == b.get_body((kind,)).get_content()
    got = [(p.get_filename(), p.get_content_type(), p.get_content()) for p in a.iter_attachments()]
    assert got == [(p.get_filename(), p.get_content_type(), p.get_content()) for p in b.iter_attachments()]


def test_a_german_notice_reads_back_as_the_email_package_wrote_it() -> None:
    rendered = Rendered("[TR-1] Bestätigung: Übertragung von Produkt Ä " + "sehr lang " * 12,
                        "Guten Tag Müller GmbH,\n\nZeile mit Leerzeichen am Ende   \n" + "x" * 200 + "\n",
                        "<p>Grüße &amp; mehr</p>\n")
    fast, slow = both(rendered, envelope(from_name="Marktplatz Übertragungen", to=("a@x.example", "b@y.example")))
    same(fast, slow)


def test_attachments_are_carried_byte_for_byte() -> None:
    html = "<!DOCTYPE html><p>Zertifikat für Müller</p>".encode()
    fast, slow = both(Rendered("Done", "done\n", "<p>done</p>"), envelope(),
                      [("certificate-TR-1.html", "text/html", html), ("certificate-TR-1.json", "application/json",
                                                                      b'{"a": 1}')])
    same(fast, slow)
    assert fast.get_content_type() == "multipart/mixed"
    assert 'charset="utf-8"' in next(fast.iter_attachments())["Content-Type"]


def test_no_value_can_add_a_header() -> None:
    with pytest.raises(ValueError):
        mime.header("Subject", "hello\r\nBcc: victim@example.com")
    with pytest.raises(ValueError):
        mime.mailbox("ops@acme.example", "Acme\nBcc: x@y")
    raw = compose.build_bytes(Rendered("a\u2028Bcc: x@y.example", "t\n", "h"), envelope(), "k1")
    assert raw is not None
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.startswith(b"Bcc") for line in headers.split(b"\r\n"))


@pytest.mark.parametrize("changes", [
    {"to": ("müller@acme.example",)},  # a non-ASCII address: SMTPUTF8 territory
    {"in_reply_to": "<caf\u00e9@acme.example>"},  # an 8-bit Message-ID we thread to
    {"from_name": "=?utf-8?q?Admin?="},  # looks like an encoded word
    {"in_reply_to": "<" + "x" * 1200 + "@acme.example>"},  # a line past 998 characters
])
def test_unusual_values_are_left_to_the_email_package(changes: dict[str, object]) -> None:
    assert compose.build_bytes(Rendered("Subject", "t\n", "h"), envelope(**changes), "k1") is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_quoted_printable_text_reads_back(text: str) -> None:
    raw = b"Content-Type: text/plain; charset=\"utf-8\"\r\n" + mime.text_part("plain", text).split(b"\r\n", 1)[1]
    got = email.message_from_bytes(raw, policy=email.policy.default).get_content()
    want = text.replace("\r\n", "\n").replace("\r", "\n")
    assert got.replace("\r\n", "\n") == (want if want.endswith("\n") else want + "\n")
    assert all(len(line) <= 76 for line in raw.split(b"\r\n"))


@pytest.mark.parametrize("locale", ["en", "fr", "de"])
@pytest.mark.parametrize("fmt", ["text", "html"])
def test_literals_translated_at_compile_time_render_as_gettext_renders_them(locale: str, fmt: str) -> None:
    plain = Environment(loader=FileSystemLoader(str(compose.templates_dir())), autoescape=(fmt == "html"),
                        extensions=["jinja2.ext.i18n"], undefined=StrictUndefined)
    plain.install_gettext_translations(languages.translations(locale), newstyle=True)  # type: ignore[attr-defined]
    fast = compose.environment(locale, fmt)
    source = ('{{ _("Transfer") }}|{{ _("Product") ~ ":" }}|{{ _("Note from %(isv)s:", isv="<A&B>") }}'
              '|{{ _("100%% sure") if false else "" }}|{{ x._("y") if false else "" }}')
    assert fast.from_string(source).render(x=None) == plain.from_string(source).render(x=None)


@given(st.text(alphabet=st.sampled_from(list("ab cd\u00a0é-\n\t  xyzlongerword")), max_size=300),
       st.integers(min_value=5, max_value=90), st.booleans(), st.booleans())
def test_the_remembered_wordwrap_wraps_exactly_as_jinjas_own(text: str, width: int, long_words: bool,
                                                             hyphens: bool) -> None:
    """compose's wordwrap filter remembers its results (the same paragraphs recur in every notice): what it
    gives must be what Jinja's wordwrap gives, whatever the text, the first time and the next."""
    from jinja2.filters import do_wordwrap

    env = compose.environment("en", "text")
    template = env.from_string("{{ s | wordwrap(w, break_long_words=b, break_on_hyphens=h) }}")
    expected = do_wordwrap(Environment(keep_trailing_newline=True), text, width, long_words, None, hyphens)
    for _ in range(2):
        assert template.render(s=text, w=width, b=long_words, h=hyphens) == expected
