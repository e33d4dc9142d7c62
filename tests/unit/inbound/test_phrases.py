"""The phrase tables (reader.phrases) as the decision reader uses them: every phrase of every language,
as written and in its negated, conditional, questioning and referring forms; and the README's table."""

from __future__ import annotations

import re

import pytest

from tests.paths import ROOT
from transferbot.inbound.reader.decision import read_decision
from transferbot.inbound.reader.phrases import LANGUAGES, markdown_table

README = ROOT / "README.md"
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
    assert _readme_table() == markdown_table(), "regenerate it: python -m transferbot.inbound.reader.phrases"


def test_every_phrase_in_the_readme_table_reads_as_its_kind() -> None:
    for row in _readme_table().splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for kind, cell in zip(("approve", "decline", "status"), cells[1:4], strict=True):
            for phrase in re.findall(r"`([^`]+)`", cell):
                assert read_decision(phrase).kind == kind, (row, phrase)
        for phrase in re.findall(r"`([^`]+)`", cells[-1]):
            assert read_decision(phrase).kind == "unclear", (row, phrase)


# Every phrase of every language, as written and in its negated, conditional and questioning forms.
NEGATED = {"en": "{p} – not yet", "fr": "{p} – pas encore", "de": "{p} – noch nicht", "es": "{p} – todavía no",
           "it": "{p} – non ancora", "nl": "{p} – nog niet", "pt": "{p} – ainda não"}
CONDITIONAL = {"en": "{p}, provided that the price stays the same.", "fr": "{p}, sous réserve de l'accord du juriste.",
               "de": "{p}, sofern der Preis gleich bleibt.", "es": "{p}, siempre que el precio se mantenga.",
               "it": "{p}, purché il prezzo resti lo stesso.", "nl": "{p}, mits de prijs gelijk blijft.",
               "pt": "{p}, desde que o preço se mantenha."}
ELSEWHERE_FORM = {"en": "{p}, see the attached letter.", "fr": "{p}, voir la pièce jointe.", "de": "{p}, siehe Anhang.",
                  "es": "{p}, ver el adjunto.", "it": "{p}, vedi allegato.", "nl": "{p}, zie bijlage.",
                  "pt": "{p}, ver o anexo."}
APPROVALS = [(lang.code, p) for lang in LANGUAGES for p in lang.approve]
DECLINES = [(lang.code, p) for lang in LANGUAGES for p in lang.decline if p not in lang.separable]


@pytest.mark.parametrize(("code", "phrase"), APPROVALS)
def test_every_approval_phrase_approves_and_its_qualified_forms_do_not(code: str, phrase: str) -> None:
    for text in (phrase, f"{phrase}.", phrase.upper(), f"👍 {phrase}", f"✅ {phrase}!", f"Hi team,\n{phrase}"):
        assert read_decision(text).kind == "approve", (code, text)
    for form, problem in ((NEGATED[code], "negation"), (CONDITIONAL[code], "condition"), ("{p}?", "question"),
                          ("{p}? Who asked for this?", "question"), (ELSEWHERE_FORM[code], "elsewhere")):
        text = form.format(p=phrase)
        word = read_decision(text)
        assert (word.kind, word.problem) == ("unclear", problem), (code, text, word)


@pytest.mark.parametrize(("code", "phrase"), DECLINES)
def test_every_decline_phrase_declines_with_its_reason_unless_negated_or_asked(code: str, phrase: str) -> None:
    word = read_decision(f"{phrase}\nWe filed it twice.")
    assert (word.kind, word.reason) == ("decline", "We filed it twice."), (code, phrase, word)
    assert read_decision(f"{phrase}?").problem == "question", (code, phrase)


@pytest.mark.parametrize(("text", "kind"), [
    ("Approvato", "approve"), ("Apruebo la transferencia", "approve"), ("Goedgekeurd, bedankt", "approve"),
    ("Aprovado, obrigado.", "approve"), ("Ik wijs het verzoek af, want het contract loopt nog.", "decline"),
    ("Rechazado: seguimos con el mismo revendedor.", "decline"), ("Agreed", "approve"), ("D'accord", "approve"),
    ("Einverstanden", "approve"), ("OK pour moi", "approve"), ("Bon pour accord", "approve"),
    ("Freigegeben", "approve"), ("👍 Approve", "approve"), ("✅ Approved", "approve"),
    ("Please cancel this request, it was filed by mistake.", "decline"),
])
def test_everyday_consent_and_other_languages(text: str, kind: str) -> None:
    assert read_decision(text).kind == kind, text


@pytest.mark.parametrize(("text", "problem"), [
    ("Approvato, se il prezzo resta lo stesso.", "condition"),  # Italian "se" after an Italian phrase
    ("Goedgekeurd, als de prijs gelijk blijft.", "condition"),
    ("Aprovado, se o preço se mantiver.", "condition"),
    ("Non approvato", "no-word"), ("No apruebo", "no-word"), ("Niet goedgekeurd", "no-word"),
])
def test_local_words_qualify_their_own_languages_phrases(text: str, problem: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.problem) == ("unclear", problem), (text, word)


@pytest.mark.parametrize("text", ["Approuvé, on se tient au courant.", "Genehmigt, als Kunde stimmen wir zu.",
                                  "Approuvé le 3 mai."])
def test_local_words_of_another_language_do_not_qualify(text: str) -> None:
    assert read_decision(text).kind == "approve", text
