"""Unit tests of the reader's own checks: auto-reply, bounce (DSN), Authentication-Results, decision words."""

from __future__ import annotations

import re
from email.message import Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transferbot.reader.autoreply import auto_reply_reason
from transferbot.reader.bounce import read_bounce
from transferbot.reader.decision import fold, read_decision
from transferbot.reader.message import parse

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
])
def test_human_replies_are_not_auto_replies(subject: str, extra: str) -> None:
    assert auto_reply_reason(with_subject(subject, extra)) is None


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
    ("Hi team,\nApprove", "no-word"),
    ("Yes", "no-word"),
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
    ("Approve or decline?", "both"),
    ("Approve the move, reject the price", "both"),
    ("Abgelehnt, bzw. genehmigt falls billiger", "both"),
    ("Refusé, j approuve plus tard", "both"),
])
def test_unclear_replies(text: str, problem: str) -> None:
    word = read_decision(text)
    assert (word.kind, word.problem) == ("unclear", problem), (text, word)


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

    from transferbot.senderauth import trusted_relay

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
