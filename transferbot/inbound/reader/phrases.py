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
``python -m transferbot.inbound.reader.phrases``); a test fails when the two disagree.
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
    approve=("APPROVE", "Approved", "I approve", "We approve", "Agreed", "I agree", "We agree"),
    decline=("DECLINE", "Declined", "I decline", "Reject", "Rejected", "I reject", "Please cancel this request",
             "Please cancel the request", "Please cancel this transfer"),
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
    approve=("APPROUVER", "Approuvé", "J'approuve", "Nous approuvons", "Approuvée", "Approuvons", "D'accord",
             "Je suis d'accord", "Nous sommes d'accord", "OK pour moi", "OK pour nous", "Bon pour accord",
             "Je valide", "Validé"),
    decline=("REFUSER", "Refusé", "Je refuse", "Nous refusons", "Refusée", "Merci d'annuler cette demande",
             "Veuillez annuler cette demande"),
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
    approve=("GENEHMIGEN", "Genehmigt", "Ich genehmige", "Wir genehmigen", "Einverstanden", "Ich bin einverstanden",
             "Wir sind einverstanden", "Freigegeben", "Zugestimmt"),
    decline=("ABLEHNEN", "Abgelehnt", "Ich lehne ab", "Wir lehnen ab", "Ich lehne", "Wir lehnen",
             "Bitte stornieren Sie diese Anfrage"),
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

# Read, never written: mail goes out in English, French or German.
ES = Language(
    code="es", name="Español",
    approve=("APROBAR", "Aprobado", "Apruebo", "Aprobada", "Aprobamos", "De acuerdo", "Estoy de acuerdo",
             "Estamos de acuerdo"),
    decline=("RECHAZAR", "Rechazado", "Rechazo", "Rechazada", "Rechazamos", "Por favor, cancelen esta solicitud"),
    status=("ESTADO",),
    yes=("Sí",),
    approve_stems=(r"aprob\w*", r"aprueb\w*"),
    decline_stems=(r"rechaz\w*",),
    negation=(r"\bno\b", r"\bnunca\b", r"\bjamas\b", r"\bni\b"),
    harmless=(r"(sin|ninguna?|ningun)\s*(objecion|objeciones|problemas?|inconvenientes?|reservas?|preguntas?)",),
    firm=(r"siempre (que|y cuando)", r"a condicion de", r"con la condicion", r"sujeto a", r"supeditado a",
          r"con reservas?", r"pendiente de"),
    condition=(r"cuando", r"solo", r"solamente", r"unicamente", r"salvo", r"excepto", r"a partir de",
               r"una vez que", r"en cuanto", r"en caso de"),
    elsewhere=(r"ver (el |los |la |las |nuestras? )?(adjunto|anexo|condiciones|documento|abajo)",
               r"(condiciones|reservas|requisitos) (adjunt\w*|en el adjunto|abajo|siguientes)", r"adjunt[oa]s?\b",
               r"como (acordamos|hablamos|se acordo|comentamos|lo acordado)",
               r"segun (nuestro|nuestra|mi|su) (correo|conversacion|carta|acuerdo|contrato)"),
    reason_starts=(r"porque", r"ya que", r"pues", r"nosotros", r"nuestr\w*", r"yo"),
    greeting=(r"hola", r"buen(os|as) (dias|tardes|noches)", r"estimad[oa]s?", r"querid[oa]s?"),
    unclear_examples=("Aprobado, siempre que …", "No apruebo", "Aprobado, como acordamos"),
)

IT = Language(
    code="it", name="Italiano",
    approve=("APPROVARE", "Approvato", "Approvo", "Approvata", "Approviamo", "D'accordo", "Sono d'accordo",
             "Siamo d'accordo"),
    decline=("RIFIUTARE", "Rifiutato", "Rifiuto", "Rifiutata", "Rifiutiamo", "Respinto", "Respingo"),
    status=("STATO",),
    yes=("Sì",),
    approve_stems=(r"approv\w*",),
    decline_stems=(r"rifiut\w*", r"respin\w*"),
    negation=(r"\bnon\b",),
    local_negation=(r"mai",),  # French "mai" is May
    harmless=(r"(nessun[ao]?|senza)\s*(obiezion[ei]|problem[ai]|riserv[ae]|domand[ae])",),
    firm=(r"a condizione", r"purche", r"subordinat\w*", r"con riserva", r"previa", r"in attesa di"),
    condition=(r"quando", r"soltanto", r"solo", r"salvo", r"tranne", r"eccetto", r"a partire", r"una volta che",
               r"nel caso", r"appena"),
    local_condition=(r"se",),  # French "se" is a pronoun
    elsewhere=(r"vedi (l'|il |la |le |i |gli |nostr\w* )?(allegat\w*|condizioni|documento|sotto)",
               r"(condizioni|riserve|requisiti) (in allegato|allegat\w*|sotto|seguenti)", r"in allegato",
               r"come (concordato|discusso|d'accordo)",
               r"secondo (la nostra|il nostro|la mia|il mio) (e-?mail|mail|conversazione|lettera|accordo)"),
    reason_starts=(r"perche", r"poiche", r"dato che", r"noi", r"nostr\w*", r"io"),
    greeting=(r"ciao", r"buongiorno", r"buonasera", r"gentil\w*", r"egregi\w*", r"car[oaie]"),
    unclear_examples=("Approvato, purché …", "Non approvo", "Approvato, vedi allegato"),
)

NL = Language(
    code="nl", name="Nederlands",
    approve=("GOEDKEUREN", "Goedgekeurd", "Akkoord", "Ik ga akkoord", "Wij gaan akkoord", "We gaan akkoord"),
    decline=("AFWIJZEN", "Afgewezen", "Geweigerd", "Ik weiger", "Ik wijs af", "Wij wijzen af", "Ik wijs",
             "Wij wijzen"),
    separable=("Ik wijs", "Wij wijzen"), particle="af",
    status=("STATUS",),
    yes=("Ja",),
    approve_stems=(r"goedgekeur\w*", r"goedkeur\w*", r"akkoord"),
    decline_stems=(r"afgewezen", r"afwijz\w*", r"geweigerd", r"weiger\w*"),
    negation=(r"\bniet\b", r"\bgeen\b", r"\bnooit\b", r"\bnee\b"),
    harmless=(r"(geen|zonder)\s*(bezwaa?r(en)?|problemen|vragen|voorbehoud)",),
    firm=(r"mits", r"op voorwaarde", r"onder voorbehoud", r"onder voorwaarde", r"tenzij", r"in afwachting van"),
    condition=(r"indien", r"zodra", r"alleen", r"slechts", r"behalve", r"vanaf", r"wanneer", r"uitgezonderd"),
    local_condition=(r"als", r"pas"),  # German "als" is "as"
    elsewhere=(r"zie (de |het |onze |bijgaande )?(bijlage|voorwaarden|document|hieronder|link)",
               r"(voorwaarden|bezwaren|eisen) (in de bijlage|bijgevoegd|hieronder)", r"in de bijlage",
               r"bijgevoegd\w*", r"zoals (besproken|afgesproken|overeengekomen)",
               r"volgens (onze|ons|mijn) (e-?mail|mail|gesprek|brief|afspraak)"),
    reason_starts=(r"omdat", r"want", r"aangezien", r"wij", r"we", r"ons", r"onze", r"ik"),
    greeting=(r"hallo", r"beste", r"geachte", r"goedemorgen", r"goedemiddag", r"dag"),
    unclear_examples=("Goedgekeurd, mits …", "Niet goedgekeurd", "Akkoord, zie bijlage"),
)

PT = Language(
    code="pt", name="Português",
    approve=("APROVAR", "Aprovado", "Aprovo", "Aprovada", "Aprovamos", "De acordo", "Estou de acordo", "Concordo"),
    decline=("RECUSAR", "Recusado", "Recuso", "Recusada", "Recusamos", "Rejeitado", "Rejeito"),
    status=("ESTADO",),
    yes=("Sim",),
    approve_stems=(r"aprov\w*",),
    decline_stems=(r"recus\w*", r"rejeit\w*"),
    negation=(r"\bnao\b", r"\bnunca\b", r"\bjamais\b", r"\bnem\b"),
    harmless=(r"(sem|nenhuma?)\s*(objecao|objecoes|problemas?|ressalvas?|duvidas?)",),
    firm=(r"desde que", r"contanto que", r"com a condicao", r"sob (a )?condicao", r"sujeito a", r"com ressalvas?",
          r"mediante"),
    condition=(r"quando", r"somente", r"apenas", r"exceto", r"a partir de", r"assim que", r"uma vez que", r"caso"),
    local_condition=(r"se", r"so"),  # French "se", English "so"
    elsewhere=(r"ver (o |a |os |as |nossas? )?(anexo|condicoes|documento|abaixo)",
               r"(condicoes|ressalvas|requisitos) (em anexo|anexas?|abaixo|seguintes)", r"em anexo",
               r"conforme (combinado|conversado|acordado|discutido)", r"como (combinado|conversamos|discutido)",
               r"de acordo com (o nosso|a nossa|o meu|a minha) (e-?mail|conversa|carta|acordo)"),
    reason_starts=(r"porque", r"pois", r"ja que", r"nos", r"nosso\w*", r"eu"),
    greeting=(r"ola", r"bom dia", r"boa tarde", r"boa noite", r"prezad[oa]s?", r"car[oa]s"),
    unclear_examples=("Aprovado, desde que …", "Não aprovo", "Aprovado, conforme combinado"),
)

LANGUAGES: tuple[Language, ...] = (EN, FR, DE, ES, IT, NL, PT)


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
