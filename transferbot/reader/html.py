"""Reading an HTML-only reply through its structure.

Mail clients mark where the quoted original starts: Gmail's ``gmail_quote``,
Outlook's ``divRplyFwdMsg`` and its border-top header block, Thunderbird's
``moz-cite-prefix``, Yahoo's ``yahoo_quoted``, and ``blockquote`` everywhere.
The text outside such containers is kept, split into what comes before the
first one and what comes after it (a bottom-posted answer).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "br", "li", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "ul", "ol",
          "section", "article", "header", "footer", "hr", "dd", "dt"}
_SKIP = {"script", "style", "head", "title", "template", "xml"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_QUOTE_CLASSES = {"gmail_quote", "gmail_quote_container", "yahoo_quoted", "moz-cite-prefix", "gmail_extra",
                  "protonmail_quote", "ms-outlook-mobile-reference-message", "zmail_extra"}
_SIGNATURE_CLASSES = {"gmail_signature", "moz-signature"}
_QUOTE_IDS = {"divrplyfwdmsg", "appendonsend", "stopspelling", "mail-editor-reference-message-container",
              "divrplyfwdmsg0", "ydpquoted", "origbody"}
_SIGNATURE_IDS = {"signature", "ms-outlook-mobile-signature", "applemailsignature"}
_BORDER_TOP = re.compile(r"border-top\s*:\s*(solid|[^;]*\bsolid\b)", re.IGNORECASE)
MAX_HTML_CHARS = 400_000


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.segments: list[list[str]] = [[]]  # outside-quote text, split at each quote container
        self.stack: list[tuple[str, bool]] = []  # (tag, opened a quote/skip region)
        self.quote_depth = 0
        self.skip_depth = 0
        self.signature_depth = 0

    # -- classification -------------------------------------------------
    @staticmethod
    def _is_quote(tag: str, attrs: dict[str, str]) -> bool:
        if tag == "blockquote":
            return True
        classes = set(attrs.get("class", "").lower().split())
        if classes & _QUOTE_CLASSES:
            return True
        element_id = attrs.get("id", "").lower()
        if element_id in _QUOTE_IDS or element_id.startswith("divrplyfwdmsg"):
            return True
        if tag == "hr" and element_id == "stopspelling":
            return True
        if tag == "div":
            style = attrs.get("style", "")
            if _BORDER_TOP.search(style) and "padding" in style.lower() and "border:none" in style.replace(" ", "").lower():
                return True
        return False

    @staticmethod
    def _is_signature(attrs: dict[str, str]) -> bool:
        classes = set(attrs.get("class", "").lower().split())
        return bool(classes & _SIGNATURE_CLASSES) or attrs.get("id", "").lower() in _SIGNATURE_IDS

    # -- parser callbacks -----------------------------------------------
    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v or "") for k, v in attrs_list}
        if tag in _BLOCK:
            self._newline()
        if tag in _VOID:
            if tag == "hr" and self._is_quote(tag, attrs) and self.quote_depth == 0:
                self._start_quote_segment()
                self.quote_depth = 10**6  # everything after Hotmail's stopSpelling rule is the original
            return
        kind = ""
        if tag in _SKIP:
            kind = "skip"
        elif self._is_quote(tag, attrs):
            kind = "quote"
        elif self._is_signature(attrs):
            kind = "signature"
        if kind == "quote":
            if self.quote_depth == 0:
                self._start_quote_segment()
            self.quote_depth += 1
        elif kind == "skip":
            self.skip_depth += 1
        elif kind == "signature":
            self.signature_depth += 1
        self.stack.append((tag, kind))  # type: ignore[arg-type]
        if len(self.stack) > 2000:
            self.stack = self.stack[-1000:]

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK:
            self._newline()
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                for _open_tag, kind in self.stack[index:]:
                    self._close(kind)  # type: ignore[arg-type]
                del self.stack[index:]
                return

    def _close(self, kind: str) -> None:
        if kind == "quote" and self.quote_depth:
            self.quote_depth -= 1
        elif kind == "skip" and self.skip_depth:
            self.skip_depth -= 1
        elif kind == "signature" and self.signature_depth:
            self.signature_depth -= 1

    def handle_data(self, data: str) -> None:
        if self.quote_depth or self.skip_depth or self.signature_depth:
            return
        self.segments[-1].append(data.replace("\xa0", " "))

    # -- helpers ----------------------------------------------------------
    def _newline(self) -> None:
        if not (self.quote_depth or self.skip_depth or self.signature_depth):
            self.segments[-1].append("\n")

    def _start_quote_segment(self) -> None:
        self.segments.append([])


def _text(parts: list[str]) -> str:
    text = "".join(parts)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


def html_segments(html: str) -> list[str]:
    """Text outside quote containers: [before the first quote, after it, …]."""
    reader = _Reader()
    try:
        reader.feed(html[:MAX_HTML_CHARS])
        reader.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; keep what was read
        pass
    return [_text(parts) for parts in reader.segments]


def html_to_text(html: str) -> str:
    """All visible text (quotes included), for the reference line and for tools."""
    reader = _Reader()
    reader._is_quote = lambda tag, attrs: False  # type: ignore[method-assign]
    try:
        reader.feed(html[:MAX_HTML_CHARS])
        reader.close()
    except Exception:  # noqa: BLE001
        pass
    return "\n\n".join(_text(parts) for parts in reader.segments)
