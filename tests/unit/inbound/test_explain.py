"""Why a reply did or did not count, in plain words (transferbot.inbound.explain): pure, from what the reader stored."""

from __future__ import annotations

from typing import Any

from transferbot.inbound.explain import explain_inbound


def row(outcome: str, checks: list[str], reason: str = "", **extra: Any) -> dict[str, Any]:
    return {"outcome": outcome, "checks": checks, "reason": reason, "from": extra.pop("from_", "alice@acme.example"),
            "mail_from": extra.pop("mail_from", "alice@acme.example"), "party": extra.pop("party", "customer"),
            "authentication": extra.pop("authentication", None), **extra}


CHAIN_TO_SENDER = ["duplicate=no", "bounce=no", "loop=no", "token=envelope", "auto-reply=no", "party=customer",
                   "closed=no"]


def test_an_approval_counts_and_says_from_whom() -> None:
    why = explain_inbound(row("approved", [*CHAIN_TO_SENDER, "sender=registered", "authentication=auth=pass",
                                           "decision=approve", "already-decided=no", "record=approve"],
                              authentication={"result": "pass", "why": "DMARC passes for acme.example: DKIM "
                                              "signature by acme.example aligns"}), "Acme GmbH")
    assert why.counted and why.tone == "ok"
    assert why.headline == "Counted: the approval of Acme GmbH (the customer) was recorded."
    assert "From alice@acme.example, a registered address of Acme GmbH." in why.details
    assert "Sender authenticated: DMARC passes for acme.example: DKIM signature by acme.example aligns." in why.details


def test_a_reply_from_an_unregistered_address_names_the_address_and_the_account() -> None:
    why = explain_inbound(row("not-a-party", [*CHAIN_TO_SENDER, "sender=not registered (mallory@evil.example)"],
                              "From mallory@evil.example is not an address registered for the customer",
                              from_="mallory@evil.example", mail_from="mallory@evil.example"), "Acme GmbH")
    assert not why.counted and why.tone == "ignored"
    assert why.headline == "Not counted: from mallory@evil.example, which is not an address of Acme GmbH."


def test_a_forged_sender_says_what_authentication_found_and_what_to_fix() -> None:
    auth = {"result": "fail", "why": "DMARC fails for acme.example (p=reject, record at acme.example): DKIM signature "
                                     "by evil.example does not align with acme.example and SPF fail for 127.0.0.1 at "
                                     "acme.example",
            "advice": "Your mail is DKIM-signed for evil.example, not for acme.example: sign it with a DKIM key."}
    why = explain_inbound(row("not-a-party", [*CHAIN_TO_SENDER, "sender=registered",
                                              "authentication=fail: auth=fail spf=fail dkim=pass(evil.example,"
                                              "unaligned) dmarc=fail(p=reject)"],
                              "sender not authenticated: " + auth["why"], authentication=auth), "Acme GmbH")
    assert not why.counted
    assert why.headline.startswith("Not counted: the sender could not be authenticated: DMARC fails for acme.example")
    assert "DKIM signature by evil.example does not align with acme.example" in why.headline
    assert any(d.startswith("What the sender's mail administrator can do: Your mail is DKIM-signed") for d in why.details)
    assert "Checks: auth=fail spf=fail dkim=pass(evil.example,unaligned) dmarc=fail(p=reject)." in why.details


def test_unclear_replies_say_why_in_words() -> None:
    why = explain_inbound(row("unclear", [*CHAIN_TO_SENDER, "sender=registered", "authentication=auth=pass",
                                          "decision=unclear (condition)"], "unclear reply: condition"), "Acme GmbH")
    assert why.headline == ("Not counted: unclear, because the approval is qualified by a condition or a reservation; "
                            "consent counts only unconditionally.")
    unknown = explain_inbound(row("unclear", ["decision=unclear (brand-new)"], "unclear reply: brand-new"))
    assert unknown.headline == "Not counted: unclear, because brand-new."


def test_every_other_outcome_has_its_sentence() -> None:
    cases = [
        (row("auto-reply", ["auto-reply=Auto-Submitted: auto-replied"]),
         "Not counted: an automatic reply (Auto-Submitted: auto-replied); never a decision, never answered."),
        (row("duplicate", ["duplicate=copy of #3"], "same message as inbound #3"),
         "Not counted again: same message as inbound #3."),
        (row("already-decided", ["already-decided=approved"]),
         "Not counted: Acme GmbH (the customer) had already approved; a decision counts once."),
        (row("closed", ["closed=completed"], "transfer TR-1 is completed"),
         "Not counted: the transfer was already completed when it arrived."),
        (row("no-transfer", ["token=none", "party=none"], party=None),
         "Not filed under any transfer: it carries no reply address, thread or reference line of ours."),
        (row("loop", ["loop=from our own address x"]),
         "Dropped: it comes from our own address, so that no mail loop can form."),
        (row("failed", [], "KeyError: 7"), "Could not be read: KeyError: 7."),
        (row("status", ["decision=status"]),
         "Not a decision: Acme GmbH (the customer) asked who has answered; the status was mailed back."),
        (row("pending", []), "Not read yet."),
        (row("pending", [], "waiting to authenticate the sender again: DNS did not answer"),
         "Not read yet: waiting to authenticate the sender again: DNS did not answer."),
        (row("not-a-party", ["party=token revoked"]),
         "Not counted: it answers a reply address that stopped counting when the contact of Acme GmbH (the "
         "customer) was replaced."),
        (row("not-a-party", ["sender=From holds 2 addresses"]),
         "Not counted: its From line holds 2 addresses, so it is nobody's reply."),
        (row("bounce", ["bounce=permanent (dsn)"], "permanent bounce: dsn; bob@x: 550 5.1.1 user unknown"),
         "A delivery report: permanent bounce: dsn; bob@x: 550 5.1.1 user unknown."),
        (row("bounce-ignored", ["bounce=permanent (dsn), not at a bounce address of ours: ignored"],
             "permanent bounce: dsn; not at a bounce address of ours: ignored (it marks no address undeliverable)"),
         "Ignored: a delivery report that did not come to the bounce address of a mail of ours, so it marks no "
         "address undeliverable."),
        (row("not-a-party", ["token=thread", "thread-only=sender not authenticated"]),
         "Not counted: it threads to mail sent to Acme GmbH (the customer) but did not come to its reply address, "
         "and its sender is not authenticated; only the reply address counts then."),
    ]
    for given, headline in cases:
        assert explain_inbound(given, "Acme GmbH").headline == headline, given


def test_without_the_account_name_the_role_stands_in() -> None:
    why = explain_inbound(row("not-a-party", ["sender=not registered (x@y.example)"], party="new-reseller"))
    assert why.headline == "Not counted: from x@y.example, which is not an address registered for the new reseller."
