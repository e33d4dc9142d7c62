"""The reader against public corpora of real replies (see ../shared/corpora/README.md).

The bar is the first line of the fresh text, where the decision word is: it
must match on at least 98 % of the cases in scope, and a line of the quoted
original must never be read as that first line, in or out of scope.

Conventions:

* email_reply_trimmer: ``emails/NAME.txt`` reduces to ``trimmed/NAME.txt``.
  transferbot never takes a ``>`` line as fresh text; where the trimmer keeps
  an interleaved quote (quote_and_text, quote_only, embedded_email_7,
  embedded_email_16) the expected first line is the first unquoted line of
  its result (none for quote_only).
* talon standard_replies: the first text/plain part reduces to ``Hello``, or
  to the content of ``NAME_reply_text``.
* talon html_replies: the whole fresh text is ``Hi. I am fine.\\n\\nThanks,\\nAlex``,
  compared with all white space removed.

"Quoted original" lines are the non-empty lines of a case's input that are
not in its expected result, plus every ``>`` line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.paths import SHARED
from transferbot.inbound.reader.html import html_to_text
from transferbot.inbound.reader.message import body, parse
from transferbot.inbound.reader.reading import fresh_from_body

CORPORA = SHARED / "corpora"
if not CORPORA.is_dir():
    pytest.skip(f"public reply corpora not found at {CORPORA}", allow_module_level=True)

TALON_HTML_EXPECTED = "Hi. I am fine.\n\nThanks,\nAlex"
BAR = 0.98

_UNPREFIXED_ORIGINAL = (
    "unprefixed text under an attribution with nothing written above it: the trimmer takes that text for the "
    "reply, transferbot for the quoted original, unprefixed as Outlook and mobile clients send it (as in "
    "embedded_email_10), and never reads it: our own email quoted that way carries APPROVE and DECLINE")
OUT_OF_SCOPE: dict[str, str] = {
    "email_reply_trimmer/forwarded_message": (
        "a forward with nothing written above it: the trimmer returns the forwarded body as the reply; a "
        "forwarded original is never the party's own words (our own email forwarded back would carry APPROVE "
        "and DECLINE), so transferbot reads no fresh text"),
    "email_reply_trimmer/embedded_email_17": _UNPREFIXED_ORIGINAL,
    "email_reply_trimmer/embedded_email_18": _UNPREFIXED_ORIGINAL,
}
# Cases the corpora README suggests skipping (spam_1, spam_2, usenet, block_code_spacers) are kept in scope:
# what they test beyond the first line (code-block spacing, usenet signatures) is not checked here, and
# their first lines do match.


@dataclass(frozen=True)
class Case:
    name: str
    source: str  # the input as text (decoded body), for the quoted-line set
    fresh: str
    expected: str
    whole_text: bool = False  # compare the whole text, white space removed

    @property
    def in_scope(self) -> bool:
        return self.name not in OUT_OF_SCOPE


def first_line(text: str, *, skip_quotes: bool = False) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not (skip_quotes and stripped.startswith(">")):
            return stripped
    return ""


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def matches(case: Case) -> bool:
    if case.whole_text:
        return _squash(case.fresh) == _squash(case.expected)
    return first_line(case.fresh) == first_line(case.expected, skip_quotes=True)


def quoted_original_lines(case: Case) -> set[str]:
    kept = {line.strip() for line in case.expected.splitlines()}
    lines = {line.strip() for line in case.source.splitlines()}
    return {line for line in lines if line and (line not in kept or line.startswith(">"))}


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def load_cases() -> list[Case]:
    cases: list[Case] = []
    trimmer = CORPORA / "email_reply_trimmer"
    for path in sorted((trimmer / "emails").glob("*.txt")):
        text = _read_text(path)
        expected = _read_text(trimmer / "trimmed" / path.name)
        cases.append(Case(f"email_reply_trimmer/{path.stem}", text, fresh_from_body("plain", text), expected))
    talon = CORPORA / "talon"
    for path in sorted((talon / "standard_replies").glob("*.eml")):
        content = body(parse(path.read_bytes()))
        reply_text = path.with_name(path.stem + "_reply_text")
        expected = _read_text(reply_text).strip() if reply_text.exists() else "Hello"
        cases.append(Case(f"talon/standard_replies/{path.stem}", content.text,
                          fresh_from_body(content.kind, content.text), expected))
    for path in sorted((talon / "html_replies").glob("*.html")):
        html = _read_text(path)
        cases.append(Case(f"talon/html_replies/{path.stem}", html_to_text(html), fresh_from_body("html", html),
                          TALON_HTML_EXPECTED, whole_text=True))
    return cases


CASES = load_cases()


def test_the_corpora_are_all_there() -> None:
    """Guard against a silently empty or partial corpus (which would make the ratio meaningless)."""
    counts = {prefix: sum(1 for c in CASES if c.name.startswith(prefix))
              for prefix in ("email_reply_trimmer/", "talon/standard_replies/", "talon/html_replies/")}
    assert counts == {"email_reply_trimmer/": 64, "talon/standard_replies/": 12, "talon/html_replies/": 9}
    assert set(OUT_OF_SCOPE) <= {c.name for c in CASES}, "an out-of-scope name matches no case"


def test_first_line_matches_on_at_least_98_percent_of_cases_in_scope(
        record_property: Callable[[str, object], None]) -> None:
    in_scope = [c for c in CASES if c.in_scope]
    matched = [c for c in in_scope if matches(c)]
    ratio = len(matched) / len(in_scope)
    summary = f"corpus first-line match: {len(matched)}/{len(in_scope)} = {ratio:.1%} in scope " \
              f"({len(CASES) - len(in_scope)} named out of scope)"
    record_property("corpus_ratio", f"{len(matched)}/{len(in_scope)}")
    print(summary)
    misses = [f"{c.name}: got {first_line(c.fresh)!r}, want {first_line(c.expected, skip_quotes=True)!r}"
              for c in in_scope if c not in matched]
    assert ratio >= BAR, summary + "\n" + "\n".join(misses)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_quoted_original_line_is_ever_the_fresh_first_line(case: Case) -> None:
    line = first_line(case.fresh)
    assert line not in quoted_original_lines(case), f"{case.name}: quoted original leaked: {line!r}"


@pytest.mark.parametrize("case", [c for c in CASES if not c.in_scope], ids=lambda c: c.name)
def test_cases_out_of_scope_read_as_no_fresh_text(case: Case) -> None:
    """What the trimmer calls the reply there is an original: transferbot reads nothing, on purpose."""
    assert case.fresh == ""


@pytest.mark.parametrize("case", [c for c in CASES if c.whole_text], ids=lambda c: c.name)
def test_html_replies_reduce_to_the_whole_fresh_text(case: Case) -> None:
    assert _squash(case.fresh) == _squash(case.expected), case.fresh
