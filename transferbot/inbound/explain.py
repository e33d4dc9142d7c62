"""Why a reply did or did not count, in plain words, from what the reader stored with it.

The reader keeps, with every inbound message, its outcome, the named checks that ran (with their notes,
e.g. ``sender=not registered (mallory@evil.example)``), one sentence of reason and the outcome of sender
authentication. An operator should not have to know the chain to read that: this turns it into a headline
("Not counted: from mallory@evil.example, which is not an address of Acme GmbH.") and a few details. Pure,
so the dashboard and the CLI say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLE_WORDS = {"customer": "customer", "isv": "ISV", "current-reseller": "current reseller",
              "new-reseller": "new reseller"}

# What the reader's decision problems mean (reader.decision.DecisionWord.problem).
PROBLEMS = {
    "empty": "the reply has no text of its own",
    "quoted": "the only decision word is in the quoted original, not in what the sender wrote",
    "no-word": "its first line has no decision word (APPROVE, DECLINE or STATUS)",
    "yes-alone": "a yes alone, to a mail that did not ask for an approval",
    "negation": "the decision word is negated (for example \"I do not approve\")",
    "both": "it holds both an approval and a decline word",
    "question": "the decision word is put as a question",
    "condition": "the approval is qualified by a condition or a reservation; consent counts only unconditionally",
    "elsewhere": "the approval refers to conditions or terms kept elsewhere (an attachment, a link, another "
                 "message); consent counts only unconditionally",
    "mismatch": "the approval states the details of another move (another reseller, product, customer or "
                "direction) than this transfer's",
}


@dataclass(frozen=True)
class Explanation:
    """``counted``: whether the message recorded a decision. ``tone``: ok | ignored | info | trouble (for colour)."""

    counted: bool
    headline: str
    details: tuple[str, ...] = field(default_factory=tuple)
    tone: str = "info"


def _notes(checks: Sequence[str]) -> dict[str, str]:
    """``name=note`` pairs of the checks that ran (the last one of a name wins)."""
    out: dict[str, str] = {}
    for check in checks:
        name, _, note = check.partition("=")
        out[name] = note
    return out


def _who(role: str | None, name: str | None) -> str:
    words = ROLE_WORDS.get(role or "", role or "party")
    return f"{name} (the {words})" if name else f"the {words}"


def _end(text: str) -> str:
    """A sentence that ends with one full stop, whatever the text it was made from ended with."""
    return text.rstrip().rstrip(".") + "."


def _between(text: str, start: str, end: str) -> str:
    head, found, rest = text.partition(start)
    return rest.rpartition(end)[0] if found and end in rest else ""


def explain_inbound(row: Mapping[str, Any], account_name: str | None = None,
                    transfer_status: str | None = None) -> Explanation:
    """Explain one inbound message as ``record.inbound_summary`` gives it (outcome, checks, reason, auth,
    authentication, from, mail_from, party); ``account_name`` is the name of the party's account."""
    outcome = str(row.get("outcome") or "pending")
    notes = _notes(row.get("checks") or [])
    reason = str(row.get("reason") or "")
    sender = str(row.get("from") or row.get("mail_from") or "") or "an empty sender"
    role = row.get("party")
    who = _who(role, account_name)
    auth = row.get("authentication") or {}
    auth_why = str(auth.get("why") or "")
    details: list[str] = []
    if row.get("mail_from") and row.get("from") and str(row["mail_from"]).lower() != str(row["from"]).lower():
        details.append(f"Envelope sender {row['mail_from']}, From {row['from']}.")
    if auth_why and outcome in ("approved", "declined", "status", "unclear", "already-decided"):
        lead = "Sender authenticated" if auth.get("result") == "pass" else "Sender not authenticated"
        details.append(f"{lead}: {_end(auth_why)}")

    if outcome in ("approved", "declined"):
        verb = "approval" if outcome == "approved" else "decline"
        details.insert(0, f"From {sender}, a registered address of {account_name or 'the party'}.")
        return Explanation(True, f"Counted: the {verb} of {who} was recorded.", tuple(details), "ok")
    if outcome == "not-a-party":
        if notes.get("party") == "token revoked":
            return Explanation(False, f"Not counted: it answers a reply address that stopped counting when the "
                                      f"contact of {who} was replaced.", tuple(details), "ignored")
        sender_note = notes.get("sender", "")
        if sender_note.startswith("From holds"):
            return Explanation(False, f"Not counted: its From line holds {sender_note.split()[2]} addresses, so it "
                                      "is nobody's reply.", tuple(details), "ignored")
        if sender_note.startswith("not registered"):
            named = _between(sender_note, "(", ")") or sender
            whose = f"an address of {account_name}" if account_name else f"an address registered for {who}"
            return Explanation(False, f"Not counted: from {named}, which is not {whose}.",
                               (*details, "The party was told at its registered address that a reply was ignored."),
                               "ignored")
        if "authentication" in notes and notes["authentication"].startswith("fail"):
            why = auth_why or reason.removeprefix("sender not authenticated: ")
            advice = str(auth.get("advice") or "")
            extra = [f"Checks: {notes['authentication'].removeprefix('fail: ')}."]
            if advice:
                extra.append(f"What the sender's mail administrator can do: {advice}")
            return Explanation(False, f"Not counted: the sender could not be authenticated: {_end(why)}",
                               (*details, *extra), "ignored")
        if notes.get("thread-only", "").startswith("sender not authenticated"):
            return Explanation(False, f"Not counted: it threads to mail sent to {who} but did not come to its reply "
                                      "address, and its sender is not authenticated; only the reply address counts "
                                      "then.", (*details, "The party was sent the help mail (at most one a day)."),
                               "ignored")
        return Explanation(False, f"Not counted: {_end(reason or 'not from the party')}", tuple(details), "ignored")
    if outcome == "unclear":
        problem = notes.get("decision", "")
        code = _between(problem, "(", ")") or reason.removeprefix("unclear reply: ")
        words = PROBLEMS.get(code, code or "no clear decision")
        return Explanation(False, f"Not counted: unclear, because {words}.",
                           (*details, "The sender was sent the help mail (at most one a day)."), "ignored")
    if outcome == "status":
        return Explanation(False, f"Not a decision: {who} asked who has answered; the status was mailed back.",
                           tuple(details), "info")
    if outcome == "already-decided":
        done = notes.get("already-decided", "decided")
        return Explanation(False, f"Not counted: {who} had already {done}; a decision counts once.",
                           tuple(details), "info")
    if outcome == "closed":
        status = notes.get("closed") or transfer_status or "closed"
        return Explanation(False, f"Not counted: the transfer was already {status} when it arrived.",
                           tuple(details), "info")
    if outcome == "auto-reply":
        what = notes.get("auto-reply") or reason.removeprefix("auto-reply: ")
        return Explanation(False, f"Not counted: an automatic reply ({what}); never a decision, never answered.",
                           tuple(details), "info")
    if outcome == "bounce":
        return Explanation(False, f"A delivery report: {_end(reason or 'a bounce')}",
                           (*details, "A permanent one marks the address undeliverable."), "trouble")
    if outcome == "bounce-ignored":
        return Explanation(False, "Ignored: a delivery report that did not come to the bounce address of a mail of "
                                  "ours, so it marks no address undeliverable.",
                           (*details, f"It says: {_end(reason or 'a bounce')}"), "info")
    if outcome == "duplicate":
        return Explanation(False, f"Not counted again: {_end(reason or 'a copy of a message already read')}",
                           tuple(details), "info")
    if outcome == "no-transfer":
        return Explanation(False, "Not filed under any transfer: it carries no reply address, thread or reference "
                                  "line of ours.", tuple(details), "info")
    if outcome == "loop":
        return Explanation(False, "Dropped: it comes from our own address, so that no mail loop can form.",
                           tuple(details), "info")
    if outcome == "failed":
        return Explanation(False, f"Could not be read: {_end(reason or 'an error')}",
                           (*details, "Fix the cause, then read it again (Retry)."), "trouble")
    if reason:
        return Explanation(False, f"Not read yet: {_end(reason)}", tuple(details), "info")
    return Explanation(False, "Not read yet.", tuple(details), "info")
