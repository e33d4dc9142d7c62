"""The decision a fresh text states, read from its first line as a careful person reads it.

The first non-empty line must begin with a decision word, in English,
French or German whatever the party's locale, compared case- and
accent-insensitively. Two things may come before it, as people write them:
one short greeting line ("Hi team,", "Bonjour,", "Hallo zusammen,") and an
affirmative lead-in on the decision's own line ("Yes,", "Oui,", "Ja,").

A consent is never guessed, and it is unconditional. An approval is unclear
when its line holds a negation, a decline word or a question mark, when its
own sentence carries a condition or reservation ("but only …", "if …",
"sous réserve de …", "sofern …"), or when a firm condition ("provided that …",
"subject to …", "vorbehaltlich …") follows anywhere in its paragraph.

A decline stays a decline whatever its reason says: only the decision phrase
and the words bound to it ("Decline? No.", "Ich lehne das nicht ab") can
negate it or turn it into a question. Its reason is the rest of its line
and the lines below; an unnegated approval word in the rest of the line
("Refusé, j'approuve plus tard") still makes it unclear.
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
# -- what may precede the decision ----------------------------------------------------------------
# A greeting line starts with one of these (folded) and is short; it never holds a decision word,
# a negation, a question mark or a digit.
_SALUTATION = re.compile(
    r"^(hi|hello|hey|hiya|dear|good (morning|afternoon|evening|day)|greetings|team|all|everyone|folks|"
    r"bonjour|bonsoir|salut|coucou|cher|chere|chers|cheres|madame|monsieur|mesdames|messieurs|"
    r"hallo|guten (tag|morgen|abend)|liebe|lieber|liebes|sehr geehrte[rs]?|moin|servus|gruss gott|gruezi)\b"
)
_GREETING_WORDS = 5
_GREETING_END = ",!.:"
# "Yes, approved." / "Oui, approuvé." / "Ja, genehmigt.": only when a decision phrase follows.
_LEAD_IN = re.compile(r"^(yes|yeah|yep|ok|okay|oui|ja|jawohl)\b[\s,.!:;\-–—]*")

# -- conditions and reservations on an approval ----------------------------------------------------
# Firm conditions, wherever they stand in the approval's paragraph.
_FIRM_CONDITION = (
    r"provided|providing|subject to|conditional\w*|on (the )?condition|under the condition|as long as|so long as"
    r"|only if|but only|unless|pending|assuming"
    r"|sous reserve|a (la )?condition|sous (la )?condition|conditionnel\w*|pourvu|tant que|a moins|en attente"
    r"|sofern|vorbehaltlich|vorausgesetzt|unter (der )?(bedingung|voraussetzung)|unter (dem )?vorbehalt"
    r"|mit vorbehalt|solange|es sei denn|nur wenn|nur falls"
)
_FIRM = re.compile(rf"\b({_FIRM_CONDITION})\b")
# Words that qualify an approval in the sentence that gives it ("I approve if you need it").
_CONDITION = re.compile(
    rf"\b({_FIRM_CONDITION}"
    r"|if|once|when|whenever|only|except|excluding|in case|starting|as of|effective|from next"
    r"|si|s'il|s'ils|des que|une fois que|lorsque|quand|seulement|uniquement|sauf|excepte|hormis|au cas"
    r"|a partir|des le"
    r"|wenn|falls|sobald|nur|lediglich|ausser|ausgenommen|im falle?|ab|erst|insofern|soweit)\b"
)
_NOT_A_CONDITION = re.compile(r"\bonce (again|more)\b")
_SENTENCE_END = re.compile(r"[.!?]")

# -- the words bound to a decline phrase ---------------------------------------------------------------
# A decline's own clause ends at punctuation or at a word that starts its reason.
_CLAUSE_END = re.compile(
    r"[,.;:!–—(]|\s-|\b(because|as|since|due|we|i|our|they|car|parce|puisque|comme|nous|je|notre|on"
    r"|weil|da|denn|zumal|wir|ich|unser\w*)\b"
)
_CLAUSE_SPLIT = re.compile(r"[,.;:!?–—]|\s-\s")
_PARTICLE = re.compile(r"\bab\b")

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
    problem: str = ""  # why unclear: empty | no-word | negation | both | question | condition | elsewhere
    #                    | quoted | mismatch (the chain's: details of another move)
    words: str = ""  # the words that made it unclear, as written (for `transferbot read`)


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


def _nonempty(lines: list[str], start: int) -> int | None:
    return next((i for i in range(start, len(lines)) if lines[i].strip()), None)


def _is_greeting(folded: str) -> bool:
    """A short salutation line ("Hi team,", "Madame, Monsieur,", "Hallo zusammen,") and nothing more."""
    words = folded.rstrip(_GREETING_END + " ").split()
    if not words or len(words) > _GREETING_WORDS or not _SALUTATION.match(folded):
        return False
    if folded[-1] not in _GREETING_END and not folded[-1].isalpha():
        return False
    if "?" in folded or any(ch.isdigit() for ch in folded) or _NEGATION.search(folded):
        return False
    return not (_APPROVE_ANY.search(folded) or _DECLINE_ANY.search(folded) or _starts_with(folded, _STATUS))


def _folded_line(line: str) -> tuple[str, str]:
    first = line.strip()[:MAX_LINE]
    return first, _LEADING_NOISE.sub("", fold(first))


def _decision_phrase(folded: str) -> tuple[str, str | None, str | None]:
    """The line from its decision phrase on (past a lead-in such as "Yes,"), and the phrase of each kind."""
    approve, decline = _starts_with(folded, _APPROVE), _starts_with(folded, _DECLINE)
    lead = _LEAD_IN.match(folded)
    if approve is None and decline is None and lead is not None:
        rest = folded[lead.end():]
        approve, decline = _starts_with(rest, _APPROVE), _starts_with(rest, _DECLINE)
        if approve is not None or decline is not None:
            return rest, approve, decline
    return folded, approve, decline


def _approval_sentence(folded: str, lines: list[str], index: int) -> tuple[str, str]:
    """The approval's sentence, and what follows it on the line where it ends.

    The sentence ends at the first full stop, exclamation or question mark; without one on the
    decision's line it carries on over the lines that continue it (a wrapped line starting in lower
    case)."""
    end = _SENTENCE_END.search(folded)
    if end:
        return folded[:end.end()], folded[end.end():]
    text = folded
    for line in lines[index + 1:index + 4]:
        stripped = line.strip()
        if not stripped or not stripped[0].islower():
            break
        piece = fold(stripped)[:MAX_LINE]
        end = _SENTENCE_END.search(piece)
        if end:
            return f"{text} {piece[:end.end()]}", piece[end.end():]
        text = f"{text} {piece}"
    return text, ""


def _paragraph(lines: list[str], index: int) -> str:
    """The lines after the decision's line up to the first blank line."""
    out: list[str] = []
    for line in lines[index + 1:index + 20]:
        if not line.strip():
            break
        out.append(fold(line.strip())[:MAX_LINE])
    return " ".join(out)


def _approval_problem(line: str, sentence: str, after: str) -> str:
    """Why an approval is not an unconditional consent, or '' when it is one.

    A negation, a decline word or a question mark anywhere on its line (or in its sentence) count;
    a word of condition in its own sentence, or opening a sentence of the paragraph that is only a
    condition ("Approved. If you need anything, call me." is an approval); a firm condition anywhere
    in its paragraph."""
    spoken = _HARMLESS.sub(" ", f"{line} {sentence}")
    if _NEGATION.search(spoken):
        return "negation"
    if _DECLINE_ANY.search(f"{line} {sentence}"):
        return "both"
    if "?" in line or "?" in sentence:
        return "question"
    sentence, after = _NOT_A_CONDITION.sub(" ", sentence), _NOT_A_CONDITION.sub(" ", after)
    if _CONDITION.search(_HARMLESS.sub(" ", sentence)) or _FIRM.search(f"{sentence} {after}"):
        return "condition"
    if any(_qualifies(part) for part in _SENTENCE_END.split(after)):
        return "condition"
    return ""


def _qualifies(sentence: str) -> bool:
    """A sentence after the approval that is only a condition ("If the price stays the same.",
    "Falls der Preis gleich bleibt."): it starts with a word of condition and has no main clause
    after a comma, unlike an offer ("If you need anything, let me know.")."""
    sentence = sentence.strip(" \t\"'«»„“”*_-–—")
    return bool(sentence) and "," not in sentence and _CONDITION.match(sentence) is not None


def _decline_problem(rest: str, phrase: str) -> str:
    """Why a decline is not one: a negation or a question bound to its phrase, or an approval word
    in its line that no negation qualifies. What its reason says otherwise does not matter."""
    particle = _PARTICLE.search(rest) if phrase in _SEPARABLE else None
    if particle is not None:
        clause = rest[:particle.end()]  # "Ich lehne das nicht ab": the clause runs to its particle
    else:
        end = _CLAUSE_END.search(rest)
        clause = rest[:end.start()] if end else rest
    if _NEGATION.search(_HARMLESS.sub(" ", clause)):
        return "negation"
    if "?" in clause:
        return "question"
    for part in _CLAUSE_SPLIT.split(rest):
        if _APPROVE_ANY.search(part) and not _NEGATION.search(part):
            return "both"
    return ""


def read_decision(fresh: str) -> DecisionWord:
    """Classify a fresh text: approve, decline, status or unclear (with the problem)."""
    lines = fresh.translate(_INVISIBLE).splitlines()
    index = _nonempty(lines, 0)
    if index is None:
        return DecisionWord("unclear", problem="empty")
    first, folded = _folded_line(lines[index])
    if _is_greeting(folded):
        after = _nonempty(lines, index + 1)
        if after is not None:
            index = after
            first, folded = _folded_line(lines[index])
    if " ".join(folded.split()) in _our_lines():
        return DecisionWord("unclear", first_line=first, problem="quoted")
    spoken, approve, decline = _decision_phrase(folded)
    if approve is None and decline is None:
        if _starts_with(folded, _STATUS) and len(folded.split()) <= 3:
            return DecisionWord("status", first_line=first)
        return DecisionWord("unclear", first_line=first, problem="no-word")
    if approve:
        sentence, rest = _approval_sentence(spoken, lines, index)
        problem = _approval_problem(folded, sentence, f"{rest} {_paragraph(lines, index)}")
        if problem:
            return DecisionWord("unclear", first_line=first, problem=problem)
        return DecisionWord("approve", first_line=first)
    assert decline is not None
    problem = _decline_problem(spoken[len(decline):], decline)
    if problem:
        return DecisionWord("unclear", first_line=first, problem=problem)
    below = "\n".join(line.rstrip() for line in lines[index + 1:]).strip()
    return DecisionWord("decline", first_line=first, reason=_reason(first, spoken, decline, below))
