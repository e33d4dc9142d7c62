"""Unit tests of the reader's own checks: auto-reply, bounce (DSN), Authentication-Results, decision words."""

from __future__ import annotations

import re
from email.message import Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transferbot.core.addresses import AddressBook
from transferbot.inbound.reader.autoreply import auto_reply_reason, machine_text_reason
from transferbot.inbound.reader.bounce import read_bounce
from transferbot.inbound.reader.decision import fold, read_decision
from transferbot.inbound.reader.message import parse
from transferbot.inbound.reader.reading import Reading, read_message

HUMAN = ("From: Alice Martin <alice@acme.example.com>\r\nTo: transfer+tok@transfers.example.com\r\n"
         "Subject: Re: [TR-7K3Q9M] Please approve the transfer of Analytics Pro\r\n"
         "Message-ID: <human-1@acme.example.com>\r\n")


def msg(headers: str, body: str = "Approve\r\n") -> Message:
    return parse((headers.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n" + body).encode("utf-8"))


def with_subject(subject: str, extra: str = "") -> Message:
    return msg(f"From: Alice <alice@acme.example.com>\nSubject: {subject}\n{extra}")


# -- auto-replies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [
    "Auto-Submitted: auto-replied",
    "Auto-Submitted: auto-generated",
    "Auto-Submitted: auto-replied (vacation)",
    "Auto-Submitted: Auto-Notified",
    "X-Autoreply: yes",
    "X-Autorespond: Re: [TR-7K3Q9M] Please approve",
    "Precedence: bulk",
    "Precedence: junk",
    "Precedence: list",
    "Precedence: auto_reply",
    "Precedence: Bulk (vacation)",
    "List-Id: <transfers.lists.acme.example.com>",
])
def test_auto_reply_headers(extra: str) -> None:
    assert auto_reply_reason(msg(HUMAN + extra + "\n")) is not None


@pytest.mark.parametrize("subject", [
    "Automatic reply: [TR-7K3Q9M] Please approve the transfer of Analytics Pro",
    "Out of Office: back on 1 December",
    "Out of the office until Monday",
    "Réponse automatique : [TR-7K3Q9M] Demande d’accord",
    "Reponse automatique : absente",
    "Abwesenheitsnotiz",
    "Abwesenheitsnotiz: Re: [TR-7K3Q9M] Bitte um Zustimmung",
    "Automatische Antwort: [TR-7K3Q9M] Bitte um Zustimmung",
    "AW: Automatische Antwort: [TR-7K3Q9M]",
    "RE : Réponse automatique : [TR-7K3Q9M]",
    "[Auto-Reply] Re: [TR-7K3Q9M]",
    "Auto: Re: [TR-7K3Q9M] Please approve",
    "Absente du bureau jusqu'au 30/11",
    "Vacation reply",
    "=?utf-8?q?R=C3=A9ponse_automatique?= : [TR-7K3Q9M]",
    # Debian's vacation(1), which sets neither Auto-Submitted nor Precedence
    "away from my mail",
    "Away from my e-mail until 1 December",
    # helpdesk acknowledgments (Freshdesk, Zendesk, Jira Service Management, and their French and German kin)
    "Ticket Received - 31877 - [TR-7K3Q9M] Please approve the transfer of Analytics Pro",
    "[Request received] Re: [TR-7K3Q9M] Please approve the transfer of Analytics Pro",
    "Request received: Re: [TR-7K3Q9M] Please approve the transfer",
    "Your request has been received: [TR-7K3Q9M] Please approve the transfer",
    "We've received your request SD-482",
    "Case 00031877 has been created: [TR-7K3Q9M]",
    "[#31877] Ticket created: Re: [TR-7K3Q9M] Please approve",
    "Accusé de réception : [TR-7K3Q9M] Demande d’accord",
    "Ticket reçu - 31877 - RE : [TR-7K3Q9M] Demande d’accord",
    "Votre demande a bien été reçue [#31877]",
    "[Demande reçue] RE : [TR-7K3Q9M] Demande d’accord",
    "Eingangsbestätigung: AW: [TR-7K3Q9M] Bitte um Zustimmung",
    "Ihre Anfrage ist bei uns eingegangen [Ticket#2026112110000123]",
    "[Anfrage erhalten] AW: [TR-7K3Q9M] Bitte um Zustimmung",
])
def test_auto_reply_subjects(subject: str) -> None:
    assert auto_reply_reason(with_subject(subject)) is not None, subject


@pytest.mark.parametrize(("subject", "extra"), [
    ("Re: [TR-7K3Q9M] Please approve the transfer of Analytics Pro", ""),
    ("RE : [TR-7K3Q9M] Demande d’accord : transfert de la commande", ""),
    ("AW: [TR-7K3Q9M] Bitte um Zustimmung: Übertragung", ""),
    ("Re: [TR-7K3Q9M] About the automatic reply rules", ""),
    ("Question about out-of-office coverage", ""),
    ("Re: [TR-7K3Q9M] Please approve", "X-Auto-Response-Suppress: All\n"),
    ("Re: [TR-7K3Q9M] Please approve", "X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply\n"),
    ("Re: [TR-7K3Q9M] Please approve", "Auto-Submitted: no\n"),
    ("Re: [TR-7K3Q9M] Please approve", "Auto-Submitted: No (a person wrote this)\n"),
    ("Re: [TR-7K3Q9M] Please approve", "Precedence: first-class\n"),
    ("Re: [TR-7K3Q9M] Ticket received?", ""),
    ("Re: [TR-7K3Q9M] Please approve (away from the desk this week, approved)", ""),
    ("Ticket 31877 for the transfer", ""),
])
def test_human_replies_are_not_auto_replies(subject: str, extra: str) -> None:
    assert auto_reply_reason(with_subject(subject, extra)) is None


@pytest.mark.parametrize("text", [
    # Debian vacation(1)'s default message
    ('I will not be reading my mail for a while. Your mail concerning "Re: [TR-7K3Q9M] Please approve"\n'
     "will be read when I'm back."),
    "I am currently out of the office with limited access to email. I will be back on 1 December.",
    "I'm on vacation until Monday and will answer when I return.",
    "Je suis absente du bureau jusqu'au 1er décembre. En cas d'urgence, contactez compta@lumiere.example.fr.",
    "Je suis actuellement en congés et serai de retour le 1er décembre.",
    "Ich bin bis zum 1. Dezember nicht im Büro und habe keinen Zugriff auf meine E-Mails.",
    "Vielen Dank für Ihre Nachricht. Ich bin derzeit abwesend und ab dem 1. Dezember wieder erreichbar.",
    # Freshdesk
    ("Dear Alice,\n\nWe would like to acknowledge that we have received your request and a ticket has been created.\n"
     "A support representative will be reviewing your request and will send you a personal response."),
    # Zendesk
    ("##- Please type your reply above this line -##\n\nYour request (31877) has been received and is being reviewed "
     "by our support staff.\n\nTo add additional comments, reply to this email."),
    # Jira Service Management
    "Hi Alice,\n\nWe've received your request and we'll get back to you as soon as possible.\n\nReference: SD-482",
    "This is an automated message, please do not reply to this email.",
    ("Bonjour,\n\nVotre demande n° 31877 a bien été enregistrée. Un conseiller vous répondra sous 48 heures.\n\n"
     "Ceci est un message automatique, merci de ne pas y répondre."),
    ("Guten Tag,\n\nIhre Anfrage ist bei uns eingegangen und wurde unter der Ticketnummer 2026112110000123 erfasst.\n"
     "Dies ist eine automatisch generierte E-Mail, bitte antworten Sie nicht auf diese Nachricht."),
])
def test_machine_text_is_recognised_by_its_wording(text: str) -> None:
    assert machine_text_reason(text) is not None, text


@pytest.mark.parametrize("text", [
    "", "Approve", "Hello?", "Who is Reseller Two? We never asked for this.",
    "Hi, I am back from the office party, what is this about?",
    "Nous avons bien reçu votre demande, mais de quel transfert s'agit-il ?",
    "Can you resend this? I was out of office last week and lost the original.",
    "Wir haben Ihre E-Mail weitergeleitet an unseren Einkauf.",
])
def test_a_persons_text_is_not_machine_text(text: str) -> None:
    assert machine_text_reason(text) is None, text


def test_none_of_our_own_mails_reads_as_machine_text() -> None:
    """Quoted back by a person, our mail must never make their reply a robot's."""
    from tests.unit.outbound.test_i18n import CASES, TRANSLATED
    from tests.unit.outbound.test_i18n import mail as render

    for case in CASES:
        for locale in ("en", *TRANSLATED):
            m = render(case.name, locale)
            assert machine_text_reason(m.text) is None, (case.name, locale, machine_text_reason(m.text))
            assert auto_reply_reason(with_subject(m.subject)) is None, (case.name, locale, m.subject)


def test_a_read_receipt_is_an_auto_reply() -> None:
    mdn = msg(HUMAN + 'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification;\n'
              ' boundary="b"\n', "--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--b--\r\n")
    assert auto_reply_reason(mdn) == "read receipt (disposition notification)"


# -- bounces --------------------------------------------------------------------------------------

def dsn(groups: str, *, sender: str = "MAILER-DAEMON@mx.acme.example.com", returned: str = "",
        extra: str = "") -> Message:
    returned = returned or ("Content-Type: text/rfc822-headers\r\n\r\nFrom: transfer@transfers.example.com\r\n"
                            "Message-ID: <conf-1.tr-7k3q9m@transfers.example.com>\r\n")
    return msg(f"From: {sender}\nTo: bounce+key@transfers.example.com\nSubject: Undelivered Mail\n{extra}"
               'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\n',
               "--B\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n"
               f"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.acme.example.com\r\n\r\n"
               f"{groups}\r\n--B\r\n{returned}\r\n--B--\r\n")


def test_a_5xx_failed_dsn_is_permanent_for_its_recipient_only() -> None:
    groups = ("Final-Recipient: rfc822; Alice@ACME.example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
              "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
              "Final-Recipient: rfc822; bob@acme.example.com\r\nAction: delivered\r\nStatus: 2.0.0\r\n")
    bounce = read_bounce(dsn(groups), "")
    assert bounce is not None and bounce.is_report and bounce.permanent
    assert bounce.permanent_addresses == ["alice@acme.example.com"]
    assert bounce.original_message_ids == ("<conf-1.tr-7k3q9m@transfers.example.com>",)


@pytest.mark.parametrize(("action", "status"), [("delayed", "4.4.1"), ("failed", "4.2.2"), ("Delayed", "4.7.0")])
def test_delayed_and_4xx_dsns_are_not_permanent(action: str, status: str) -> None:
    bounce = read_bounce(dsn(f"Final-Recipient: rfc822; alice@acme.example.com\r\nAction: {action}\r\n"
                             f"Status: {status}\r\n"), "")
    assert bounce is not None and not bounce.permanent and bounce.permanent_addresses == []


def test_the_status_comes_from_the_diagnostic_when_the_field_lacks_it() -> None:
    bounce = read_bounce(dsn("Final-Recipient: rfc822; alice@acme.example.com\r\nAction: failed\r\nStatus: 5.0.0\r\n"
                             "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"), "")
    assert bounce is not None and bounce.permanent
    bare = read_bounce(dsn("Final-Recipient: rfc822; alice@acme.example.com\r\nAction: failed\r\n"
                           "Diagnostic-Code: smtp; 550 mailbox unavailable\r\n"), "")
    assert bare is not None and bare.recipients[0].status == "5.0.0" and bare.permanent


def test_the_original_recipient_counts_when_the_final_one_was_rewritten() -> None:
    bounce = read_bounce(dsn("Original-Recipient: rfc822;alice@acme.example.com\r\n"
                             "Final-Recipient: rfc822;alice.martin@mbx.acme.internal\r\nAction: failed\r\n"
                             "Status: 5.2.1\r\n"), "")
    assert bounce is not None
    assert set(bounce.permanent_addresses) == {"alice@acme.example.com", "alice.martin@mbx.acme.internal"}


def test_the_returned_original_names_the_message() -> None:
    returned = ("Content-Type: message/rfc822\r\n\r\nFrom: transfer@transfers.example.com\r\n"
                "Message-ID: <conf-2.tr-7k3q9m@transfers.example.com>\r\nSubject: x\r\n\r\nbody\r\n")
    bounce = read_bounce(dsn("Final-Recipient: rfc822; a@acme.example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n",
                             returned=returned), "")
    assert bounce is not None and bounce.original_message_ids == ("<conf-2.tr-7k3q9m@transfers.example.com>",)


def test_an_auto_reply_with_the_null_sender_is_not_a_bounce() -> None:
    ooo = msg(HUMAN.replace("Subject: Re:", "Subject: Automatic reply:") + "Auto-Submitted: auto-replied\n",
              "I am out of the office.\r\n")
    assert read_bounce(ooo, "") is None
    assert read_bounce(ooo, "<>") is None


def test_null_sender_and_mailer_daemon_make_a_bounce_even_without_a_report() -> None:
    assert read_bounce(msg(HUMAN), "") is not None
    assert read_bounce(msg(HUMAN), "alice@acme.example.com") is None
    daemon = msg("From: MAILER-DAEMON@mx.acme.example.com\nSubject: Returned mail\n", "It failed.\r\n")
    bounce = read_bounce(daemon, "mailer-daemon@mx.acme.example.com")
    assert bounce is not None and not bounce.permanent, "no structure: not permanent"
    assert read_bounce(msg("From: Postmaster <postmaster@acme.example.com>\nSubject: x\n"), "x@y.example") is not None


def test_a_qmail_bounce_states_its_permanent_failures() -> None:
    body = ("Hi. This is the qmail-send program at mail.r2.example.com.\r\nI'm afraid I wasn't able to deliver your "
            "message to the following addresses.\r\nThis is a permanent error; I've given up. Sorry it didn't work "
            "out.\r\n\r\n<ops@r2.example.com>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
            "<sales@r2.example.com>:\r\nConnected but the mailbox is full. (#4.2.2)\r\n\r\n"
            "--- Below this line is a copy of the message.\r\n\r\nFrom: transfer@transfers.example.com\r\n"
            "Message-ID: <conf-3.tr-7k3q9m@transfers.example.com>\r\n\r\n<nobody@elsewhere.example>:\r\n")
    bounce = read_bounce(msg("From: MAILER-DAEMON@mail.r2.example.com\nSubject: failure notice\n", body), "")
    assert bounce is not None and bounce.permanent
    assert bounce.permanent_addresses == ["ops@r2.example.com"], "4.x.x and the copied message do not count"
    assert bounce.original_message_ids == ("<conf-3.tr-7k3q9m@transfers.example.com>",)


def test_x_failed_recipients_with_a_5xx_status_is_permanent() -> None:
    exim = msg("From: Mail Delivery System <Mailer-Daemon@mx.acme.example.com>\n"
               "X-Failed-Recipients: alice@acme.example.com\nSubject: Mail delivery failed\n",
               "This is a permanent error. The following address(es) failed:\r\n\r\n  alice@acme.example.com\r\n"
               "    550 5.1.1 User unknown\r\n")
    bounce = read_bounce(exim, "")
    assert bounce is not None and bounce.permanent_addresses == ["alice@acme.example.com"]


def test_a_disposition_notification_is_not_a_dsn() -> None:
    mdn = msg(HUMAN + 'MIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification;\n'
              ' boundary="b"\n', "--b\r\nContent-Type: text/plain\r\n\r\nRead.\r\n--b--\r\n")
    assert read_bounce(mdn, "alice@acme.example.com") is None


# -- decision words -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Approve", "APPROVE", "approve.", "Approved!", "I approve.", "I APPROVE", "approuver", "Approuvé", "APPROUVÉ !",
    "approuvée", "J'approuve", "J’approuve", "genehmigen", "Genehmigt.", "GENEHMIGT", "Ich genehmige den Transfer.",
    "\u200bApprove", "\ufeffApprove", "**Approve**", "> Approve", "Approve, no objections",
    "Genehmigt, keine Einwände.", "Approuvé sans réserve", "Approve\nDECLINE is what my colleague wanted",
    "\n\n  Approve  \n",
])
def test_approvals(text: str) -> None:
    word = read_decision(text)
    assert word.kind == "approve", (text, word)


@pytest.mark.parametrize(("text", "reason"), [
    ("Decline", ""),
    ("DECLINED.", ""),
    ("Declined: too expensive this year.", "too expensive this year."),
    ("Reject", ""),
    ("rejected - wrong entitlement", "wrong entitlement"),
    ("refuser", ""),
    ("Refusé : nous gardons notre revendeur.", "nous gardons notre revendeur."),
    ("Je refuse\n\nNous restons en direct.\n\nClaire", "Nous restons en direct.\n\nClaire"),
    ("ablehnen", ""),
    ("Abgelehnt – der Vertrag läuft noch.", "der Vertrag läuft noch."),
    ("Ich lehne ab.\nDer Vertrag läuft noch bis März.", "Der Vertrag läuft noch bis März."),
    ("Ich lehne den Transfer ab, weil der Vertrag noch läuft.", "weil der Vertrag noch läuft."),
    ("Déclined", ""),
    ("DECLINE\nThe customer n'a pas validé.", "The customer n'a pas validé."),
])
def test_declines_and_their_reasons(text: str, reason: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.reason) == ("decline", reason), (text, word)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    (" \n\t\n", "empty"),
    ("Do not approve", "no-word"),
    ("I do not approve.", "no-word"),
    ("Je n'approuve pas", "no-word"),
    ("N'approuve pas", "no-word"),
    ("Nicht genehmigt", "no-word"),
    ("Hi team, approve", "no-word"),
    ("Hi team,\nThanks for this.\nApproved.", "no-word"),
    ("No,\nApproved.", "no-word"),
    ("Well, after a long discussion with the board,\nApproved.", "no-word"),
    ("Yes", "yes-alone"),  # an approval only of a mail that asked for one: the chain decides
    ("Yes.", "yes-alone"),
    ("Oui", "yes-alone"),
    ("Ja!", "yes-alone"),
    ("👍 Yes", "yes-alone"),
    ("Sì", "yes-alone"),
    ("Yes?", "no-word"),
    ("Yes, but only next month", "no-word"),
    ("Yes\n\nWe will call you about the price", "no-word"),
    ("OK", "no-word"),
    ("Approving now", "no-word"),
    ("Approval granted", "no-word"),
    ("Approve? No.", "negation"),
    ("Approve - not yet", "negation"),
    ("Approve, I don't think so", "negation"),
    ("Approuvé ? Non.", "negation"),
    ("Genehmigt? Nein.", "negation"),
    ("Ich genehmige nicht", "negation"),
    ("Genehmigt – aber nicht vor Januar", "negation"),
    ("Decline? No.", "negation"),
    ("Ich lehne den Transfer nicht ab.", "negation"),
    ("Je refuse pas", "negation"),
    ("Approve or decline?", "both"),
    ("Approve the move, reject the price", "both"),
    ("Abgelehnt, bzw. genehmigt falls billiger", "both"),
    ("Refusé, j approuve plus tard", "both"),
])
def test_unclear_replies(text: str, problem: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.problem) == ("unclear", problem), (text, word)


# Consent is unconditional: an approval with a condition or reservation, or put as a question, is unclear.
@pytest.mark.parametrize(("text", "problem"), [
    ("I approve, but only from next month.", "condition"),
    ("J'approuve sous réserve de la validation de notre service juridique.", "condition"),
    ("Approve? Who asked for this move?", "question"),
    ("I approve if you need it", "condition"),
    ("Approved subject to our legal team's review.", "condition"),
    ("Approved, provided that the price stays the same.", "condition"),
    ("Approved once the contract with Reseller One ends.", "condition"),
    ("Approved as long as nothing changes on our invoices", "condition"),
    ("Approved pending legal review", "condition"),
    ("Approved only for the EU subsidiary.", "condition"),
    ("Approved unless the customer objects", "condition"),
    ("I approve the transfer\nprovided that the price stays the same.", "condition"),
    ("I approve the transfer\nif the price stays the same.", "condition"),
    ("Approved.\nBut only from next month.", "condition"),
    ("Approved. But only from next month.", "condition"),
    ("Approved! If the price stays the same.", "condition"),
    ("Approved.\nOnce the current contract ends.", "condition"),
    ("Genehmigt. Falls der Preis gleich bleibt.", "condition"),
    ("Approuvé. Si le prix reste le même.", "condition"),
    ("Genehmigt. Vorbehaltlich der Zustimmung unserer Rechtsabteilung.", "condition"),
    ("Approved.\nSubject to our legal team's review.", "condition"),
    ("Approuvé à condition que le prix reste le même.", "condition"),
    ("Approuvé, si le prix reste le même.", "condition"),
    ("J'approuve, mais seulement à partir de janvier.", "condition"),
    ("Approuvé dès que le contrat actuel se termine.", "condition"),
    ("Approuvé ?", "question"),
    ("Genehmigt, sofern der Preis gleich bleibt.", "condition"),
    ("Genehmigt vorbehaltlich der Zustimmung unserer Rechtsabteilung.", "condition"),
    ("Genehmigt, wenn der Vertrag ausläuft.", "condition"),
    ("Genehmigt, falls nötig.", "condition"),
    ("Ich genehmige den Transfer unter Vorbehalt.", "condition"),
    ("Genehmigt, aber erst ab März.", "condition"),
    ("Genehmigen? Wer hat das beantragt?", "question"),
    ("Yes, approved?", "question"),
    ("Hi team,\nApproved, but only from next month.", "condition"),
    ("Decline?", "question"),
])
def test_conditional_and_questioned_approvals_are_unclear(text: str, problem: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.problem) == ("unclear", problem), (text, word)


@pytest.mark.parametrize(("text", "first_line"), [
    ("Approved, no objections.", "Approved, no objections."),
    ("Approved.\nLet me know if you need anything else.", "Approved."),
    ("Approved. Let me know if you need anything else.", "Approved. Let me know if you need anything else."),
    ("Genehmigt. Wenn Sie Fragen haben, melden Sie sich.", "Genehmigt. Wenn Sie Fragen haben, melden Sie sich."),
    ("Approuvé. Si besoin, je reste disponible.", "Approuvé. Si besoin, je reste disponible."),
    ("Approved once again, thanks.", "Approved once again, thanks."),
    ("Approved.\n\nThis message may be subject to legal privilege.", "Approved."),
    ("Approuvé sans réserve.", "Approuvé sans réserve."),
    ("Approuvé sans condition.", "Approuvé sans condition."),
    ("Yes, approved.", "Yes, approved."),
    ("Yes - I approve", "Yes - I approve"),
    ("Oui, approuvé.", "Oui, approuvé."),
    ("Ja, genehmigt.", "Ja, genehmigt."),
    ("OK, approved", "OK, approved"),
    ("Hi team,\nApproved.", "Approved."),
    ("Hi team,\n\nApproved from our side.\n\nThanks,\nAlice", "Approved from our side."),
    ("Hello,\nApprove", "Approve"),
    ("Dear Marketplace team,\nI approve.", "I approve."),
    ("Good morning!\nApproved", "Approved"),
    ("Bonjour,\nJ'approuve.", "J'approuve."),
    ("Bonjour à tous,\n\nOui, approuvé.", "Oui, approuvé."),
    ("Madame, Monsieur,\nApprouvé.", "Approuvé."),
    ("Hallo zusammen,\ngenehmigt.", "genehmigt."),
    ("Sehr geehrte Damen und Herren,\nGenehmigt.", "Genehmigt."),
    ("Liebe Kolleginnen und Kollegen,\nIch genehmige den Transfer.", "Ich genehmige den Transfer."),
    ("Guten Tag Herr Weber,\n\nJa, genehmigt.", "Ja, genehmigt."),
])
def test_a_greeting_and_an_affirmative_lead_in_are_read_as_a_person_reads_them(text: str, first_line: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.first_line) == ("approve", first_line), (text, word)


# A decline stays a decline whatever its reason says: only the decision phrase itself can negate it.
@pytest.mark.parametrize(("text", "reason"), [
    ("Decline – we do not want to change our reseller.", "we do not want to change our reseller."),
    ("Declined, not interested.", "not interested."),
    ("Declined because we never asked for this.", "because we never asked for this."),
    ("Decline - we cannot approve a change of reseller this year.",
     "we cannot approve a change of reseller this year."),
    ("Abgelehnt – wir möchten den Händler nicht wechseln.", "wir möchten den Händler nicht wechseln."),
    ("Abgelehnt, weil wir das nicht beantragt haben.", "weil wir das nicht beantragt haben."),
    ("Ich lehne ab, da wir keinen Wechsel wünschen.", "da wir keinen Wechsel wünschen."),
    ("Refusé : nous ne voulons pas changer de revendeur.", "nous ne voulons pas changer de revendeur."),
    ("Je refuse, ce n'est pas le bon contrat.", "ce n'est pas le bon contrat."),
    ("Hi team,\nDeclined – no budget.", "no budget."),
    ("Yes, declined.", ""),
])
def test_a_decline_keeps_whatever_its_reason_says(text: str, reason: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.reason) == ("decline", reason), (text, word)


@pytest.mark.parametrize("text", ["STATUS", "status", "Status?", "Statut", "État", "Stand?"])
def test_status(text: str) -> None:
    assert read_decision(text).kind == "status"


def test_only_the_first_line_is_read_and_kept_as_written() -> None:
    word = read_decision("\n  Approuvé !  \nDECLINE\n")
    assert (word.kind, word.first_line) == ("approve", "Approuvé !")


def test_fold_removes_case_accents_and_invisible_characters() -> None:
    assert fold("J’APPROUVE\u200b") == "j'approuve"
    assert fold("Genehmigt, Grüße") == "genehmigt, grusse"


_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u200e\u200f"))
_ONE_LINE = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=200)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300))
def test_any_text_reads_as_one_of_the_kinds(text: str) -> None:
    word = read_decision(text)
    assert word.kind in ("approve", "decline", "unclear", "status")
    assert (word.kind == "unclear") == bool(word.problem)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["Declined", "Refusé", "Ich lehne ab", "Abgelehnt", "Je refuse", "REJECT"]), _ONE_LINE)
def test_a_decline_reason_is_the_rest_of_its_line(word: str, rest: str) -> None:
    decision = read_decision(f"{word} {rest}")
    if decision.kind == "decline":
        assert decision.reason == re.sub(r"^[\s:,.;!?\-–—]+", "", rest.translate(_INVISIBLE)).strip()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_authentication_results_value_parses_and_vouches_only_from_a_trusted_relay(value: str) -> None:
    from ipaddress import ip_network

    from transferbot.inbound.senderauth import trusted_relay

    relays = [ip_network("192.0.2.0/24")]
    outside = trusted_relay([value], client_ip="203.0.113.9", trusted_relays=relays,
                            authserv_id="mx.transfers.example.com", from_domain="acme.example.com")
    assert outside.result == "fail" and not outside.counts
    inside = trusted_relay([value], client_ip="192.0.2.1", trusted_relays=relays,
                           authserv_id="mx.transfers.example.com", from_domain="acme.example.com")
    assert inside.result in ("pass", "fail") and inside.why


@pytest.mark.parametrize("line", [
    "- APPROVE to agree to the transfer;",
    "  - APPROVE (ou APPROUVER) pour donner votre accord au transfert ;",
    "- APPROVE (oder GENEHMIGEN), um der Übertragung zuzustimmen;",
    "- DECLINE to refuse it (you may give your reason on the following lines);",
])
def test_our_own_instruction_lines_are_never_a_decision(line: str) -> None:
    """A second safeguard behind fresh-text extraction: a leaked instruction line is not consent."""
    word = read_decision(line + "\n")
    assert word.kind == "unclear" and word.problem == "quoted"


# -- machine mail through the whole reading ---------------------------------------------------------

def _read(head: str, body: str, rcpt: str = "transfer+abcdefghijklmnopqrstuvwx@transfers.example.com",
          mail_from: str = "alice@acme.example.com") -> Reading:
    raw = (head.replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n" + body.replace("\n", "\r\n")).encode("utf-8")
    return read_message(raw, mail_from, [rcpt], AddressBook(domain="transfers.example.com"))


VACATION = ("From: Alice Martin <alice@acme.example.com>\nTo: transfer+abcdefghijklmnopqrstuvwx@transfers.example.com\n"
            "Subject: away from my mail\nMessage-ID: <vacation-1@acme.example.com>\n")


def test_a_header_less_autoresponder_is_an_auto_reply() -> None:
    body = ('I will not be reading my mail for a while. Your mail concerning "Re: [TR-7K3Q9M]"\n'
            "will be read when I'm back.\n")
    reading = _read(VACATION, body)
    assert reading.auto_reply is not None and "subject" in reading.auto_reply
    reading = _read(VACATION.replace("away from my mail", "Re: [TR-7K3Q9M] Please approve the transfer"), body)
    assert reading.auto_reply is not None and "machine-written text" in reading.auto_reply


def test_a_helpdesk_acknowledgment_under_a_marker_is_an_auto_reply() -> None:
    head = VACATION.replace("away from my mail", "Re: [TR-7K3Q9M] Please approve the transfer")
    reading = _read(head, "##- Please type your reply above this line -##\n\nYour request (31877) has been received "
                    "and is being reviewed by our support staff.\n")
    assert reading.fresh_text == "" and reading.auto_reply is not None


def test_machine_wording_never_overrides_a_stated_decision() -> None:
    head = VACATION.replace("away from my mail", "Re: [TR-7K3Q9M] Please approve the transfer")
    reading = _read(head, "Approved.\n\nI am currently out of the office from tomorrow; Bob has my files.\n")
    assert reading.auto_reply is None and reading.decision.kind == "approve"


# -- machine mail with nothing but its wording, its marker, its mailer or its command -------------------

@pytest.mark.parametrize("marker", [
    "##- Please type your reply above this line -##", "##- Please do not write below this line -##",
    "##- Veuillez répondre au-dessus de cette ligne -##", "##- Veuillez écrire votre réponse au-dessus de cette ligne -##",
    "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein -##",
])
def test_a_helpdesk_marker_opening_the_text_is_machine_mail_with_or_without_headers(marker: str) -> None:
    head = VACATION.replace("away from my mail", "Re: [TR-7K3Q9M] Please approve the transfer")
    reading = _read(head, f"{marker}\n\nThank you, we will get back to you.\n")
    assert reading.auto_reply is not None and "marker" in reading.auto_reply, reading.auto_reply


@pytest.mark.parametrize("mailer", ["Zendesk Mailer", "Freshdesk", "Zammad", "JIRA Service Management", "OTRS Mail Service"])
def test_a_helpdesk_mailer_with_no_decision_is_machine_mail(mailer: str) -> None:
    head = VACATION.replace("away from my mail", "Re: [TR-7K3Q9M] Please approve the transfer")
    reading = _read(head + f"X-Mailer: {mailer}\n", "Danke, wir melden uns.\n")
    assert reading.auto_reply is not None and "helpdesk mailer" in reading.auto_reply


def test_a_persons_decision_sent_through_a_helpdesk_is_still_a_decision() -> None:
    """An agent answering from a helpdesk writes above its marker: the decision counts, the mailer does not."""
    head = VACATION.replace("away from my mail", "Re: [TR-7K3Q9M] Please approve the transfer") + \
        "X-Mailer: Zendesk Mailer\n"
    reading = _read(head, "Approved.\n\n##- Please type your reply above this line -##\n\nAgent reply\n")
    assert reading.auto_reply is None and reading.decision.kind == "approve"


@pytest.mark.parametrize(("subject", "text"), [
    ("Recall: RE: [TR-7K3Q9M] Please approve", "Alice Martin would like to recall the message, \"RE: [TR-7K3Q9M]\"."),
    ("Rappel : RE: [TR-7K3Q9M] Demande d'accord", "Claire Dubois souhaite rappeler le message « RE: [TR-7K3Q9M] »."),
    ("Rückruf: AW: [TR-7K3Q9M] Bitte um Zustimmung", "Jürgen Müller möchte die Nachricht \"AW: [TR-7K3Q9M]\" "
                                                    "zurückrufen."),
    ("Recall: RE: [TR-7K3Q9M] Please approve", "Sorry, ignore my last mail."),  # by its subject alone
])
def test_a_recall_is_a_client_command_never_answered(subject: str, text: str) -> None:
    head = VACATION.replace("away from my mail", subject)
    reading = _read(head, text + "\n")
    assert reading.auto_reply is not None, (subject, text)
