"""The reader's fresh text: what the person wrote, not what they quoted.

One test (or one parametrized family) per rule of the spec, in English,
French and German. Every quoted original below is our own email, which says
APPROVE and DECLINE: each test compares the whole fresh text, so a rule that
goes missing lets original text through and fails its test.
"""

from __future__ import annotations

import base64
import quopri
from email.message import EmailMessage

import pytest

from transferbot.core.addresses import AddressBook
from transferbot.inbound.reader.fresh import fresh_text, split_fresh
from transferbot.inbound.reader.html import html_segments, html_to_text
from transferbot.inbound.reader.message import decode_bytes, unwrap_clearsigned
from transferbot.inbound.reader.reading import Reading, fresh_from_body, read_message

DOMAIN = "transfers.example.com"
BOOK = AddressBook(domain=DOMAIN)
REPLY_TO = f"transfer+abcdefghijklmnopqrstuvwx@{DOMAIN}"

# Our own email, as it is quoted back to us.
ORIGINAL = """\
##- Please type your reply above this line -##

Hello Acme Corp,

Globex has asked to move an order on the marketplace.

  Transfer:   TR-7K3Q9M
  Product:    Analytics Suite Pro
  Answer by:  5 Dec 2026, 17:00 CET

To answer, reply to this email and write one word on the first line:

  - APPROVE to agree to the transfer;
  - DECLINE to refuse it (you may give your reason on the following lines);
  - STATUS to see who has answered so far.

-- 
Marketplace transfers · TR-7K3Q9M
Reference: [ref:abcdefghijklmnopqrstuvwx]"""
# The same without our marker (as in an operator alert, or when a client drops the first line).
BARE_ORIGINAL = ORIGINAL.split("\n", 2)[2]


def quoted(text: str, prefix: str = "> ") -> str:
    return "\n".join((prefix + line).rstrip() for line in text.splitlines())


def read(raw: bytes) -> Reading:
    return read_message(raw, "jane@acme.example", [REPLY_TO], BOOK)


def mail(body: str, *, subtype: str = "plain") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane Doe <jane@acme.example>"
    msg["To"] = REPLY_TO
    msg["Subject"] = "Re: [TR-7K3Q9M] Please approve the transfer"
    msg["Message-ID"] = "<reply-1@acme.example>"
    msg.set_content(body, subtype=subtype)
    return bytes(msg)


def raw_mail(body: bytes, content_type: str, cte: str = "8bit") -> bytes:
    head = (f"From: Jane Doe <jane@acme.example>\r\nTo: {REPLY_TO}\r\nSubject: Re: transfer\r\n"
            f"Message-ID: <reply-2@acme.example>\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n")
    return head.encode("ascii") + body


# -- quotes -------------------------------------------------------------------------------

def test_quoted_lines_are_cut() -> None:
    assert fresh_text(f"DECLINE\nThe price is wrong.\n\n{quoted(ORIGINAL)}\n") == "DECLINE\nThe price is wrong."


def test_quoted_lines_with_no_space_and_nesting_are_cut() -> None:
    text = f"APPROVE\n{quoted(quoted(ORIGINAL), '>')}"
    assert fresh_text(text) == "APPROVE"


def test_invisible_characters_and_no_break_spaces_do_not_hide_the_first_word() -> None:
    assert fresh_text("\ufeff\u200bAPPROVE\xa0now\n\n> DECLINE") == "APPROVE now"


# -- attributions -----------------------------------------------------------------------

ATTRIBUTIONS = {
    "en-gmail": f"On Mon, 3 Mar 2025 at 10:02, Marketplace Transfers <{REPLY_TO}> wrote:",
    "en-apple": "On 3 Mar 2025, at 10:02, Marketplace Transfers <transfer@transfers.example.com> wrote:",
    "en-thunderbird": "On 03/03/2025 10:02, Marketplace Transfers wrote:",
    "en-outlook-mobile": "On Mon, Mar 3, 2025 at 10:02 AM +0100, \"Marketplace\" <transfer@example.com> wrote:",
    "fr-gmail": f"Le lun. 3 mars 2025 à 10:02, Marketplace Transfers <{REPLY_TO}> a écrit :",
    "fr-apple": "Le 3 mars 2025 à 10:02, Marketplace Transfers <transfer@transfers.example.com> a écrit :",
    "fr-thunderbird": "Le 03/03/2025 à 10:02, Marketplace Transfers a écrit :",
    "de-gmail": f"Am Mo., 3. März 2025 um 10:02 Uhr schrieb Marketplace Transfers <{REPLY_TO}>:",
    "de-apple": "Am 03.03.2025 um 10:02 schrieb Marketplace Transfers <transfer@transfers.example.com>:",
    "de-thunderbird": "Am 03.03.25 um 10:02 schrieb Marketplace Transfers:",
    "de-name-first": f"Marketplace Transfers <{REPLY_TO}> schrieb am Mo., 3. März 2025, 10:02:",
    "de-hat-geschrieben": "Marketplace Transfers hat am 03.03.2025 10:02 geschrieben:",
    "date-address": "2025-03-03 10:02 GMT+01:00 Marketplace Transfers <transfer@transfers.example.com>:",
    "en-notes": "Marketplace Transfers <transfer@transfers.example.com> wrote on 03/03/2025 10:02:00:",
    "fr-notes": "Marketplace Transfers <transfer@transfers.example.com> a écrit le 03/03/2025 10:02:00 :",
}


@pytest.mark.parametrize("attribution", ATTRIBUTIONS.values(), ids=ATTRIBUTIONS.keys())
def test_an_attribution_ends_the_fresh_text(attribution: str) -> None:
    # The original is left unprefixed, as Outlook and mobile clients send it: only the attribution cuts it.
    assert fresh_text(f"APPROVE\n{attribution}\n\n{BARE_ORIGINAL}") == "APPROVE"
    assert split_fresh(f"APPROVE\n{attribution}\n\n{BARE_ORIGINAL}").cut == "attribution"


WRAPPED = {
    "en-2-lines": f"On Mon, 3 Mar 2025 at 10:02, Marketplace Transfers <\n{REPLY_TO}> wrote:",
    "en-2-lines-wrote-alone": "On Mon, 3 Mar 2025 at 10:02, Marketplace Transfers <transfer@example.com>\nwrote:",
    "en-2-lines-gmail-bracket": "On Mon, 3 Mar 2025 at 10:02, Marketplace Transfers <transfer@example.com\n> wrote:",
    "en-3-lines": "On Mon, 3 Mar 2025 at 10:02, Marketplace Transfers\n<transfer@transfers.example.com>\nwrote:",
    "fr-2-lines": f"Le lun. 3 mars 2025 à 10:02, Marketplace Transfers <\n{REPLY_TO}> a écrit :",
    "fr-3-lines": "Le 3 mars 2025 10:02, \"Marketplace Transfers\"\n<transfer@transfers.example.com>\na écrit :",
    "de-2-lines": f"Am Mo., 3. März 2025 um 10:02 Uhr schrieb Marketplace Transfers <\n{REPLY_TO}>:",
    "de-2-lines-name-first": f"Marketplace Transfers <{REPLY_TO}> schrieb am Mo., 3.\nMärz 2025 um 10:02 Uhr:",
    "de-3-lines": "Am 03.03.2025 10:02 schrieb \"Marketplace Transfers\"\n<transfer@transfers.example.com\n>:",
    "date-first-2-lines": "2025-03-03 10:02 GMT+01:00 Marketplace Transfers <\ntransfer@transfers.example.com>:",
}


@pytest.mark.parametrize("attribution", WRAPPED.values(), ids=WRAPPED.keys())
def test_an_attribution_wrapped_over_two_or_three_lines_ends_the_fresh_text(attribution: str) -> None:
    assert fresh_text(f"DECLINE\nNot this quarter.\n{attribution}\n\n{BARE_ORIGINAL}") == \
        "DECLINE\nNot this quarter."


@pytest.mark.parametrize("attribution", WRAPPED.values(), ids=WRAPPED.keys())
def test_an_empty_reply_with_a_wrapped_attribution_has_no_fresh_text(attribution: str) -> None:
    assert fresh_text(f"{attribution}\n\n{quoted(ORIGINAL)}") == ""


def test_a_sentence_before_an_attribution_is_not_taken_for_its_first_line() -> None:
    text = "I approve, thanks.\nOn Mon, 3 Mar 2025 at 10:02, Marketplace <t@example.com> wrote:\n> DECLINE"
    assert fresh_text(text) == "I approve, thanks."


def test_a_line_that_only_mentions_writing_is_not_an_attribution() -> None:
    text = "DECLINE\nOn second thought the terms are not what you wrote.\nJane"
    assert fresh_text(text) == text


# -- Outlook header blocks ------------------------------------------------------------------

HEADER_BLOCKS = {
    "en": "From: Marketplace Transfers <transfer@transfers.example.com>\nSent: Monday, March 3, 2025 10:02 AM\n"
          "To: Jane Doe <jane@acme.example>\nSubject: [TR-7K3Q9M] Please approve the transfer",
    "en-bold": "*From:* Marketplace Transfers\n*Sent:* Monday, March 3, 2025 10:02 AM\n*To:* Jane Doe\n"
               "*Subject:* [TR-7K3Q9M] Please approve the transfer",
    "en-mac": "From: Marketplace Transfers <transfer@transfers.example.com>\nDate: Monday, 3 March 2025 at 10:02\n"
              "To: Jane Doe <jane@acme.example>\nSubject: [TR-7K3Q9M] Please approve the transfer",
    "fr": "De : Marketplace Transfers <transfer@transfers.example.com>\nEnvoyé : lundi 3 mars 2025 10:02\n"
          "À : Jane Doe <jane@acme.example>\nObjet : [TR-7K3Q9M] Merci d'approuver le transfert",
    "de": "Von: Marketplace Transfers <transfer@transfers.example.com>\nGesendet: Montag, 3. März 2025 10:02\n"
          "An: Jane Doe <jane@acme.example>\nBetreff: [TR-7K3Q9M] Bitte genehmigen Sie die Übertragung",
    "de-wrapped-from": "Von: Marketplace Transfers\n<transfer@transfers.example.com>\nGesendet: Montag, 3. März 2025\n"
                       "An: Jane Doe\nCc: Tom\nBetreff: [TR-7K3Q9M] Übertragung",
}


@pytest.mark.parametrize("block", HEADER_BLOCKS.values(), ids=HEADER_BLOCKS.keys())
def test_an_outlook_header_block_without_quote_marks_ends_the_fresh_text(block: str) -> None:
    assert fresh_text(f"DECLINE\nWrong reseller.\n\n{block}\n\n{BARE_ORIGINAL}") == "DECLINE\nWrong reseller."
    assert split_fresh(f"DECLINE\n\n{block}\n\n{BARE_ORIGINAL}").cut == "headers"


@pytest.mark.parametrize("block", HEADER_BLOCKS.values(), ids=HEADER_BLOCKS.keys())
def test_an_outlook_header_block_after_a_rule_of_underscores_ends_the_fresh_text(block: str) -> None:
    rule = "_" * 32
    assert fresh_text(f"APPROVE\n\n{rule}\n{block}\n\n{BARE_ORIGINAL}") == "APPROVE"
    assert split_fresh(f"APPROVE\n{rule}\n{block}\n{BARE_ORIGINAL}").cut == "rule"


def test_an_empty_outlook_reply_has_no_fresh_text() -> None:
    assert fresh_text(f"\n\n{'_' * 32}\n{HEADER_BLOCKS['en']}\n\n{BARE_ORIGINAL}") == ""
    assert fresh_text(f"{HEADER_BLOCKS['de']}\n\n{ORIGINAL}") == ""


def test_a_single_header_like_line_is_not_a_header_block() -> None:
    text = "DECLINE\nFrom: our procurement team\nWe need another month."
    assert fresh_text(text) == text


# -- Zimbra, Yahoo France, HCL Notes ------------------------------------------------------------

ZIMBRA_FR = (f'----- Mail original -----\nDe: "Marketplace Transfers" <{REPLY_TO}>\n'
             '\u00c0: "Jane Doe" <jane@acme.example>\nEnvoy\u00e9: Lundi 3 Mars 2025 10:02:41\n'
             "Objet: [TR-7K3Q9M] Merci d'approuver le transfert")
YAHOO_FR = (f"----- Mail original -----\nDe\u00a0: Marketplace Transfers <{REPLY_TO}>\n"
            "\u00c0\u00a0: Jane Doe <jane@acme.example>\nEnvoy\u00e9 le : Lundi 3 mars 2025 10h02\n"
            "Objet\u00a0: [TR-7K3Q9M] Merci d'approuver le transfert")
NOTES = {
    "en": f'-----"Marketplace Transfers" <{REPLY_TO}> wrote: -----\nTo: "Jane Doe" <jane@acme.example>\n'
          f'From: "Marketplace Transfers" <{REPLY_TO}>\nDate: 03/03/2025 10:02AM\n'
          "Subject: [TR-7K3Q9M] Please approve the transfer",
    "de": f'-----"Marketplace Transfers" <{REPLY_TO}> schrieb: -----\nAn: "Jane Doe" <jane@acme.example>\n'
          f'Von: "Marketplace Transfers" <{REPLY_TO}>\nDatum: 03.03.2025 10:02\n'
          "Betreff: [TR-7K3Q9M] Bitte genehmigen Sie die \u00dcbertragung",
    "fr": f'-----"Marketplace Transfers" <{REPLY_TO}> a \u00e9crit : -----\nA : "Jane Doe" <jane@acme.example>\n'
          f'De : "Marketplace Transfers" <{REPLY_TO}>\nDate : 03/03/2025 10:02\n'
          "Objet : [TR-7K3Q9M] Merci d'approuver le transfert",
    "notes-name": "-----Marketplace Transfers/Transfers/Marketplace@Marketplace wrote: -----\n"
                  "To: Jane Doe/Acme@Acme\nFrom: Marketplace Transfers/Transfers/Marketplace@Marketplace\n"
                  "Date: 03/03/2025 10:02AM\nSubject: [TR-7K3Q9M] Please approve the transfer",
}
ROBOT_QUOTES = {"zimbra-fr": ZIMBRA_FR, "yahoo-fr": YAHOO_FR, **{f"notes-{k}": v for k, v in NOTES.items()}}


@pytest.mark.parametrize("quote", ROBOT_QUOTES.values(), ids=ROBOT_QUOTES.keys())
def test_zimbra_yahoo_and_notes_quotes_end_the_fresh_text(quote: str) -> None:
    assert fresh_text(f"DECLINE\nWrong reseller.\n\n{quote}\n\n{BARE_ORIGINAL}") == "DECLINE\nWrong reseller."
    assert fresh_text(f"DECLINE\nWrong reseller.\n{quote}\n{ORIGINAL}") == "DECLINE\nWrong reseller."
    assert fresh_text(f"\n{quote}\n\n{BARE_ORIGINAL}") == ""


@pytest.mark.parametrize("quote", ROBOT_QUOTES.values(), ids=ROBOT_QUOTES.keys())
def test_nothing_quoted_reaches_a_declines_reason(quote: str) -> None:
    reading = read(mail(f"Refusé\nNous gardons notre revendeur.\n\n{quote}\n\n{BARE_ORIGINAL}\n"))
    assert (reading.decision.kind, reading.decision.reason) == ("decline", "Nous gardons notre revendeur.")


def test_a_reason_never_carries_one_of_our_addresses() -> None:
    """A second safeguard behind fresh-text cutting: a line with our reply or bounce address ends the reason."""
    text = (f"Abgelehnt\nWir bleiben beim jetzigen Händler.\n\nMarketplace Transfers <{REPLY_TO}> meinte dazu\n"
            "Bitte genehmigen Sie die Übertragung.")
    reading = read(mail(text))
    assert (reading.decision.kind, reading.decision.reason) == ("decline", "Wir bleiben beim jetzigen Händler.")
    assert "abcdefghijklmnopqrstuvwx" not in reading.decision.reason


# -- original-message rules, forwards, our marker ------------------------------------------

RULES = ["-----Original Message-----", "----- Original Message -----", "*-------- Original Message --------*",
         "-----Ursprüngliche Nachricht-----", "-------- Message d'origine --------", "-----Message d'origine-----",
         "---------- Forwarded message ---------", "---------- Weitergeleitete Nachricht ----------",
         "Begin forwarded message:", "Début du message réexpédié :", "Anfang der weitergeleiteten Nachricht:",
         # Zimbra and Yahoo (France, Germany): the rule above their own header block
         "----- Mail original -----", "----- Ursprüngliche Mail -----", "----- Ursprüngliche Message -----",
         "----- Mail transféré -----", "----- Weitergeleitete Mail -----", "----- Original Mail -----"]


@pytest.mark.parametrize("rule", RULES)
def test_an_original_message_rule_ends_the_fresh_text(rule: str) -> None:
    assert fresh_text(f"APPROVE\n\n{rule}\n{BARE_ORIGINAL}") == "APPROVE"
    assert split_fresh(f"APPROVE\n{rule}\n{BARE_ORIGINAL}").cut == "rule"


def test_a_forward_with_nothing_written_has_no_fresh_text() -> None:
    assert fresh_text(f"---------- Forwarded message ---------\n{HEADER_BLOCKS['en']}\n\n{BARE_ORIGINAL}") == ""


MARKERS = ["##- Please type your reply above this line -##",
           "##- Veuillez écrire votre réponse au-dessus de cette ligne -##",
           "##- Bitte schreiben Sie Ihre Antwort oberhalb dieser Zeile -##"]


@pytest.mark.parametrize("marker", MARKERS)
def test_our_marker_ends_the_fresh_text(marker: str) -> None:
    original = ORIGINAL.replace(MARKERS[0], marker)
    assert fresh_text(f"DECLINE\n{original}") == "DECLINE"
    assert fresh_text(f"APPROVE\n*{marker}*\n{BARE_ORIGINAL}") == "APPROVE"
    assert fresh_text(original) == ""


# -- signatures ------------------------------------------------------------------------------------

SIGNATURES = ["-- \nJane Doe\nAcme Corp", "--\nJane Doe", "Sent from my iPhone", "Envoyé de mon iPhone",
              "Von meinem iPhone gesendet", "Envoyé depuis mon appareil Galaxy", "Get Outlook for iOS",
              "Obtenir Outlook pour iOS<https://aka.ms/o0ukef>",
              "Outlook für Android<https://aka.ms/AAb9ysg> herunterladen"]


@pytest.mark.parametrize("signature", SIGNATURES)
def test_a_signature_ends_the_fresh_text(signature: str) -> None:
    text = f"DECLINE\nBudget frozen.\n\n{signature}\nAPPROVE the next one, please"
    assert fresh_text(text) == "DECLINE\nBudget frozen."
    assert split_fresh(text).cut == "signature"


def test_a_signature_alone_is_no_fresh_text() -> None:
    text = f"Sent from my iPhone\n\nOn 3 Mar 2025, at 10:02, X <t@example.com> wrote:\n\n{quoted(ORIGINAL)}"
    assert fresh_text(text) == ""


# -- bottom-posting ----------------------------------------------------------------------------

@pytest.mark.parametrize("attribution", [ATTRIBUTIONS["en-gmail"], ATTRIBUTIONS["fr-gmail"], ATTRIBUTIONS["de-gmail"]])
def test_an_answer_written_under_the_quote_is_read(attribution: str) -> None:
    text = f"{attribution}\n{quoted(ORIGINAL)}\n\nDECLINE\nWrong product.\n\n-- \nJane"
    assert fresh_text(text) == "DECLINE\nWrong product."


def test_an_answer_under_nested_quotes_and_several_attributions_is_read() -> None:
    text = (f"{ATTRIBUTIONS['en-gmail']}\n> {ATTRIBUTIONS['de-gmail']}\n{quoted(quoted(ORIGINAL))}\n>\n\n"
            "GENEHMIGT")
    assert fresh_text(text) == "GENEHMIGT"


def test_interleaved_answers_give_the_first_one() -> None:
    text = "> Do you approve?\nAPPROVE\n> Any comment?\nNone."
    assert fresh_text(text) == "APPROVE"
    assert fresh_text("Hi,\n> Do you approve?\nAPPROVE") == "Hi,"


def test_nothing_is_read_under_an_attribution_over_an_unprefixed_original() -> None:
    # Outlook mobile: an attribution, then our email with no quote marks: it is all the original.
    assert fresh_text(f"{ATTRIBUTIONS['en-outlook-mobile']}\n\n{BARE_ORIGINAL}") == ""


def test_nothing_is_read_under_an_attribution_that_follows_the_quote() -> None:
    # a quote, then a second attribution over an unprefixed original: that original is not an answer
    text = f"> Earlier words\n\n{ATTRIBUTIONS['fr-thunderbird']}\n\n{BARE_ORIGINAL}"
    assert fresh_text(text) == ""


def test_nothing_is_read_under_our_marker_after_a_quote() -> None:
    assert fresh_text(f"> Earlier words\n{ORIGINAL}") == ""


def test_nothing_is_read_under_a_header_block() -> None:
    assert fresh_text(f"{HEADER_BLOCKS['fr']}\n\n{BARE_ORIGINAL}\n\n> quoted\n\nAPPROVE") == ""


def test_a_quote_only_reply_has_empty_fresh_text_and_no_decision() -> None:
    reading = read(mail(f"{ATTRIBUTIONS['en-gmail']}\n{quoted(ORIGINAL)}\n"))
    assert reading.fresh_text == ""
    assert reading.decision.kind == "unclear" and reading.decision.problem == "empty"


# -- whole messages: the first line decides, quoted words never do -----------------------------

def test_a_fresh_decline_over_a_quoted_approve_is_a_decline() -> None:
    reading = read(mail(f"DECLINE\nWrong reseller.\n\n{ATTRIBUTIONS['en-gmail']}\n{quoted(ORIGINAL)}\n"))
    assert reading.decision.kind == "decline"
    assert reading.decision.reason == "Wrong reseller."
    assert reading.fresh_cut == "attribution"


def test_an_empty_outlook_reply_over_our_unprefixed_email_decides_nothing() -> None:
    # our email's own "- APPROVE to agree…" line must never become the first line
    reading = read(mail(f"\n{'_' * 32}\n{HEADER_BLOCKS['en']}\n\n{BARE_ORIGINAL}\n"))
    assert reading.fresh_text == "" and reading.decision.kind == "unclear"


# -- HTML-only replies ------------------------------------------------------------------------------

def _html_original() -> str:
    return "<br>".join(ORIGINAL.splitlines())


GMAIL_HTML = (
    '<div dir="ltr">APPROVE<div><br></div><div>Thanks,</div><div>Jane</div>'
    '<div class="gmail_signature">Jane Doe | Acme</div></div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">2025年3月3日(月) 10:02 Marketplace:<br></div>'
    '<div>DECLINE to refuse it</div>'
    f'<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid">{_html_original()}'
    '</blockquote></div>'
)


def test_gmail_html_reply_is_read_through_gmail_quote() -> None:
    assert html_segments(GMAIL_HTML) == ["APPROVE\n\nThanks,\nJane", ""]
    assert fresh_from_body("html", GMAIL_HTML) == "APPROVE\n\nThanks,\nJane"


def test_html_blockquote_is_a_quote_container() -> None:
    html = f"<p>DECLINE</p><blockquote>{_html_original()}</blockquote>"
    assert html_segments(html) == ["DECLINE", ""]


# Outlook's labels in a language the text rules do not know: only the structure marks the original.
_JA_HEADERS = ("<b>差出人:</b> Marketplace<br><b>送信日時:</b> 2025年3月3日 10:02<br><b>宛先:</b> Jane<br>"
               "<b>件名:</b> TR")


@pytest.mark.parametrize("answer", ["DECLINE", ""])
def test_outlook_html_reply_stops_at_div_rply_fwd_msg(answer: str) -> None:
    html = (f'<div dir="ltr">{answer}</div><div id="appendonsend"></div><hr style="display:inline-block">'
            f'<div id="divRplyFwdMsg" dir="ltr">{_JA_HEADERS}</div><div>{_html_original()}</div>')
    assert fresh_from_body("html", html) == answer


@pytest.mark.parametrize("answer", ["APPROVE", ""])
def test_outlook_html_reply_stops_at_the_border_top_header_block(answer: str) -> None:
    html = (f'<div class="WordSection1"><p class="MsoNormal">{answer}<o:p></o:p></p>'
            '<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">'
            f'<p class="MsoNormal">{_JA_HEADERS}</p></div><p class="MsoNormal">{_html_original()}</p></div>')
    assert fresh_from_body("html", html) == answer


@pytest.mark.parametrize("answer", ["APPROVE", ""])
def test_outlook_com_reply_stops_at_hr_stop_spelling(answer: str) -> None:
    html = f'<div dir="ltr">{answer}<br><br><div><hr id="stopSpelling">{_JA_HEADERS}<br>{_html_original()}</div></div>'
    assert fresh_from_body("html", html) == answer


def test_thunderbird_html_reply_is_read_through_moz_cite_prefix_and_blockquote() -> None:
    html = ('<body>DECLINE<br>Too early.<br><div class="moz-cite-prefix">Am 03.03.25 um 10:02 schrieb'
            f'<br>Marketplace:</div><blockquote type="cite">{_html_original()}</blockquote>'
            '<div class="moz-signature">-- <br>Jane</div></body>')
    assert html_segments(html)[:2] == ["DECLINE\nToo early.", ""]
    assert fresh_from_body("html", html) == "DECLINE\nToo early."


def test_thunderbird_html_answer_under_the_quote_is_read() -> None:
    html = ('<div class="moz-cite-prefix">Le 03/03/2025 à 10:02, Marketplace a écrit&nbsp;:<br></div>'
            f'<blockquote type="cite">{_html_original()}</blockquote>APPROUVER<br>')
    assert fresh_from_body("html", html) == "APPROUVER"


def test_apple_mail_html_reply_is_read_through_blockquote_type_cite() -> None:
    html = ('<html><body dir="auto">APPROVE<br><br><div dir="ltr">On 3 Mar 2025, at 10:02, Marketplace'
            ' &lt;transfer@transfers.example.com&gt; wrote:<br><br></div>'
            f'<blockquote type="cite"><div dir="ltr">{_html_original()}</div></blockquote></body></html>')
    assert fresh_from_body("html", html) == "APPROVE"
    # an empty Apple Mail reply: the attribution outside the quote is not fresh text
    assert fresh_from_body("html", html.replace("APPROVE<br><br>", "")) == ""


def test_html_text_is_laid_out_as_a_client_shows_it() -> None:
    html = ("<html><head><title>APPROVE</title><style>p {color: red}</style></head>"
            "<body><p>DECLINE&nbsp;&amp; \n  more</p><pre>a\n  b</pre><script>APPROVE</script></body></html>")
    assert html_to_text(html) == "DECLINE & more\na\nb"  # <pre> keeps its line breaks


def test_an_html_only_message_is_read_through_its_structure() -> None:
    reading = read(mail(GMAIL_HTML, subtype="html"))
    assert reading.body_kind == "html"
    assert reading.decision.kind == "approve"
    assert reading.body_tokens == ("abcdefghijklmnopqrstuvwx",)  # the reference line of the quoted original


# -- which part is the author's ---------------------------------------------------------------

def test_the_plain_part_is_read_and_attached_text_is_not() -> None:
    msg = EmailMessage()
    msg["From"] = "Jane Doe <jane@acme.example>"
    msg.set_content("DECLINE\nSee the attached note.")
    msg.add_alternative("<p>DECLINE</p><p>See the attached note.</p>", subtype="html")
    msg.add_attachment("APPROVE", filename="approve.txt")
    msg.add_attachment("APPROVE\n", subtype="plain", disposition="inline", filename="notes.txt")
    reading = read(bytes(msg))
    assert reading.body_kind == "plain" and reading.fresh_text == "DECLINE\nSee the attached note."
    attached_first = EmailMessage()
    attached_first["From"] = "Jane Doe <jane@acme.example>"
    attached_first.make_mixed()
    attached_first.attach(_text_part("APPROVE", filename="approve.txt"))
    attached_first.attach(_text_part("DECLINE"))
    assert read(bytes(attached_first)).fresh_text == "DECLINE"


def _text_part(text: str, filename: str | None = None) -> EmailMessage:
    part = EmailMessage()
    part.set_content(text)
    if filename:
        part.add_header("Content-Disposition", "inline", filename=filename)
    return part


def test_a_whitespace_plain_part_gives_way_to_the_html_one() -> None:
    msg = EmailMessage()
    msg["From"] = "Jane Doe <jane@acme.example>"
    msg.set_content(" \n")
    msg.add_alternative(GMAIL_HTML, subtype="html")
    assert read(bytes(msg)).fresh_text == "APPROVE\n\nThanks,\nJane"


# -- transfer encodings and charsets ----------------------------------------------------------

def test_a_quoted_printable_part_is_decoded() -> None:
    body = "Refusé : le budget est épuisé pour cette année, désolée de ne pas pouvoir mieux faire.\n\n> APPROVE\n"
    raw = raw_mail(quopri.encodestring(body.encode("utf-8")), "text/plain; charset=utf-8", "quoted-printable")
    assert b"=\n" in raw or b"=\r\n" in raw  # a soft line break was needed
    assert read(raw).fresh_text == body.split("\n", 1)[0]


def test_a_base64_part_is_decoded() -> None:
    body = "Genehmigt – danke!\n\n> DECLINE\n".encode()
    raw = raw_mail(base64.encodebytes(body), "text/plain; charset=utf-8", "base64")
    assert read(raw).fresh_text == "Genehmigt – danke!"


@pytest.mark.parametrize(("declared", "data", "expected"), [
    ("iso-8859-1", "Refusé, désolé".encode("latin-1"), "Refusé, désolé"),
    ("windows-1252", "Refusé – l’offre".encode("cp1252"), "Refusé – l’offre"),
    ("iso-8859-1", "Refusé – l’offre".encode("cp1252"), "Refusé – l’offre"),  # latin-1 said, 1252 meant
    ("utf-8", "Refusé, désolé".encode("cp1252"), "Refusé, désolé"),  # wrong declaration: falls back to 1252
    ("us-ascii", "Genehmigt, Grüße".encode(), "Genehmigt, Grüße"),  # wrong declaration: UTF-8
    ("iso-8859-1", "Genehmigt, Grüße".encode(), "Genehmigt, Grüße"),  # UTF-8 bytes are not latin-1 text
    ("x-unknown-charset", "Approuvé".encode(), "Approuvé"),
    ("punycode", "Approuvé".encode(), "Approuvé"),  # a codec that is not a mail charset
])
def test_text_parts_are_decoded_in_their_charset_with_fallbacks(declared: str, data: bytes, expected: str) -> None:
    raw = raw_mail(data + b"\r\n\r\n> APPROVE\r\n", f"text/plain; charset={declared}")
    assert read(raw).fresh_text == expected


def test_a_multibyte_character_cut_by_the_size_cap_does_not_garble_the_text() -> None:
    cut = "Grüße".encode()[:5]  # b"Gr\xc3\xbc\xc3": the "ß" is cut in half
    assert decode_bytes(cut, "utf-8", truncated=True) == "Grü"


def test_encoded_headers_are_decoded_and_a_decoded_name_cannot_forge_the_address() -> None:
    raw = (b"From: =?utf-8?q?victim=40bank=2Eexample_=3Cvictim=40bank=2Eexample=3E=2C?= <jane@acme.example>\r\n"
           b"Subject: =?iso-8859-1?q?R=E9ponse_automatique?=\r\n\r\nAPPROVE\r\n")
    reading = read(raw)
    assert reading.from_address == "jane@acme.example"
    assert reading.subject == "Réponse automatique"
    assert reading.auto_reply is not None


# -- inline PGP clearsigned text (RFC 4880, section 7) ------------------------------------------------

CLEARSIGNED = ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\nCharset: UTF-8\n\n{text}\n"
               "-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCgAdFiEEq7Lr1xWm0eFf2c3pZ0y8hS6v0b0FAmc\n=Xq7f\n"
               "-----END PGP SIGNATURE-----\n")


def test_clearsigned_text_is_read_inside_its_armour_with_dash_escapes_undone() -> None:
    text = CLEARSIGNED.format(text="APPROVE\n\n- -- \nBob Stone\n\n- -----Original Message-----\nFrom: x")
    unwrapped, signed = unwrap_clearsigned(text)
    assert signed and unwrapped == "APPROVE\n\n-- \nBob Stone\n\n-----Original Message-----\nFrom: x"
    assert fresh_text(unwrapped) == "APPROVE"


@pytest.mark.parametrize(("text", "kind", "reason"), [
    ("APPROVE\n\n> quoted", "approve", ""),
    ("Je refuse.\nNous restons en direct.\n\n- -- \nClaire", "decline", "Nous restons en direct."),
    ("Abgelehnt – der Vertrag läuft noch.", "decline", "der Vertrag läuft noch."),
])
def test_a_clearsigned_reply_decides_as_its_signed_text(text: str, kind: str, reason: str) -> None:
    raw = (f"From: alice@acme.example.com\r\nTo: {REPLY_TO}\r\nSubject: Re: x\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\n{CLEARSIGNED.format(text=text)}").encode()
    reading = read_message(raw, "alice@acme.example.com", [REPLY_TO], BOOK)
    assert (reading.decision.kind, reading.decision.reason, reading.signed) == (kind, reason, "pgp-clearsigned")
    assert "PGP" not in reading.fresh_text and "Hash:" not in reading.fresh_text


def test_text_that_only_looks_like_armour_is_left_as_it_is() -> None:
    for text in ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nAPPROVE\n",  # no signature block
                 "APPROVE\n" + "\n" * 60 + CLEARSIGNED.format(text="DECLINE")):  # armour far below the answer
        assert unwrap_clearsigned(text) == (text, False)
    plain = "Approved.\n\n> -----BEGIN PGP SIGNED MESSAGE-----"
    assert unwrap_clearsigned(plain) == (plain, False)
