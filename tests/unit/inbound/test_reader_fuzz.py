"""Malformed and hostile messages: the reader never raises and never takes long.

``read_message`` is the boundary: whatever the bytes, it returns a Reading,
within a bounded time. Hypothesis explores broken MIME (bad or missing
boundaries, nesting, bogus charsets and transfer encodings, odd line
endings) and random bytes under a per-example deadline; explicit worst cases
(10 MB lines, 200k lines, endless headers, 5,000 and 100,000 nested
multiparts, quadratic traps of the stdlib HTML and punycode decoders) are
each checked against a generous 2 s bound.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from datetime import timedelta
from email.message import Message
from email.parser import BytesParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transferbot.core.addresses import AddressBook
from transferbot.inbound.reader.fresh import _INVISIBLE, fresh_text
from transferbot.inbound.reader.html import read_html
from transferbot.inbound.reader.reading import Reading, read_message

BOOK = AddressBook(domain="transfers.example.com")
RCPT = ["transfer+abcdefghijklmnopqrstuvwx@transfers.example.com"]
BOUND_SECONDS = 2.0
FUZZ = settings(max_examples=150, deadline=timedelta(milliseconds=1500),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def read(raw: bytes) -> Reading:
    reading = read_message(raw, "jane@acme.example", RCPT, BOOK)
    assert isinstance(reading, Reading)
    assert isinstance(reading.fresh_text, str)
    return reading


# -- hypothesis: structured hostile MIME ------------------------------------------------------

_BOUNDARY = st.sampled_from(["b", "==b==", "a.b+c(d)", "x" * 200, "", " ", "--", "b\\", "[*]", "b;c"])
_CHARSET = st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "us-ascii", "x-bogus", "", "utf-7", "punycode",
                            "utf-16", "unicode_escape", "rot13", "base64", "idna", "gb18030", "iso-2022-jp",
                            "\"utf-8", "utf-8''%FF", "ü", "a" * 300])
_CTE = st.sampled_from(["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""])
_NEWLINE = st.sampled_from(["\r\n", "\n", "\r"])
_LINES = st.sampled_from([
    "APPROVE", "DECLINE", "> APPROVE", ">", "-- ", "##- Please type your reply above this line -##",
    "On Mon, 3 Mar 2025 at 10:02, Marketplace <t@example.com> wrote:", "Le 3 mars 2025 à 10:02, X a écrit :",
    "Am 03.03.2025 um 10:02 schrieb X <x@y>:", "From: X", "Sent: today", "To: Y", "Subject: Z", "_" * 32,
    "-----Original Message-----", "=?utf-8?q?=E9?=", "begin 644 f", "=E9=", "<div class=\"gmail_quote\">",
    "<blockquote type=\"cite\">", "</blockquote>", "<!--", "<a x='", "</a", "&#", "\x00", "\xff\xfe",
])


@st.composite
def hostile_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(_LINES, st.text(max_size=60)), max_size=30))
    return draw(_NEWLINE).join(parts)


@st.composite
def mime_part(draw: st.DrawFn, depth: int = 0) -> str:
    nl = draw(_NEWLINE)
    headers = [f"Content-Transfer-Encoding: {draw(_CTE)}"] if draw(st.booleans()) else []
    headers += draw(st.lists(st.sampled_from(["Content-Disposition: attachment", "Content-Disposition: inline",
                                              "X-Junk: " + "y" * 500, "Content-Type", ": no name", " folded"]),
                             max_size=2))
    if depth < 4 and draw(st.integers(0, 3)) == 0:
        boundary = draw(_BOUNDARY)
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest", "report", "signed"]))
        children = draw(st.lists(mime_part(depth + 1), max_size=3))
        body = "".join(f"--{boundary}{nl}{child}{nl}" for child in children)
        if draw(st.booleans()):
            body += f"--{boundary}--{nl}"
        value = f'"{boundary}"' if draw(st.booleans()) else boundary
        ctype = f"multipart/{subtype}; boundary={value}"
    elif draw(st.integers(0, 5)) == 0:
        ctype, body = "message/rfc822", draw(mime_part(depth + 1))
    else:
        ctype = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "text/plain;",
                                      "TEXT/PLAIN", "text", "/", "message/delivery-status"]))
        ctype += f"; charset={draw(_CHARSET)}" if draw(st.booleans()) else ""
        body = draw(hostile_text())
    head = nl.join([f"Content-Type: {ctype}", *headers])
    text = head + nl + nl + body
    if draw(st.integers(0, 4)) == 0:  # broken MIME: cut anywhere
        text = text[: draw(st.integers(0, len(text)))]
    return text


@st.composite
def hostile_message(draw: st.DrawFn) -> bytes:
    nl = draw(_NEWLINE)
    headers = draw(st.lists(st.sampled_from([
        "From: Jane <jane@acme.example>", "From: =?utf-8?q?J=C3=A9r=C3=B4me?= <j@x>", "From: (((", "From:",
        "Subject: =?bogus?q?x?=", "Subject: " + "=?utf-8?b?QQ==?= " * 50, "Message-ID: <a@b>", "In-Reply-To: <",
        "References: " + "<a@b> " * 50, "Auto-Submitted: auto-replied", "MIME-Version: 1.0", "X: \xff\xfe",
        "Authentication-Results: mx; dkim=pass (((", " continuation without header",
    ]), max_size=6))
    raw = nl.join(headers) + nl + draw(mime_part())
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return raw.encode(encoding, errors="replace")


@settings(FUZZ, max_examples=300)
@given(hostile_message())
def test_hostile_mime_never_raises(raw: bytes) -> None:
    read(raw)


@FUZZ
@given(st.binary(max_size=20_000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    read(raw)


@FUZZ
@given(st.binary(max_size=2_000))
def test_random_bytes_after_plausible_headers_never_raise(body: bytes) -> None:
    read(b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n" + body)


@FUZZ
@given(st.lists(st.one_of(_LINES, st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=80)),
                max_size=60))
def test_fresh_text_only_keeps_lines_of_the_input_and_never_starts_with_a_quote(lines: list[str]) -> None:
    lines = [part for line in lines for part in (line.splitlines() or [""])]
    fresh = fresh_text("\n".join(lines))
    allowed = {line.translate(_INVISIBLE).strip() for line in lines}
    assert all(line.strip() in allowed for line in fresh.split("\n") if line.strip())
    assert not fresh.lstrip().startswith(">")


_TRAPS = st.text(alphabet=" \t*:：<>@-_#=.,1\"'()aOnFromwrtesSchribAm", min_size=1, max_size=4_000)


@settings(FUZZ, max_examples=60)
@given(st.lists(_TRAPS, min_size=1, max_size=50))
def test_fresh_text_is_fast_on_long_lines_of_rule_characters(lines: list[str]) -> None:
    """Backtracking traps: white space, stars, colons, brackets and rule words, in 4,000-char lines."""
    fresh_text("\n".join(lines))


@FUZZ
@given(st.text(max_size=3_000))
def test_html_reading_never_raises(html: str) -> None:
    segments, everything = read_html(html)
    assert all(isinstance(segment, str) for segment in segments) and isinstance(everything, str)


# -- explicit worst cases ------------------------------------------------------------------------

HEAD = b"From: Jane <jane@acme.example>\r\nSubject: Re: transfer\r\n"


def _nested(levels: int) -> bytes:
    parts = [b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(levels)]
    return HEAD + b"".join(parts) + b"Content-Type: text/plain\r\n\r\nAPPROVE\r\n"


def _plain(body: bytes) -> bytes:
    return HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body


def _html(body: bytes) -> bytes:
    return HEAD + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + body


WORST: dict[str, Callable[[], bytes]] = {
    "5,000 nested multiparts": lambda: _nested(5_000),
    "100,000 nested multiparts": lambda: _nested(100_000),
    "3,000 nested message/rfc822": lambda: HEAD + b"Content-Type: message/rfc822\r\n\r\n" * 3_000 + b"\r\nhi",
    "3,000 nested digests": lambda: HEAD + b"".join(
        b"Content-Type: multipart/digest; boundary=d%d\r\n\r\n--d%d\r\n\r\n" % (i, i) for i in range(3_000)),
    "100,000 sibling parts": lambda: HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                                     + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100_000,
    "nested multiparts over 100,000 lines": lambda: _nested(40) + b"ab\r\n" * 100_000,
    "300 nested multiparts over 200,000 lines": lambda: _nested(300) + b"ab\r\n" * 200_000,
    "300,000 empty sibling parts": lambda: HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                                           + b"--b\r\n\r\n" * 300_000,
    "boundary never used, close missing": lambda: HEAD + b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
                                                  + b"--z\r\n" * 50_000,
    "10 MB single-line body": lambda: _plain(b"APPROVE " * 1_250_000),
    "10 MB single line of quote marks": lambda: _plain(b"> " * 5_000_000),
    "10 MB single-line header": lambda: HEAD + b"X-Long: " + b"a" * 10_000_000 + b"\r\n\r\nAPPROVE",
    "200k short lines": lambda: _plain(b"ab\r\n" * 200_000),
    "200k quoted lines": lambda: _plain(b"> ab\r\n" * 200_000),
    "200k attribution-like lines": lambda: _plain(b"On 3 Mar 2025 <a@b> wrote:\r\n" * 200_000),
    "200k header-like lines": lambda: _plain(b"From: x\r\n" * 200_000),
    "200k lines ending in CR only": lambda: _plain(b"ab\r" * 200_000),
    "2,000 lines of 4,000 chars that look like attributions": lambda: _plain(
        (b"On " + b"1 <a@b " * 570 + b":\r\n") * 2_000),
    "2,000 lines of 4,000 chars with dates and colons": lambda: _plain((b"Am 3.3.2025 schrieb " + b"x: " * 1_330
                                                                         + b"\r\n") * 2_000),
    "2,000 lines of 4,000 spaces and a letter": lambda: _plain((b" " * 3_999 + b"x\r\n") * 2_000),
    "2,000 lines of a header name and 4,000 spaces": lambda: _plain((b"From" + b" " * 3_990 + b"x\r\n") * 2_000),
    "2,000 lines of tabs around a star": lambda: _plain((b"\t" * 1_000 + b"*" + b"\t" * 1_000 + b"x\r\n") * 2_000),
    "2,000 lines of 4,000 underscores": lambda: _plain((b"_" * 4_000 + b"\r\n") * 2_000),
    "endless headers": lambda: b"".join(b"X-H%d: v\r\n" % i for i in range(300_000)) + b"\r\nAPPROVE",
    "endless headers, no body": lambda: b"X-H: v\r\n" * 300_000,
    "huge From address list": lambda: b"From: " + b"a@b.example, " * 200_000 + b"\r\n\r\nAPPROVE",
    "From of nested comments": lambda: b"From: " + b"(" * 200_000 + b"jane@acme.example\r\n\r\nAPPROVE",
    "huge Subject of encoded words": lambda: b"Subject: " + b"=?utf-8?q?a?= " * 300_000 + b"\r\n\r\nAPPROVE",
    "hostile References": lambda: HEAD + b"References: " + (b"<" + b"@" * 600) * 5_000 + b"\r\n\r\nAPPROVE",
    "punycode charset (quadratic decoder)": lambda: HEAD + b"Content-Type: text/plain; charset=punycode\r\n\r\n"
                                                    + b"a" * 250_000 + b"-" + b"b" * 250_000,
    "unknown charset": lambda: HEAD + b"Content-Type: text/plain; charset=x-nope\r\n\r\n\xe9" * 1_000,
    "RFC 2231 charset garbage": lambda: HEAD + b"Content-Type: text/plain; charset*=zz'yy'%FF%FE\r\n\r\nAPPROVE",
    "5 MB of base64 garbage": lambda: HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64"
                                      b"\r\n\r\n" + b"!@#$" * 1_250_000,
    "7 MB base64 body": lambda: HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                                + base64.encodebytes(b"APPROVE\n" + b"x" * 5_000_000),
    "uuencoded 100k lines": lambda: HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode"
                                    b"\r\n\r\nbegin 644 f\r\n" + (b"M" + b"!" * 60 + b"\r\n") * 100_000,
    "html: unclosed comment": lambda: _html(b"APPROVE<!--" + b"a" * 5_000_000),
    "html: endless unterminated end tags": lambda: _html(b"</a" * 2_000_000),
    "html: endless unterminated attribute values": lambda: _html(b"<a x='" * 1_000_000),
    "html: endless unterminated start tags": lambda: _html(b"<a" * 2_000_000),
    "html: a million lone <": lambda: _html(b"<" * 1_000_000),
    "html: 100k nested blockquotes": lambda: _html(b"<blockquote>" * 100_000 + b"APPROVE"),
    "html: 100k unclosed divs and stray end tags": lambda: _html(b"<div><span>" * 50_000 + b"</p>" * 50_000),
    "1 MB of random bytes": lambda: os.urandom(1_000_000),
    "NUL bytes": lambda: b"\x00" * 1_000_000,
    "empty": lambda: b"",
    "only a blank line": lambda: b"\r\n",
}


@pytest.mark.parametrize("build", WORST.values(), ids=WORST.keys())
def test_worst_case_is_read_within_the_bound(build: Callable[[], bytes]) -> None:
    raw = build()
    started = time.process_time()  # this process's CPU, not the wall clock: other work on the machine does not count
    read(raw)
    elapsed = time.process_time() - started
    assert elapsed < BOUND_SECONDS, f"{elapsed:.2f} s for {len(raw):,} bytes"


# -- the boundary holds when what is inside it fails ----------------------------------------

def test_a_parser_failure_reads_the_headers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    original = BytesParser.parsebytes

    def explode(self: BytesParser, text: bytes, headersonly: bool = False) -> Message:
        if not headersonly:
            raise RecursionError("maximum recursion depth exceeded")
        return original(self, text, headersonly)

    monkeypatch.setattr(BytesParser, "parsebytes", explode)
    reading = read(_nested(3))
    assert "UnparseableStructureDefect" in reading.defects
    assert reading.from_address == "jane@acme.example" and reading.fresh_text == ""


def test_a_failing_check_is_recorded_and_a_null_sender_still_reads_as_a_bounce(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise ValueError("malformed")

    monkeypatch.setattr("transferbot.inbound.reader.reading.auto_reply_reason", explode)
    monkeypatch.setattr("transferbot.inbound.reader.reading.read_bounce", explode)
    reading = read_message(_plain(b"APPROVE\r\n"), "<>", RCPT, BOOK)
    assert {"AutoReplyCheckFailed", "BounceCheckFailed"} <= set(reading.defects)
    assert reading.bounce is not None and reading.auto_reply is None
    assert read(_plain(b"APPROVE\r\n")).bounce is None
