"""What an approval says about the move it consents to, and whether that is this transfer's move.

A careful person does not record "Approved, please go ahead with the move to Reseller One" as consent to
moving the order to Reseller Two: the sender has another move in mind. ``stated`` reads, from a fresh
text, the details it states (pure, in the reading): where the order goes or comes from, after a word of
moving ("transfer to …", "passage chez …", "Wechsel zum Händler …", "overstap naar …"), and the lines
people copy from our confirmation ("New reseller: …", "Produkt: …"). ``mismatch`` compares them with the
transfer's fingerprinted details (given as plain names by the chain), tolerant of case, accents, articles,
role nouns and legal suffixes (Inc, Ltd, GmbH, SARL, B.V., …).

A statement is only taken for a name when it looks like one: capitalised (except in German, where every
noun is), led by a role noun ("reseller …", "Händler …"), carrying a legal suffix, or one of the
transfer's own names in the wrong place. "Move it to the next step" names nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from transferbot.inbound.reader.decision import fold

Slot = str  # to | from | product | customer

MAX_TEXT = 3000
_MAX_NAME_WORDS = 6


@dataclass(frozen=True)
class Stated:
    """One detail the text states: which slot, the name as written, and the words that state it."""

    slot: Slot
    named: str
    words: str
    namelike: bool  # led by a role noun, with a legal suffix, or capitalised where that means a name
    label: bool = False  # a "New reseller: …" line: the name may stand anywhere in its value


@dataclass(frozen=True)
class TransferNames:
    """The fingerprinted details of a transfer, as names (``from_reseller``/``to_reseller`` empty: direct)."""

    kind: str
    product: str
    customer: str
    isv: str
    from_reseller: str = ""
    to_reseller: str = ""


@dataclass(frozen=True)
class Mismatch:
    """A stated detail that is not this transfer's: ``expected`` is the transfer's (a name, or the ISV's
    name when that side is a direct purchase, ``direct`` then being true)."""

    slot: Slot
    named: str
    expected: str
    direct: bool
    words: str

    def describe(self) -> str:
        """One line for the operator (the help mail words it in the party's language)."""
        if self.slot == "product":
            return f"the reply names {self.named}, but this transfer is about {self.expected}"
        if self.slot == "customer":
            return f"the reply names {self.named}, but this transfer concerns the order of {self.expected}"
        where = f"buying directly from {self.expected}" if self.direct else self.expected
        if self.slot == "from":
            return f"the reply names {self.named}, but this transfer moves the order away from {where}"
        return f"the reply names {self.named}, but this transfer moves the order to {where}"


# -- how details are stated ------------------------------------------------------------------------------

# Words of moving an order, in every language the reader reads (matched on folded text).
_MOVE = (r"transf\w*|trasfer\w*|traspas\w*|mov(e|es|ed|ing)|switch\w*|chang\w*|migr\w*|transition\w*|going|go"
         r"|passage|passer|bascul\w*|deplac\w*|ubertrag\w*|wechsel\w*|umzug|ubergang|verschieb\w*|umstell\w*"
         r"|cambi\w*|mover|passaggio|spost\w*|overdracht|overstap\w*|overzet\w*|overgang|verhuiz\w*|mudanc\w*")
_MOVE_RE = re.compile(rf"\b({_MOVE})\b")
# Where the order goes / comes from, after a word of moving; German ones are marked (every noun capitalised).
_TO = {"to": "", "into": "", "a": "", "au": "", "aux": "", "vers": "", "chez": "", "al": "", "hacia": "",
       "alla": "", "verso": "", "presso": "", "naar": "", "para": "", "ao": "",
       "zu": "de", "zum": "de", "zur": "de", "an": "de", "nach": "de"}
_FROM = {"from": "", "depuis": "", "desde": "", "da": "", "dal": "", "dalla": "", "vanaf": "", "van": "",
         "de": "", "du": "", "des": "", "del": "", "do": "", "von": "de", "vom": "de"}
_PREP = re.compile(r"(?<![\w'])(" + "|".join(sorted({*_TO, *_FROM}, key=len, reverse=True)) + r")\s+|\bd'")
# Labels people copy from our confirmation (folded), with the slot each names.
_LABELS = {
    "new reseller": "to", "moves to": "to", "apres le transfert": "to", "nach der ubertragung": "to",
    "avant le transfert": "from", "vor der ubertragung": "from", "bisheriger reseller": "from", "nouveau revendeur": "to", "passe a": "to", "neuer handler": "to",
    "neuer reseller": "to", "neuer wiederverkaufer": "to", "wechselt zu": "to", "nuevo revendedor": "to",
    "nuovo rivenditore": "to", "nieuwe reseller": "to", "nieuwe wederverkoper": "to", "novo revendedor": "to",
    "current reseller": "from", "moves from": "from", "revendeur actuel": "from", "quitte": "from",
    "aktueller handler": "from", "bisheriger handler": "from", "aktueller reseller": "from",
    "wechselt von": "from", "revendedor actual": "from", "rivenditore attuale": "from",
    "huidige reseller": "from", "revendedor atual": "from",
    "product": "product", "produit": "product", "produkt": "product", "producto": "product",
    "prodotto": "product", "produto": "product",
    "customer": "customer", "client": "customer", "kunde": "customer", "cliente": "customer", "klant": "customer",
}
_LABEL = re.compile(r"(?:^|[.!?;]\s+)[\s*>\-•·]*(" + "|".join(sorted(_LABELS, key=len, reverse=True)) + r")\s*\*?\s*[:：]\s*(.+)$")
_ROLE_NOUNS = frozenset(
    "reseller resellers revendeur revendeurs distributeur handler handlers wiederverkaufer vertriebspartner partner "
    "distributor revendedor distribuidor rivenditore distributore wederverkoper integrator integrateur".split())
_ARTICLES = frozenset("the a an our your le la les l' un une notre votre der die das den dem des ein einen einem "
                      "unser unseren unserem el los las lo il gli i het de een o os as um uma nosso nossa".split())
_LEGAL = frozenset(
    "inc incorporated ltd limited llc llp plc corp corporation co company gmbh mbh ag kg kgaa ohg ug eg ev se sarl "
    "sas sasu sa eurl sca snc srl spa sl slu sau bv nv cv vof ab oy oyj as asa aps pty pte lda ltda sro kft zrt "
    "bhd sdn".split())
_LEGAL_JOINED = re.compile(r"\b(s\.?\s?a\.?\s?r\.?\s?l|s\.?\s?a\.?\s?s|s\.?\s?p\.?\s?a|s\.?\s?r\.?\s?l|s\.?\s?l\.?\s?u?"
                           r"|s\.?\s?a|b\.?\s?v|n\.?\s?v|a\.?\s?g|e\.?\s?v|co\.?\s?kg)\.?(?=\W|$)")
# Words that end a name that runs on ("to Reseller Two as agreed", "zu Reseller Two ab März").
_STOP = frozenset(
    "as and or on at in by with for from to if once when since because please thanks thank today now asap next "
    "this that starting effective et ou pour avec des le la a au merci des sobald ab und oder fur mit bitte danke "
    "heute jetzt y o con para por gracias e ed per grazie en of met voor dank bedankt obrigado com".split())
# Capitalised words that are no names (months, days, pronouns).
_NOT_NAMES = frozenset(
    "i we you january february march april may june july august september october november december monday "
    "tuesday wednesday thursday friday saturday sunday".split())
_DIRECT = re.compile(r"\b(direct\w*|direkt\w*|rechtstreeks|diretamente|marketplace|the vendor|the isv|isv)\b")
# "to buying directly", "vers un achat en direct", "zum Direktkauf": the direct side, named without a name.
_DIRECT_LEAD = re.compile(r"((the|a|an|un|une|le|la|buying|purchasing|purchase|buy|bought|achat|acheter|en|ein|einen"
                          r"|kauf|compra|acquisto|aankoop|being|sold)\s+){0,3}"
                          r"(direct\w*|direkt\w*|rechtstreeks|diretamente|the marketplace|marketplace)\b")
_WORD = re.compile(r"[^\W_]+(?:[-'&.][^\W_]+)*\.?|&")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _name_run(text: str) -> tuple[str, int]:
    """The name at the start of ``text`` as written, and where it ends: past leading articles and role
    nouns, up to a stop word, punctuation or a lower-case word once the name has begun (legal suffixes
    and joining words kept)."""
    out: list[str] = []
    end, begun = 0, False
    for match in _WORD.finditer(text[:200]):
        word = match.group(0)
        if out and text[end:match.start()].strip():
            break  # punctuation between two words ends the name
        low = fold(word).rstrip(".")
        if not begun and (low in _ARTICLES or low in _ROLE_NOUNS):
            out.append(word)
            end = match.end()
            continue
        if not begun and (low in _STOP or low in _TO or low in _FROM):
            break  # "changement de revendeur vers …": no name after "de"
        legal = low in _LEGAL and not (word.islower() and low in _STOP)  # "AS" is a suffix, "as" is not
        if begun and not legal and (low in _STOP or word[:1].islower() and low not in _JOINING):
            break
        begun = True
        out.append(word)
        end = match.end()
        if len(out) >= _MAX_NAME_WORDS:
            break
    if not begun:
        return "", 0
    last = fold(out[-1])
    if last.endswith(".") and "." not in last[:-1] and last[:-1] not in _DOTTED:
        out[-1], end = out[-1][:-1], end - 1  # the sentence's full stop, not an abbreviation's
    return " ".join(out), end


_DOTTED = frozenset(("ltd", "inc", "corp", "co", "lda", "ltda", "bhd"))  # written with their full stop
_JOINING = frozenset(("&", "de", "von", "van", "der", "du", "des", "la", "le", "and", "und", "et"))


def normalise(name: str) -> tuple[str, ...]:
    """A name's words for comparing: folded, without articles, a leading role noun and legal suffixes."""
    text = _LEGAL_JOINED.sub(" ", fold(name))
    words = [w.strip(".'-&") for w in re.split(r"[^\w'&.-]+|(?<=\w)[-](?=\w)", text)]
    words = [w for w in words if w and w not in ("&",)]
    while words and words[0] in _ARTICLES:
        words.pop(0)
    while words and words[-1] in _LEGAL:
        words.pop()
    words = [w for w in words if w not in _LEGAL or w in words[:1]]
    return tuple(words)


def _without_role(words: tuple[str, ...]) -> tuple[str, ...]:
    return words[1:] if words and words[0] in _ROLE_NOUNS else words


def same_name(named: str, known: str) -> bool:
    """Whether a stated name is a known one: one's words begin the other's, with or without a role noun
    ("Reseller Two next week" ~ "Reseller Two GmbH"; "Kraft" ~ "Kraft-Werke GmbH")."""
    if not known.strip():
        return False
    for a in {normalise(named), _without_role(normalise(named))}:
        for b in {normalise(known), _without_role(normalise(known))}:
            if a and b and (a[:len(b)] == b or b[:len(a)] == a):
                return True
    return False


def _fold_map(line: str) -> tuple[str, list[int]]:
    """The folded line, and for each of its characters the index of the character it came from."""
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(line):
        piece = fold(char)
        folded.append(piece)
        origin.extend([index] * len(piece))
    return "".join(folded), origin


def _stated_after(line: str, start: int, prep: str, origin: int) -> Stated | None:
    """The detail stated after a preposition that ends at ``start`` (of the line as written)."""
    slot = "to" if prep in _TO else "from"
    direct = _DIRECT_LEAD.match(fold(line[start:start + 80]))
    if direct is not None:
        return Stated(slot, line[start:start + direct.end()], line[origin:start + direct.end()].strip(), True)
    named, end = _name_run(line[start:])
    norm = _without_role(normalise(named))
    if not norm:
        return None
    words = [fold(w).rstrip(".") for w in _words(named)]
    first = next((w for w in _words(named) if fold(w).rstrip(".") not in _ARTICLES | _ROLE_NOUNS), "")
    role = any(w in _ROLE_NOUNS for w in words[:3])
    legal = any(w in _LEGAL for w in words[1:]) or bool(_LEGAL_JOINED.search(fold(named)))
    german = prep in _GERMAN
    capital = (first[:1].isupper() or first[:1].isdigit()) and fold(first) not in _NOT_NAMES and not german
    shown = named
    while shown and fold(_words(shown)[0]) in _ARTICLES and len(_words(shown)) > 1:
        shown = shown[len(_words(shown)[0]):].lstrip()  # "le revendeur X" is named as "revendeur X"
    return Stated(slot, shown, line[origin:start + end].strip(), role or legal or capital)


_GERMAN = frozenset(("zu", "zum", "zur", "an", "nach", "von", "vom"))


def _in_line(line: str) -> list[Stated]:
    folded, origin = _fold_map(line)
    label = _LABEL.search(folded)
    if label is not None:
        value = line[origin[label.start(2)]:].strip()[:200]
        return [Stated(_LABELS[label.group(1)], value, line.strip()[:200], True, label=True)]
    out: list[Stated] = []
    for sentence in re.finditer(r"[^.!?;]+[.!?;]?", folded):
        moves = [m.start() + sentence.start() for m in _MOVE_RE.finditer(sentence.group(0))]
        if not moves:
            continue
        for prep in _PREP.finditer(folded, moves[0], sentence.end()):
            before = [m for m in moves if m < prep.start()]
            if not before or prep.end() >= len(origin):
                continue
            found = _stated_after(line, origin[prep.end()], prep.group(1) or "de", origin[before[-1]])
            if found is not None:
                out.append(found)
    return out


def stated(fresh: str) -> tuple[Stated, ...]:
    """The details a fresh text states (in its first MAX_TEXT characters)."""
    out: list[Stated] = []
    for line in fresh[:MAX_TEXT].splitlines():
        if line.strip() and not line.lstrip().startswith(">"):
            out.extend(_in_line(line))
    return tuple(out)


def _contains(text: str, name: str) -> bool:
    """Whether a name's words (with or without a leading role noun) stand together in ``text``."""
    haystack = normalise(text)
    for needle in {normalise(name), _without_role(normalise(name))}:
        if needle and any(haystack[i:i + len(needle)] == needle for i in range(len(haystack))):
            return True
    return False


def _is_direct(named: str, names: TransferNames) -> bool:
    return bool(_DIRECT.search(fold(named))) or same_name(named, names.isv)


def _right(s: Stated, names: TransferNames, side: str) -> bool:
    """Whether a stated name is the transfer's for its slot (``side``: the reseller's name, '' for direct)."""
    if s.label:
        if not side:
            return bool(_DIRECT.search(fold(s.named))) or _contains(s.named, names.isv)
        return _contains(s.named, side)
    return _is_direct(s.named, names) if not side else same_name(s.named, side)


def mismatch(statements: tuple[Stated, ...], names: TransferNames) -> Mismatch | None:
    """The first stated detail that is not this transfer's, or None when all agree (or none is a name)."""
    own = tuple(n for n in (names.product, names.customer, names.isv, names.from_reseller, names.to_reseller) if n)
    for s in statements:
        if s.slot in ("product", "customer"):
            expected = names.product if s.slot == "product" else names.customer
            if expected and not same_name(s.named, expected) and not _contains(s.named, expected):
                return Mismatch(s.slot, s.named, expected, False, s.words)
            continue
        side = names.to_reseller if s.slot == "to" else names.from_reseller
        if _right(s, names, side):
            continue
        if s.label:
            return Mismatch(s.slot, s.named, side or names.isv, not side, s.words)
        if s.slot == "from" and any(same_name(s.named, n) for n in (names.product, names.customer)):
            continue  # French "de", German "von": "the transfer of Analytics Pro", "Übertragung von Acme"
        if s.slot == "from" and not names.to_reseller and _is_direct(s.named, names):
            continue  # "to buying directly from Vendor Inc": where it goes, not where it comes from
        if _is_direct(s.named, names) or s.namelike or any(same_name(s.named, n) for n in own):
            return Mismatch(s.slot, s.named, side or names.isv, not side, s.words)
    return None
