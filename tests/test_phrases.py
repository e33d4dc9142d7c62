"""The phrase tables (reader.phrases) as the decision reader uses them: every phrase of every language,
as written and in its negated, conditional, questioning and referring forms; and the README's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transferbot.reader.decision import read_decision
from transferbot.reader.phrases import LANGUAGES, markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"
BY_CODE = {lang.code: lang for lang in LANGUAGES}

# Per language: an approval whose conditions are kept elsewhere, in that language's words.
ELSEWHERE = {
    "en": ["Approved – see our conditions in the attached letter.", "Approved, as discussed with Bob.",
           "I approve, per our email of 3 March.", "Approved. Our terms are set out below.",
           "Approved – details on https://acme.example/transfer", "Approved.\n\nPlease find attached our "
           "requirements."],
    "fr": ["Approuvé, voir nos conditions en pièce jointe.", "J'approuve, comme convenu avec Paul.",
           "Approuvé, selon notre échange du 3 mars.", "Approuvé – conditions ci-jointes."],
    "de": ["Genehmigt, siehe Anhang.", "Genehmigt, wie besprochen.", "Ich genehmige gemäß unserer E-Mail vom 3. März.",
           "Genehmigt – Bedingungen in der Anlage."],
}


@pytest.mark.parametrize(("code", "text"), [(c, t) for c, texts in ELSEWHERE.items() for t in texts])
def test_an_approval_that_refers_to_conditions_elsewhere_is_unclear(code: str, text: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.problem) == ("unclear", "elsewhere"), (code, text, word)
    assert word.words, "the words that made it unclear are kept"


@pytest.mark.parametrize("text", [
    "Approved.\n\nAlice Martin\nAcme Corp | www.acme.example.com",
    "Approved, thanks for the details.",
    "Genehmigt. Danke für die Unterlagen.",
])
def test_a_signatures_web_address_or_a_thank_you_is_no_reference(text: str) -> None:
    assert read_decision(text).kind == "approve"


def _readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("  | language | approve |")
    end = text.index("\n\n", start)
    return "\n".join(line.removeprefix("  ") for line in text[start:end].splitlines()) + "\n"


def test_the_readme_table_is_the_phrase_tables() -> None:
    assert _readme_table() == markdown_table(), "regenerate it: python -m transferbot.reader.phrases"


def test_every_phrase_in_the_readme_table_reads_as_its_kind() -> None:
    for row in _readme_table().splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for kind, cell in zip(("approve", "decline", "status"), cells[1:4], strict=True):
            for phrase in re.findall(r"`([^`]+)`", cell):
                assert read_decision(phrase).kind == kind, (row, phrase)
        for phrase in re.findall(r"`([^`]+)`", cells[-1]):
            assert read_decision(phrase).kind == "unclear", (row, phrase)
