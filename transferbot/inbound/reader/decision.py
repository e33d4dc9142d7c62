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
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from transferbot.inbound.reader.phrases import LANGUAGES, Language

DecisionKind = Literal["approve", "decline", "unclear", "status", "none"]


def fold(text: str) -> str:
    """Lower case, accents and invisible characters removed, typographic apostrophes straightened."""
    text = unicodedata.normalize("NFKD", text.translate(_INVISIBLE))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.translate(_APOSTROPHES).casefold()


# Invisible characters that mail clients leave in text (zero-width spaces, BOMs, soft hyphens).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f"))
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "′": "'"})


def _folded(phrases: Iterable[str]) -> tuple[str, ...]:
    """Phrases as they read after fold(), also with an apostrophe written as a space ("j approuve")."""
    out: dict[str, None] = {}
    for phrase in phrases:
        out[fold(phrase)] = None
        out[fold(phrase).replace("'", " ")] = None
    return tuple(out)


def _any(fragments: Iterable[str]) -> str:
    return "|".join(fragments)


_LANG = LANGUAGES
# Phrases as they read after fold(), and the language each belongs to (the first that has it).
_APPROVE = _folded(p for lang in _LANG for p in lang.approve)
_DECLINE = _folded(p for lang in _LANG for p in lang.decline)
_STATUS = _folded(p for lang in _LANG for p in lang.status)
_LANGUAGE_OF: dict[str, Language] = {}
for _lang in _LANG:
    for _phrase in _folded((*_lang.approve, *_lang.decline)):
        _LANGUAGE_OF.setdefault(_phrase, _lang)
_SEPARABLE = {phrase: lang.particle for lang in _LANG for phrase in _folded(lang.separable)}

_APPROVE_ANY = re.compile(rf"\b({_any(s for lang in _LANG for s in lang.approve_stems)})")
_DECLINE_ANY = re.compile(rf"\b({_any(s for lang in _LANG for s in lang.decline_stems)})")
_NEGATION = re.compile(f"({_any(n for lang in _LANG for n in lang.negation)})")
_LOCAL_NEGATION = {lang.code: re.compile(rf"\b({_any(lang.local_negation)})\b") for lang in _LANG if lang.local_negation}
# "No objections" is not a negation of the decision: these phrases are removed before looking for one.
_HARMLESS = re.compile(rf"\b({_any(h for lang in _LANG for h in lang.harmless)})\b")
# -- what may precede the decision ----------------------------------------------------------------
# A greeting line starts with one of these (folded) and is short; it never holds a decision word,
# a negation, a question mark or a digit.
_SALUTATION = re.compile(rf"^({_any(g for lang in _LANG for g in lang.greeting)})\b")
_GREETING_WORDS = 5
_GREETING_END = ",!.:"
# "Yes, approved." / "Oui, approuvé." / "Ja, genehmigt.": only when a decision phrase follows.
_LEAD_IN = re.compile(rf"^({_any(re.escape(w) for w in _folded(w for lang in _LANG for w in (*lang.yes, *lang.lead_in)))})"
                      r"\b[\s,.!:;\-–—]*")

# A yes-word on its own ("Yes.", "Oui", "Ja!"): the whole fresh text. It approves only a mail that asked for
# an approval, which the chain knows (check_decision) and the text does not; "Yes?" and "Yes, but" are not it.
_YES_ALONE = re.compile(rf"^({_any(re.escape(w) for w in _folded(w for lang in _LANG for w in lang.yes))})[.!]*$")

# -- conditions and reservations on an approval ----------------------------------------------------
# Firm conditions, wherever they stand in the approval's paragraph.
_FIRM_CONDITION = _any(f for lang in _LANG for f in lang.firm)
_FIRM = re.compile(rf"\b({_FIRM_CONDITION})\b")
# Words that qualify an approval in the sentence that gives it ("I approve if you need it").
_CONDITION = re.compile(rf"\b({_FIRM_CONDITION}|{_any(c for lang in _LANG for c in lang.condition)})\b")
_LOCAL_CONDITION = {lang.code: re.compile(rf"\b({_any(lang.local_condition)})\b")
                    for lang in _LANG if lang.local_condition}
# Conditions, terms or reservations kept elsewhere (an attachment, "below", "as discussed"), anywhere in
# the fresh text; a link only in the approval's own sentence (signatures carry web addresses).
_ELSEWHERE = re.compile(rf"\b({_any(e for lang in _LANG for e in lang.elsewhere)})")
_LINK = re.compile(r"\bhttps?://\S+|\bwww\.\S+")
_NOT_A_CONDITION = re.compile(r"\bonce (again|more)\b")
_SENTENCE_END = re.compile(r"[.!?]")

# -- the words bound to a decline phrase ---------------------------------------------------------------
# A decline's own clause ends at punctuation or at a word that starts its reason.
_CLAUSE_END = re.compile(rf"[,.;:!–—(]|\s-|\b({_any(w for lang in _LANG for w in lang.reason_starts)})\b")
_CLAUSE_SPLIT = re.compile(r"[,.;:!?–—]|\s-\s")

_LEADING_NOISE = re.compile(r"^[\s\"'«»„“”*_\-–—•·>:.\[\](){}#]+")
_REASON_LEAD = re.compile(r"^[\s:,.;!?\-–—]+")  # between the decision word and the reason on its line
MAX_LINE = 500
MAX_REASON = 2000


@dataclass(frozen=True)
class DecisionWord:
    kind: DecisionKind
    first_line: str = ""
    reason: str = ""
    problem: str = ""  # why unclear: empty | no-word | negation | both | question | condition | elsewhere
    #                    | quoted | yes-alone (an approval of a mail that asked for one: the chain decides)
    #                    | mismatch (the chain's: details of another move)
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
        rest = re.sub(rf"^.*?\b{_SEPARABLE[phrase]}\b", "", rest, count=1, flags=re.IGNORECASE)
    rest = _REASON_LEAD.sub("", rest).rstrip()
    return "\n".join(part for part in (rest, below) if part).strip()[:MAX_REASON]


# Our own "how to answer" lines, in every language: should the quoted original ever leak into the
# fresh text, its "- APPROVE to agree to the transfer;" must not read as an approval.
_INSTRUCTIONS = ("APPROVE to agree to the transfer;",
                 "DECLINE to refuse it (you may give your reason on the following lines);",
                 "STATUS to see who has answered so far.")


@lru_cache(maxsize=1)
def _our_lines() -> frozenset[str]:
    from transferbot.core.languages import MAIL, translations

    lines = set()
    for locale in MAIL:
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


def _past_symbols(folded: str) -> str:
    """The text past leading noise, emoji and symbols ("👍 Approve", "✅ Approved", "➡️ Genehmigt")."""
    index = 0
    while index < len(folded):
        char = folded[index]
        if char.isspace() or char in _NOISE or unicodedata.category(char) in _SYMBOLS or char in "\ufe0f\u200d":
            index += 1
            continue
        break
    return folded[index:]


_NOISE = frozenset("\"'«»„“”*_-–—•·>:.[](){}#")
_SYMBOLS = frozenset(("So", "Sk", "Sm", "Cf", "Cs", "Co", "Mn", "Me"))


def _folded_line(line: str) -> tuple[str, str]:
    first = line.strip()[:MAX_LINE]
    return first, _past_symbols(fold(first))


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


def _approval_problem(line: str, sentence: str, after: str, everything: str, lang: str = "") -> tuple[str, str]:
    """Why an approval is not an unconditional consent ('' when it is one), and the words that say so.

    A negation, a decline word or a question mark anywhere on its line (or in its sentence) count;
    conditions kept elsewhere anywhere in the fresh text (``everything``), or a link in its sentence;
    a word of condition in its own sentence, or opening a sentence of the paragraph that is only a
    condition ("Approved. If you need anything, call me." is an approval); a firm condition anywhere
    in its paragraph."""
    spoken = _HARMLESS.sub(" ", f"{line} {sentence}")
    local_negation, local_condition = _LOCAL_NEGATION.get(lang), _LOCAL_CONDITION.get(lang)
    if found := _NEGATION.search(spoken) or (local_negation and local_negation.search(spoken)):
        return "negation", found.group(0).strip()
    if found := _DECLINE_ANY.search(f"{line} {sentence}"):
        return "both", found.group(0)
    if "?" in line or "?" in sentence:
        return "question", "?"
    if found := _ELSEWHERE.search(" ".join(everything.split())) or _LINK.search(sentence):
        return "elsewhere", found.group(0)
    sentence, after = _NOT_A_CONDITION.sub(" ", sentence), _NOT_A_CONDITION.sub(" ", after)
    qualified = _HARMLESS.sub(" ", sentence)
    if found := (_CONDITION.search(qualified) or (local_condition and local_condition.search(qualified))
                 or _FIRM.search(f"{sentence} {after}")):
        return "condition", found.group(0)
    for part in _SENTENCE_END.split(after):
        if _qualifies(part):
            return "condition", part.strip()
    return "", ""


def _qualifies(sentence: str) -> bool:
    """A sentence after the approval that is only a condition ("If the price stays the same.",
    "Falls der Preis gleich bleibt."): it starts with a word of condition and has no main clause
    after a comma, unlike an offer ("If you need anything, let me know.")."""
    sentence = sentence.strip(" \t\"'«»„“”*_-–—")
    return bool(sentence) and "," not in sentence and _CONDITION.match(sentence) is not None


def _decline_problem(rest: str, phrase: str) -> str:
    """Why a decline is not one: a negation or a question bound to its phrase, or an approval word
    in its line that no negation qualifies. What its reason says otherwise does not matter."""
    particle = re.search(rf"\b{_SEPARABLE[phrase]}\b", rest) if phrase in _SEPARABLE else None
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
        if _YES_ALONE.match(folded.strip()) and _nonempty(lines, index + 1) is None:
            return DecisionWord("unclear", first_line=first, problem="yes-alone", words=first)
        if _starts_with(folded, _STATUS) and len(folded.split()) <= 3:
            return DecisionWord("status", first_line=first)
        return DecisionWord("unclear", first_line=first, problem="no-word")
    if approve:
        sentence, rest = _approval_sentence(spoken, lines, index)
        everything = fold("\n".join(lines[index:]))[:MAX_REASON * 2]
        lang = _LANGUAGE_OF[approve].code if approve in _LANGUAGE_OF else ""
        problem, words = _approval_problem(folded, sentence, f"{rest} {_paragraph(lines, index)}", everything, lang)
        if problem:
            return DecisionWord("unclear", first_line=first, problem=problem, words=words)
        return DecisionWord("approve", first_line=first)
    assert decline is not None
    problem = _decline_problem(spoken[len(decline):], decline)
    if problem:
        return DecisionWord("unclear", first_line=first, problem=problem)
    below = "\n".join(line.rstrip() for line in lines[index + 1:]).strip()
    return DecisionWord("decline", first_line=first, reason=_reason(first, spoken, decline, below))
