"""Reading an HTML-only reply through its structure.

Mail clients mark where the quoted original starts, in two ways:

* a container that holds the quote and nothing else: ``blockquote``,
  Gmail's ``gmail_quote``, Thunderbird's ``moz-cite-prefix`` (the
  attribution) and Yahoo's ``yahoo_quoted``. Text after such a container
  may be an answer written under the quote (bottom-posting), so it is kept
  as a further segment;
* a marker after which everything is the original: Outlook's
  ``divRplyFwdMsg`` / ``appendonsend``, its header block (a div with a solid
  top border), Outlook.com's ``hr id=stopSpelling``. The original follows the
  marker *outside* it, so nothing after the marker is ever read.

Text is laid out as a mail client shows it: block elements and ``<br>`` end
lines, other white space collapses, ``<pre>`` keeps its own. Signatures
(``gmail_signature``, ``moz-signature``, Outlook's ``Signature`` div) are
left out.

The tokenizer is our own rather than ``html.parser``: on unterminated
constructs (``<a x='…``, ``<!--…``, ``</a</a…``) the stdlib parser rescans
the rest of the input for every one of them, quadratic time that reaches
minutes on 200 KB. Here every step either finds its terminator with one
``str.find`` and moves past it, or finds none and ends the document, as an
HTML5 tokenizer does at end of file: linear in the input.
"""

from __future__ import annotations

import re
from html import unescape

_BLOCK = frozenset({"p", "div", "br", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "ul", "ol",
                    "section", "article", "header", "footer", "hr", "dd", "dt", "dl", "blockquote", "center",
                    "address", "body", "td", "th", "tbody", "thead", "form", "fieldset", "main", "nav", "aside"})
_SKIP = frozenset({"script", "style", "head", "title", "template", "xml", "noscript", "object", "svg", "textarea"})
_RAW_TEXT = frozenset({"script", "style", "title", "textarea", "xmp", "iframe", "noembed", "noframes", "plaintext"})
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source", "embed",
                   "param", "track", "keygen"})
# Containers that hold the quoted original (text after them may be a bottom-posted answer).
_QUOTE_CLASSES = ("gmail_quote", "gmail_quote_container", "yahoo_quoted", "moz-cite-prefix", "gmail_extra",
                  "protonmail_quote", "zmail_extra", "zimbra_quote")
# Markers after which everything is the original.
_REST_IDS = ("divrplyfwdmsg", "appendonsend", "stopspelling", "mail-editor-reference-message-container",
             "ms-outlook-mobile-reference-message", "olk_src_body_section", "zwchr")
_REST_CLASSES = ("ms-outlook-mobile-reference-message", "olk-src-body-section")
_SIGNATURE_CLASSES = ("gmail_signature", "moz-signature")
_SIGNATURE_IDS = frozenset({"signature", "ms-outlook-mobile-signature", "applemailsignature"})
_WANTED_ATTRS = frozenset({"class", "id", "style", "type", "data-signatureblock"})

_SPACE = re.compile(r"[ \t\n\r\f\v\xa0\u2000-\u200a\u202f\u205f\u3000]+")
_TAG_NAME = re.compile(r"[a-zA-Z][^\s/>\x00]{0,63}")
_GAP = re.compile(r"[\s/]*")
_WHITE = re.compile(r"\s*")
_ATTR_NAME = re.compile(r"[^\s/>][^\s/>=]{0,63}")
_UNQUOTED = re.compile(r"[^\s>]*")
_RAW_TEXT_END = {tag: re.compile("</" + tag, re.IGNORECASE) for tag in _RAW_TEXT}
MAX_HTML_CHARS = 200_000


def _class_has(classes: str, names: tuple[str, ...]) -> bool:
    """Class tokens, also as re-rendered by webmails with a prefix (``x_gmail_quote``, ``ecxgmail_quote``)."""
    for token in classes.lower().split():
        for name in names:
            if token == name or token.endswith("_" + name) or (token.endswith(name) and token.startswith("ecx")):
                return True
    return False


def _has_solid_top_border(style: str) -> bool:
    """Outlook's header block: ``border:none;border-top:solid #E1E1E1 1.0pt`` (or the longhand form)."""
    css = style.replace(" ", "").lower()
    if "border-top" not in css:
        return False
    return "border-top:solid" in css or "border-top-style:solid" in css or (
        "border-top:" in css and "solid" in css.split("border-top:", 1)[1].split(";", 1)[0])


class _Layout:
    """Builds, in one pass, the segments outside quotes and all visible text (for the reference line)."""

    def __init__(self) -> None:
        self.segments: list[list[str]] = [[]]
        self.everything: list[str] = []
        self.stack: list[tuple[str, str]] = []  # (tag, kind) kind: "" | quote | skip | signature | pre
        self.open_count: dict[str, int] = {}
        self.quote_depth = 0
        self.skip_depth = 0
        self.signature_depth = 0
        self.pre_depth = 0
        self.rest = False  # past a marker: everything that follows is the original
        self.line_open = [False, False]  # the current line of (everything, segment) has visible text

    def _kind(self, tag: str, attrs: dict[str, str]) -> str:
        if tag in _SKIP:
            return "skip"
        element_id = attrs.get("id", "").lower()
        classes = attrs.get("class", "")
        if any(marker in element_id for marker in _REST_IDS) or _class_has(classes, _REST_CLASSES):
            return "rest"
        if tag == "div" and _has_solid_top_border(attrs.get("style", "")):
            return "rest"
        if tag == "blockquote":
            # Gmail's "indent" is a borderless blockquote around the author's own text
            style = attrs.get("style", "").replace(" ", "").lower()
            if "border:none" in style and attrs.get("type", "").lower() != "cite" and not classes:
                return ""
            return "quote"
        if _class_has(classes, _QUOTE_CLASSES):
            return "quote"
        if _class_has(classes, _SIGNATURE_CLASSES) or element_id in _SIGNATURE_IDS \
                or attrs.get("data-signatureblock", "").lower() == "true":
            return "signature"
        if tag == "pre":
            return "pre"
        return ""

    def start(self, tag: str, attrs: dict[str, str], self_closing: bool) -> None:
        if tag == "body":  # a <head> left open ends where the body starts
            self.end("head", block=False)
        if tag in _BLOCK:
            self.newline(hard=tag == "br")
        kind = self._kind(tag, attrs)
        if kind == "rest":
            if not (self.quote_depth or self.skip_depth):
                self.rest = True
            kind = ""
        if tag in _VOID or self_closing:
            return
        if kind == "quote":
            if self.quote_depth == 0 and not self.skip_depth and not self.rest:
                self.segments.append([])
                self.line_open[1] = False
            self.quote_depth += 1
        elif kind == "skip":
            self.skip_depth += 1
        elif kind == "signature":
            self.signature_depth += 1
        elif kind == "pre":
            self.pre_depth += 1
        self.stack.append((tag, kind))
        self.open_count[tag] = self.open_count.get(tag, 0) + 1

    def end(self, tag: str, block: bool = True) -> None:
        """Close the innermost open ``tag`` and whatever was left open inside it."""
        if block and tag in _BLOCK:
            self.newline()
        if not self.open_count.get(tag):  # O(1) for stray end tags; otherwise amortised O(1)
            return
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                for open_tag, kind in self.stack[index:]:
                    self._close(kind)
                    self.open_count[open_tag] -= 1
                del self.stack[index:]
                return

    def _close(self, kind: str) -> None:
        if kind == "quote" and self.quote_depth:
            self.quote_depth -= 1
        elif kind == "skip" and self.skip_depth:
            self.skip_depth -= 1
        elif kind == "signature" and self.signature_depth:
            self.signature_depth -= 1
        elif kind == "pre" and self.pre_depth:
            self.pre_depth -= 1

    def data(self, raw: str) -> None:
        if self.skip_depth or not raw:
            return
        text = unescape(raw) if "&" in raw else raw
        text = text.replace("\xa0", " ") if self.pre_depth else _SPACE.sub(" ", text)
        visible = not text.isspace()
        self.everything.append(text)
        self.line_open[0] = self.line_open[0] or visible
        if not (self.rest or self.quote_depth or self.signature_depth):
            self.segments[-1].append(text)
            self.line_open[1] = self.line_open[1] or visible

    def newline(self, hard: bool = False) -> None:
        """End the line: always for ``<br>``, for a block edge only if the line has text (as browsers do)."""
        if self.skip_depth:
            return
        if hard or self.line_open[0]:
            self.everything.append("\n")
            self.line_open[0] = False
        if not (self.rest or self.quote_depth or self.signature_depth) and (hard or self.line_open[1]):
            self.segments[-1].append("\n")
            self.line_open[1] = False


def _read_tag(html: str, pos: int, layout: _Layout) -> int:
    """Read the tag whose name starts at ``pos`` (after ``<`` or ``</``); the position after it, -1 at EOF."""
    closing = html[pos - 1] == "/"
    match = _TAG_NAME.match(html, pos)
    assert match is not None
    tag = match.group().lower()
    n = len(html)
    pos = match.end()
    attrs: dict[str, str] = {}
    self_closing = False
    while True:
        gap = _GAP.match(html, pos)
        assert gap is not None
        self_closing = "/" in gap.group()
        pos = gap.end()
        if pos >= n:
            return -1  # EOF inside a tag: the tag is dropped
        if html[pos] == ">":
            pos += 1
            break
        name_match = _ATTR_NAME.match(html, pos)
        assert name_match is not None
        name = name_match.group().lower()
        pos = _WHITE.match(html, name_match.end()).end()  # type: ignore[union-attr]
        value = ""
        if pos < n and html[pos] == "=":
            pos = _WHITE.match(html, pos + 1).end()  # type: ignore[union-attr]
            if pos < n and html[pos] in "\"'":
                close = html.find(html[pos], pos + 1)
                if close < 0:
                    return -1
                value, pos = html[pos + 1:close], close + 1
            else:
                unquoted = _UNQUOTED.match(html, pos)
                assert unquoted is not None
                value, pos = unquoted.group(), unquoted.end()
        if name in _WANTED_ATTRS and name not in attrs:
            attrs[name] = unescape(value) if "&" in value else value
    if closing:
        layout.end(tag)
        return pos
    layout.start(tag, attrs, self_closing)
    if tag in _RAW_TEXT and not self_closing:  # no markup inside: skip to its end tag
        end = _RAW_TEXT_END[tag].search(html, pos)
        if end is None:
            return -1
        close = end.start()
        if tag not in _SKIP:
            layout.data(html[pos:close])
        return close
    return pos


def _tokenize(html: str, layout: _Layout) -> None:
    n = len(html)
    pos = 0  # where the pending text starts
    scan = 0  # where to look for the next "<"
    while scan < n:
        lt = html.find("<", scan)
        if lt < 0:
            break
        nxt = html[lt + 1:lt + 2]
        if not (nxt in ("/", "!", "?") or (nxt.isascii() and nxt.isalpha())):
            scan = lt + 1  # a lone "<" is text
            continue
        if lt > pos:
            layout.data(html[pos:lt])
        if nxt == "/":
            if html[lt + 2:lt + 3].isascii() and html[lt + 2:lt + 3].isalpha():
                pos = _read_tag(html, lt + 2, layout)
            else:  # "</>" or a bogus comment up to the next ">"
                close = html.find(">", lt + 2)
                pos = -1 if close < 0 else close + 1
        elif nxt == "!":
            if html.startswith("<!--", lt):
                if html.startswith("<!-->", lt) or html.startswith("<!--->", lt):
                    pos = html.find(">", lt) + 1
                else:
                    close = html.find("-->", lt + 4)
                    pos = -1 if close < 0 else close + 3
            else:  # <!DOCTYPE …>, <![CDATA[…]]>, <![if …]>: up to the next ">"
                close = html.find(">", lt + 2)
                pos = -1 if close < 0 else close + 1
        elif nxt == "?":
            close = html.find(">", lt + 2)
            pos = -1 if close < 0 else close + 1
        else:
            pos = _read_tag(html, lt + 1, layout)
        if pos < 0:
            return  # EOF inside a construct: the rest is dropped
        scan = pos
    if pos < n:
        layout.data(html[pos:])


def _text(parts: list[str]) -> str:
    out: list[str] = []
    for line in "".join(parts).split("\n"):
        line = line.strip()
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


def read_html(html: str) -> tuple[list[str], str]:
    """``html_segments`` and ``html_to_text`` from one pass."""
    layout = _Layout()
    _tokenize(html[:MAX_HTML_CHARS], layout)
    return [_text(parts) for parts in layout.segments], _text(layout.everything)


def html_segments(html: str) -> list[str]:
    """Text outside quote containers: [before the first quote, after it, …], none past a marker."""
    return read_html(html)[0]


def html_to_text(html: str) -> str:
    """All visible text (quotes and signatures included), for the reference line and for tools."""
    return read_html(html)[1]
