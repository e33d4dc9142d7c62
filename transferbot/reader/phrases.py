"""The words the reader reads a decision by: one table per language.

Each table holds a language's decision phrases as people write them (matched case- and
accent-insensitively, see ``decision.fold``), and the regular-expression fragments (over folded text)
that qualify them: negations, conditions, references to conditions kept elsewhere, the words that
begin a decline's reason, greetings. ``reader.decision`` builds its patterns from every table at once:
a party may answer in any of these languages, whatever its account's. Mail goes out in the account's
language (English, French or German) only.

Words that are harmless in one language and qualifying in another (Italian "se" is "if", French "se" is
not) are ``local_*``: they count only when the decision phrase is of their language.

README.md's table for the people who answer is generated from these tables (``markdown_table``,
``python -m transferbot.reader.phrases``); a test fails when the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str
    name: str  # as its speakers write it
    approve: tuple[str, ...]  # decision phrases, as written (the first ones are shown in the README)
    decline: tuple[str, ...]
    status: tuple[str, ...]
    yes: tuple[str, ...]  # alone, an approval when the mail answered asks for one; before a phrase, a lead-in
    approve_stems: tuple[str, ...]  # words that approve wherever they stand (regex over folded text)
    decline_stems: tuple[str, ...]
    negation: tuple[str, ...]
    harmless: tuple[str, ...]  # "no objections": not a negation of the decision
    firm: tuple[str, ...]  # conditions wherever they stand in the approval's paragraph
    condition: tuple[str, ...]  # words that qualify an approval in its own sentence
    elsewhere: tuple[str, ...]  # conditions, terms or reservations kept elsewhere
    reason_starts: tuple[str, ...]  # words that end a decline's own clause and begin its reason
    greeting: tuple[str, ...]  # how a salutation line begins
    lead_in: tuple[str, ...] = ()  # more lead-ins before a phrase that are not a yes alone ("OK, approved")
    separable: tuple[str, ...] = ()  # decline phrases whose clause runs to a particle ("ich lehne … ab")
    particle: str = ""
    local_negation: tuple[str, ...] = ()
    local_condition: tuple[str, ...] = ()
    unclear_examples: tuple[str, ...] = ()  # for the README: replies that count as nothing


EN = Language(
    code="en", name="English",
    approve=("APPROVE", "Approved", "I approve", "We approve"),
    decline=("DECLINE", "Declined", "I decline", "Reject", "Rejected", "I reject"),
    status=("STATUS",),
    yes=("Yes",),
    lead_in=("Yeah", "Yep", "OK", "Okay"),
    approve_stems=(r"approv\w*",),
    decline_stems=(r"declin\w*", r"reject\w*", r"refus\w*"),
    negation=(r"\bnot\b", r"n't\b", r"\bnever\b", r"\bno\b", r"\bcannot\b"),
    harmless=(r"(no|without|any)\s*(objections?|concerns?|issues?|problems?|questions?)",),
    firm=(r"provided", r"providing", r"subject to", r"conditional\w*", r"on (the )?condition",
          r"under the condition", r"as long as", r"so long as", r"only if", r"but only", r"unless", r"pending",
          r"assuming"),
    condition=(r"if", r"once", r"when", r"whenever", r"only", r"except", r"excluding", r"in case", r"starting",
               r"as of", r"effective", r"from next"),
    elsewhere=(r"see (our |my |the )?(attach\w*|enclosed|letter|document|below|link|conditions|terms|reservations"
               r"|requirements|comments|remarks|notes|caveats)",
               r"(conditions|terms|reservations|requirements|caveats|remarks) (are |is )?(in|on|at|per|as per|below"
               r"|attached|enclosed|set out|listed|outlined|described|stated)\b",
               r"(attached|enclosed) (letter|document|file|pdf|conditions|terms)", r"please find attached",
               r"as attached", r"as (discussed|agreed|stated|described|outlined|mentioned)\b",
               r"(as )?per (our|my|your|the) (e-?mail|mail|letter|call|conversation|discussion|agreement|contract"
               r"|message|terms|conditions)",
               r"in accordance with", r"according to (our|my|the)", r"in line with (our|my|the)",
               r"further to (our|my|your)"),
    reason_starts=(r"because", r"as", r"since", r"due", r"we", r"i", r"our", r"they"),
    greeting=(r"hi", r"hello", r"hey", r"hiya", r"dear", r"good (morning|afternoon|evening|day)", r"greetings",
              r"team", r"all", r"everyone", r"folks"),
    unclear_examples=("I approve, but only from next month.", "Approve? Who asked?", "I do not approve",
                      "Approved, see our conditions in the attached letter"),
)

FR = Language(
    code="fr", name="Français",
    approve=("APPROUVER", "Approuvé", "J'approuve", "Nous approuvons", "Approuvée", "Approuvons"),
    decline=("REFUSER", "Refusé", "Je refuse", "Nous refusons", "Refusée"),
    status=("STATUT", "État"),
    yes=("Oui",),
    approve_stems=(r"approuv\w*",),
    decline_stems=(r"refus\w*",),
    negation=(r"\bnon\b", r"\bpas\b", r"\bne\b", r"\bn'", r"\bjamais\b"),
    harmless=(r"(aucune?|pas d'|pas de|sans)\s*(objections?|soucis?|problemes?|questions?|reserves?)",),
    firm=(r"sous reserve", r"a (la )?condition", r"sous (la )?condition", r"conditionnel\w*", r"pourvu",
          r"tant que", r"a moins", r"en attente"),
    condition=(r"si", r"s'il", r"s'ils", r"des que", r"une fois que", r"lorsque", r"quand", r"seulement",
               r"uniquement", r"sauf", r"excepte", r"hormis", r"au cas", r"a partir", r"des le"),
    elsewhere=(r"voir (nos |mes |les |la |le |notre )?(conditions|reserves|remarques|exigences|piece jointe|document"
               r"|courrier|lettre|ci-dessous|lien|commentaires)",
               r"(conditions|reserves|modalites|exigences|remarques) (en piece jointe|ci-jointes?|jointes?"
               r"|ci-dessous|suivantes|dans (le|la|notre|mon|ma))",
               r"ci-joint\w*", r"en piece jointe", r"ci-dessous", r"comme (convenu|discute|evoque|indique|precise"
               r"|mentionne)", r"conformement a",
               r"selon (notre|nos|mon|ma|mes|votre|le|la|les) (mail|courriel|e-?mail|echange|conversation|lettre"
               r"|accord|contrat|conditions)",
               r"suite a (notre|nos|votre|mon) (echange|appel|conversation|mail|courriel|e-?mail)"),
    reason_starts=(r"car", r"parce", r"puisque", r"comme", r"nous", r"je", r"notre", r"on"),
    greeting=(r"bonjour", r"bonsoir", r"salut", r"coucou", r"cher", r"chere", r"chers", r"cheres", r"madame",
              r"monsieur", r"mesdames", r"messieurs"),
    unclear_examples=("J'approuve sous réserve de …", "Je n'approuve pas", "Approuvé, comme convenu"),
)

DE = Language(
    code="de", name="Deutsch",
    approve=("GENEHMIGEN", "Genehmigt", "Ich genehmige", "Wir genehmigen"),
    decline=("ABLEHNEN", "Abgelehnt", "Ich lehne ab", "Wir lehnen ab", "Ich lehne", "Wir lehnen"),
    separable=("Ich lehne", "Wir lehnen"), particle="ab",
    status=("STAND",),
    yes=("Ja",),
    lead_in=("Jawohl",),
    approve_stems=(r"genehmig\w*",),
    decline_stems=(r"ablehn\w*", r"abgelehnt\w*", r"lehne\w*"),
    negation=(r"\bnicht\b", r"\bkein\w*", r"\bnein\b", r"\bniemals\b"),
    harmless=(r"(keine?n?|ohne)\s*(einwande?|bedenken|probleme?|fragen)",),
    firm=(r"sofern", r"vorbehaltlich", r"vorausgesetzt", r"unter (der )?(bedingung|voraussetzung)",
          r"unter (dem )?vorbehalt", r"mit vorbehalt", r"solange", r"es sei denn", r"nur wenn", r"nur falls"),
    condition=(r"wenn", r"falls", r"sobald", r"nur", r"lediglich", r"ausser", r"ausgenommen", r"im falle?", r"ab",
               r"erst", r"insofern", r"soweit"),
    elsewhere=(r"siehe (anhang|anlage|unten|beigefugt\w*|link|dokument|schreiben|e-?mail|unsere|meine)",
               r"(bedingungen|vorbehalte|anmerkungen|auflagen|anforderungen) (im anhang|in der anlage|unten|anbei"
               r"|gemass|laut|wie)",
               r"im anhang", r"in der anlage", r"anbei", r"beigefugt\w*",
               r"wie (besprochen|vereinbart|abgesprochen|telefonisch besprochen|erwahnt)",
               r"(gemass|laut|entsprechend) (unserer|unseren|unserem|ihrer|ihrem|meiner|meinem)",
               r"(unten|nachfolgend) (genannten|aufgefuhrten)"),
    reason_starts=(r"weil", r"da", r"denn", r"zumal", r"wir", r"ich", r"unser\w*"),
    greeting=(r"hallo", r"guten (tag|morgen|abend)", r"liebe", r"lieber", r"liebes", r"sehr geehrte[rs]?", r"moin",
              r"servus", r"gruss gott", r"gruezi"),
    unclear_examples=("Genehmigt, sofern …", "Nicht genehmigt", "Genehmigt, siehe Anhang"),
)

LANGUAGES: tuple[Language, ...] = (EN, FR, DE)


def _cell(phrases: tuple[str, ...], limit: int = 0) -> str:
    shown = phrases[:limit] if limit else phrases
    return ", ".join(f"`{p}`" for p in shown)


def markdown_table() -> str:
    """The README's table of what each language's answers may say (one row per language)."""
    rows = ["| language | approve | decline | who has answered? | not counted (help email) |",
            "| --- | --- | --- | --- | --- |"]
    for lang in LANGUAGES:
        approve = tuple(p for p in lang.approve)
        decline = tuple(p for p in lang.decline if p not in lang.separable)
        rows.append(f"| {lang.name} | {_cell(approve)} | {_cell(decline)} | {_cell(lang.status)} | "
                    f"{_cell(lang.unclear_examples)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
