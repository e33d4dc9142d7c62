"""The decision a fresh text states, from its first line only.

The first non-empty line must begin with a decision word, in English,
French or German whatever the party's locale, compared case- and
accent-insensitively. A negation or both kinds of word on that line, or no
decision word at all, make the reply unclear: a consent is never guessed.
A decline may carry a reason: the rest of its first line and the lines below.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

DecisionKind = Literal["approve", "decline", "unclear", "status", "none"]

# Phrases as they read after fold(): lower case, accents removed, apostrophes straightened.
_APPROVE = ("i approve", "approve", "approved", "j'approuve", "j approuve", "approuver", "approuve", "approuvee",
            "ich genehmige", "genehmigen", "genehmigt", "approuvons", "nous approuvons", "wir genehmigen")
_DECLINE = ("i decline", "decline", "declined", "i reject", "reject", "rejected", "je refuse", "refuser", "refuse",
            "refusee", "nous refusons", "ich lehne ab", "ich lehne", "ablehnen", "abgelehnt", "wir lehnen ab",
            "wir lehnen")
_SEPARABLE = ("ich lehne", "wir lehnen")  # "Ich lehne den Transfer ab": the reason starts after "ab"
_STATUS = ("status", "statut", "etat", "stand")

_APPROVE_ANY = re.compile(r"\b(approv\w*|approuv\w*|genehmig\w*)")
_DECLINE_ANY = re.compile(r"\b(declin\w*|reject\w*|refus\w*|ablehn\w*|abgelehnt\w*|lehne\w*)")
_NEGATION = re.compile(
    r"(\bnot\b|n't\b|\bnever\b|\bno\b|\bcannot\b|\bnon\b|\bpas\b|\bne\b|\bn'|\bjamais\b|\bnicht\b|\bkein\w*|\bnein\b|\bniemals\b)"
)
# "No objections" is not a negation of the decision: these phrases are removed before looking for one.
_HARMLESS = re.compile(
    r"\b(no|without|any|keine?n?|ohne|aucune?|pas d'|pas de|sans)\s*"
    r"(objections?|concerns?|issues?|problems?|questions?|einw[a]nde?|bedenken|probleme?|fragen"
    r"|objections?|soucis?|problemes?|questions?|reserves?)\b"
)
_LEADING_NOISE = re.compile(r"^[\s\"'«»„“”*_\-–—•·>:.\[\](){}#]+")
_REASON_LEAD = re.compile(r"^[\s:,.;!?\-–—]+")  # between the decision word and the reason on its line
# Invisible characters that mail clients leave in text (zero-width spaces, BOMs, soft hyphens).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f"))
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "′": "'"})
MAX_LINE = 500
MAX_REASON = 2000


def fold(text: str) -> str:
    """Lower case, accents and invisible characters removed, typographic apostrophes straightened."""
    text = unicodedata.normalize("NFKD", text.translate(_INVISIBLE))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.translate(_APOSTROPHES).casefold()


@dataclass(frozen=True)
class DecisionWord:
    kind: DecisionKind
    first_line: str = ""
    reason: str = ""
    problem: str = ""  # why unclear: empty | no-word | negation | both


def _starts_with(line: str, phrases: tuple[str, ...]) -> str | None:
    for phrase in sorted(phrases, key=len, reverse=True):
        if line.startswith(phrase):
            rest = line[len(phrase):]
            if not rest or not (rest[0].isalnum() or rest[0] == "'"):
                return phrase
    return None


def _after_folded(original: str, folded_length: int) -> str:
    """The part of ``original`` after the characters whose fold() is ``folded_length`` long."""
    consumed = 0
    for index, char in enumerate(original):
        if consumed >= folded_length:
            return original[index:]
        consumed += len(fold(char))
    return ""


def _reason(first: str, folded: str, phrase: str, below: str) -> str:
    lead = len(fold(first)) - len(folded)  # the leading noise, in folded characters
    rest = _after_folded(first, lead + len(phrase))
    if phrase in _SEPARABLE:
        rest = re.sub(r"^.*?\bab\b", "", rest, count=1, flags=re.IGNORECASE)
    rest = _REASON_LEAD.sub("", rest).rstrip()
    return "\n".join(part for part in (rest, below) if part).strip()[:MAX_REASON]


# Our own "how to answer" lines, in every language: should the quoted original ever leak into the
# fresh text, its "- APPROVE to agree to the transfer;" must not read as an approval.
_INSTRUCTIONS = ("APPROVE to agree to the transfer;",
                 "DECLINE to refuse it (you may give your reason on the following lines);",
                 "STATUS to see who has answered so far.")


@lru_cache(maxsize=1)
def _our_lines() -> frozenset[str]:
    from transferbot.i18n import SUPPORTED, translations

    lines = set()
    for locale in SUPPORTED:
        for msgid in _INSTRUCTIONS:
            lines.add(" ".join(_LEADING_NOISE.sub("", fold(translations(locale).gettext(msgid))).split()))
    return frozenset(lines)


def read_decision(fresh: str) -> DecisionWord:
    """Classify a fresh text: approve, decline, status or unclear (with the problem)."""
    lines = fresh.translate(_INVISIBLE).splitlines()
    index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if index is None:
        return DecisionWord("unclear", problem="empty")
    first = lines[index].strip()[:MAX_LINE]
    folded = _LEADING_NOISE.sub("", fold(first))
    if " ".join(folded.split()) in _our_lines():
        return DecisionWord("unclear", first_line=first, problem="quoted")
    approve = _starts_with(folded, _APPROVE)
    decline = _starts_with(folded, _DECLINE)
    if approve is None and decline is None:
        if _starts_with(folded, _STATUS) and len(folded.split()) <= 3:
            return DecisionWord("status", first_line=first)
        return DecisionWord("unclear", first_line=first, problem="no-word")
    if _NEGATION.search(_HARMLESS.sub(" ", folded)):
        return DecisionWord("unclear", first_line=first, problem="negation")
    if (approve and _DECLINE_ANY.search(folded)) or (decline and _APPROVE_ANY.search(folded)):
        return DecisionWord("unclear", first_line=first, problem="both")
    if approve:
        return DecisionWord("approve", first_line=first)
    assert decline is not None
    below = "\n".join(line.rstrip() for line in lines[index + 1:]).strip()
    return DecisionWord("decline", first_line=first, reason=_reason(first, folded, decline, below))
