"""The reader's chain: a fixed, declared sequence of small named checks.

In the manner of Mailman 3's rules and chains, each check has a stable name
and either lets the message go on (noting what it saw) or decides its
outcome. The names and notes of the checks that ran are stored with the
message, so every outcome can be explained. The chain only reads: the
service applies the verdict in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from transferbot.core.domain import Decision, MailKind, Outcome, TransferStatus
from transferbot.inbound.reader.bounce import Bounce
from transferbot.inbound.reader.decision import DecisionWord
from transferbot.inbound.reader.details import TransferNames, mismatch
from transferbot.inbound.reader.reading import Reading

if TYPE_CHECKING:
    from transferbot.inbound.senderauth import AuthOutcome


@dataclass(frozen=True)
class PartyInfo:
    party_id: int
    transfer_id: str
    role: str
    addresses: tuple[str, ...]
    decision: Decision
    transfer_status: TransferStatus
    revoked: bool = False


@dataclass(frozen=True)
class OutboundInfo:
    outbound_id: int
    transfer_id: str | None
    party_id: int | None
    recipients: tuple[str, ...]
    kind: str = ""


class Lookup(Protocol):
    """What the checks may ask of the database (read-only)."""

    def earlier_copy(self, message_id: str, digest: str) -> int | None: ...
    def party_by_token(self, token: str) -> PartyInfo | None: ...
    def party_by_thread(self, message_ids: Sequence[str]) -> PartyInfo | None: ...
    def outbound(self, keys: Sequence[str], message_ids: Sequence[str]) -> OutboundInfo | None: ...
    def token_is_ours(self, token: str) -> bool: ...
    def is_own_address(self, address: str) -> bool: ...
    def transfer_names(self, transfer_id: str) -> TransferNames | None: ...


class NoLookup:
    """The lookup of a reading done without a database (``transferbot read`` anywhere): nothing is known, so
    no message is a copy, no token or thread is a party's, and only the token's own check says it is ours."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret

    def earlier_copy(self, message_id: str, digest: str) -> int | None:
        return None

    def party_by_token(self, token: str) -> PartyInfo | None:
        return None

    def party_by_thread(self, message_ids: Sequence[str]) -> PartyInfo | None:
        return None

    def outbound(self, keys: Sequence[str], message_ids: Sequence[str]) -> OutboundInfo | None:
        return None

    def token_is_ours(self, token: str) -> bool:
        return False

    def is_own_address(self, address: str) -> bool:
        return False

    def transfer_names(self, transfer_id: str) -> TransferNames | None:
        return None


@dataclass(frozen=True)
class Policy:
    sender_auth: str = "verify"  # verify | trusted-relay | off (inbound.sender_auth)


@dataclass
class State:
    """What the checks have found so far."""

    reading: Reading
    lookup: Lookup
    policy: Policy
    auth: AuthOutcome | None = None
    notes: list[str] = field(default_factory=list)
    party: PartyInfo | None = None
    outbound: OutboundInfo | None = None
    notify: str | None = None  # a mail the outcome calls for: help | status | ignored-sender
    problem: str = ""
    reason: str = ""
    duplicate_of: int | None = None
    named_by: str = ""  # what named the party: envelope | thread | body (check_token)
    decision: DecisionWord | None = None  # the decision as the chain takes it (check_decision sets it)
    detail: dict[str, str] = field(default_factory=dict)  # what the help mail names (a mismatch's names)

    def note(self, check: str, what: str) -> None:
        self.notes.append(f"{check}={what}")


Check = Callable[[State], "Outcome | None"]


def check_duplicate(state: State) -> Outcome | None:
    earlier = state.lookup.earlier_copy(state.reading.message_id, state.reading.digest)
    if earlier is not None:
        state.note("duplicate", f"copy of #{earlier}")
        state.reason = f"same message as inbound #{earlier}"
        state.duplicate_of = earlier
        return Outcome.DUPLICATE
    state.note("duplicate", "no")
    return None


def check_bounce(state: State) -> Outcome | None:
    """A delivery report counts only at a bounce address we issued: the VERP key of one outgoing mail, which
    names that mail (and so its recipients). Anyone can write a report to the reply address, or name a
    Message-ID in one, and a bounce that counts stops our mail to a party; such a report is recorded (filed
    under the mail it names, if any) and changes nothing."""
    r = state.reading
    bounce = r.bounce
    if bounce is None:
        state.note("bounce", "no")
        return None
    kind = "permanent" if bounce.permanent else "transient"
    said = f"{kind} bounce: {bounce.why}" + "".join(f"; {detail}" for detail in _diagnostics(bounce))
    state.outbound = state.lookup.outbound(r.bounce_keys, ()) if r.bounce_keys else None
    if state.outbound is not None:
        state.note("bounce", f"{kind} ({bounce.why})")
        state.reason = said
        return Outcome.BOUNCE
    where = "its bounce address names no mail of ours" if r.bounce_keys else "not at a bounce address of ours"
    state.outbound = state.lookup.outbound((), bounce.original_message_ids)
    state.note("bounce", f"{kind} ({bounce.why}), {where}: ignored")
    state.reason = f"{said}; {where}: ignored (it marks no address undeliverable)"
    return Outcome.BOUNCE_IGNORED


def _diagnostics(bounce: Bounce, limit: int = 5) -> list[str]:
    """What the remote server said of each failed recipient ('alice@…: 5.1.1 smtp; 550 5.1.1 … User
    unknown'), so that the operator reads it as the alert for a refused RCPT quotes the relay."""
    out: list[str] = []
    for recipient in bounce.recipients[:limit]:
        said = " ".join(recipient.diagnostic.split())
        status = recipient.status if recipient.status and recipient.status not in said else ""
        detail = " ".join(part for part in (status, said) if part) or recipient.action
        out.append(f"{recipient.address}: {detail}"[:400])
    return out


def check_loop(state: State) -> Outcome | None:
    sender = state.reading.from_address
    if sender and state.lookup.is_own_address(sender):
        state.note("loop", f"from our own address {sender}")
        state.reason = "mail from our own address (dropped so that no loop can form)"
        return Outcome.LOOP
    state.note("loop", "no")
    return None


def check_auto_reply(state: State) -> Outcome | None:
    """A machine's answer: by its headers, subject or wording, or because it came to our bounce address.

    Only machines write to the VERP envelope sender (vacation(1) answers it): a message there that is
    not a delivery report is never a person's decision, and is never answered."""
    reason = state.reading.auto_reply
    if not reason and state.reading.bounce_keys and not state.reading.envelope_tokens:
        reason = "sent to our bounce address and not a delivery report"
    if reason:
        state.note("auto-reply", reason)
        state.reason = f"auto-reply: {reason}"
        return Outcome.AUTO_REPLY
    state.note("auto-reply", "no")
    return None


def check_token(state: State) -> Outcome | None:
    """Whose token: the envelope recipient, else threading headers, else the body's reference line;
    for a message to our bounce address, the mail its VERP key names.

    It only identifies (so that even an auto-reply is filed under its transfer); check_party decides."""
    r, lookup = state.reading, state.lookup
    for token in r.envelope_tokens:
        party = lookup.party_by_token(token)
        if party:
            state.party, state.named_by = party, "envelope"
            state.note("token", "envelope")
            break
    else:
        party = lookup.party_by_thread(r.thread_ids) if r.thread_ids else None
        if party:
            state.party, state.named_by = party, "thread"
            state.note("token", "thread")
        else:
            for token in r.body_tokens:
                if lookup.token_is_ours(token):
                    party = lookup.party_by_token(token)
                    if party:
                        state.party, state.named_by = party, "body"
                        state.note("token", "body")
                        break
    if state.party is None and r.bounce_keys:
        state.outbound = lookup.outbound(r.bounce_keys, ())
        if state.outbound is not None and state.outbound.transfer_id:
            state.note("token", "bounce address")
            return None
    if state.party is None:
        state.note("token", "none")
    return None


def check_party(state: State) -> Outcome | None:
    """A message that names no party (or a replaced token) goes no further."""
    if state.party is None:
        state.note("party", "none")
        state.reason = "names no transfer party (no known token, thread or reference line)"
        return Outcome.NO_TRANSFER
    if state.party.revoked:
        state.note("party", "token revoked")
        state.reason = "the token was replaced (the party's contact changed)"
        return Outcome.NOT_A_PARTY
    state.note("party", state.party.role)
    return None


def check_closed(state: State) -> Outcome | None:
    assert state.party is not None
    status = state.party.transfer_status
    if status is not TransferStatus.PENDING:
        state.note("closed", status.value)
        state.reason = f"transfer {state.party.transfer_id} is {status.value}"
        return Outcome.CLOSED
    state.note("closed", "no")
    return None


def check_sender(state: State) -> Outcome | None:
    """The From holds exactly one address, and it is registered for the party (the envelope sender is
    recorded, not compared: a forwarding service or a list rewrites it; authentication decides)."""
    assert state.party is not None
    r = state.reading
    sender = r.from_address
    if len(r.from_addresses) > 1:
        state.note("sender", f"From holds {len(r.from_addresses)} addresses")
        state.reason = f"the From line holds {len(r.from_addresses)} addresses, so it is nobody's reply"
        return Outcome.NOT_A_PARTY
    if sender and sender in state.party.addresses:
        envelope = r.envelope_from.strip().strip("<>").lower()
        state.note("sender", "registered" + (f" (envelope {envelope})" if envelope and envelope != sender else ""))
        return None
    state.note("sender", f"not registered ({sender or 'no From address'})")
    state.reason = f"From {sender or '(none)'} is not an address registered for the {state.party.role}"
    state.notify = "ignored-sender"
    state.problem = "sender"
    return Outcome.NOT_A_PARTY


def check_authentication(state: State) -> Outcome | None:
    """The From domain is authenticated (transferbot.inbound.senderauth), or authentication is off by choice."""
    auth = state.auth
    if state.policy.sender_auth == "off":
        state.note("authentication", "off (inbound.allow_unauthenticated)")
        return None
    if auth is not None and auth.counts:
        state.note("authentication", auth.summary())
        return None
    why = auth.why if auth is not None else "the sender was not authenticated"
    state.note("authentication", f"fail: {auth.summary() if auth is not None else 'not checked'}")
    state.reason = f"sender not authenticated: {why}"
    state.notify = "ignored-sender"
    state.problem = "authentication"
    return Outcome.NOT_A_PARTY


def check_thread_only(state: State) -> Outcome | None:
    """A reply named only by its threading headers counts only from an authenticated sender.

    The token proves which party a reply answers because only that party was sent it; a Message-ID is
    weaker (a forwarded mail or a mailbox's headers show it), so without the token it takes an
    authenticated sender, and with authentication off (inbound.sender_auth) only the token counts. The
    party is sent the help mail (at most once a day): reply to our message itself, to its reply address."""
    assert state.party is not None
    if state.named_by != "thread":
        state.note("thread-only", "no")
        return None
    if state.auth is not None and state.auth.authenticated:
        state.note("thread-only", "sender authenticated")
        return None
    state.note("thread-only", "sender not authenticated")
    state.reason = (f"threaded to mail sent to the {state.party.role} but not sent to its reply address, and the "
                    "sender is not authenticated: only the reply address counts then")
    state.notify = "help"
    state.problem = "no-token"
    return Outcome.NOT_A_PARTY


def check_decision(state: State) -> Outcome | None:
    """The decision the fresh text states; an approval that states another move's details (another
    reseller, product, customer or direction) is unclear, and the help mail names the difference."""
    word = state.reading.decision
    if word.problem == "yes-alone" and state.party is not None:
        asked = _asked_for_approval(state)
        state.note("yes-alone", f"answers a {asked}" if asked else "answers no mail that asked for an approval")
        if asked:
            word = DecisionWord("approve", first_line=word.first_line)
    if word.kind == "approve" and state.reading.stated and state.party is not None:
        names = state.lookup.transfer_names(state.party.transfer_id)
        found = mismatch(state.reading.stated, names) if names is not None else None
        if found is not None:
            word = DecisionWord("unclear", first_line=word.first_line, problem="mismatch", words=found.words)
            state.detail = {"slot": found.slot, "named": found.named, "expected": found.expected,
                            "direct": "yes" if found.direct else "", "isv": names.isv if names else ""}
            state.reason = f"unclear reply: mismatch: {found.describe()}"
    state.decision = word
    if state.reading.signed:
        state.note("signed", f"{state.reading.signed} (read inside the signature; kept, not verified)")
    state.note("decision", word.kind + (f" ({word.problem})" if word.problem else ""))
    if word.kind == "status":
        state.notify = "status"
        return Outcome.STATUS
    if word.kind in ("unclear", "none"):
        state.notify = "help"
        state.problem = word.problem or "no-word"
        state.reason = state.reason or f"unclear reply: {state.problem}"
        return Outcome.UNCLEAR
    return None


ASKS_FOR_APPROVAL = frozenset(k.value for k in (MailKind.CONFIRMATION, MailKind.REMINDER, MailKind.LAST_CALL))


def _asked_for_approval(state: State) -> str:
    """The kind of the mail a reply answers (its In-Reply-To, else the last of its References) when that mail
    went to this party and asked it to approve; else empty."""
    assert state.party is not None
    answered = state.lookup.outbound((), state.reading.thread_ids[:1]) if state.reading.thread_ids else None
    if answered is None or answered.party_id != state.party.party_id or answered.kind not in ASKS_FOR_APPROVAL:
        return ""
    return answered.kind


def check_already_decided(state: State) -> Outcome | None:
    assert state.party is not None
    if state.party.decision is not Decision.PENDING:
        state.note("already-decided", state.party.decision.value)
        state.reason = f"the {state.party.role} already {state.party.decision.value}; a decision counts once"
        return Outcome.ALREADY_DECIDED
    state.note("already-decided", "no")
    return None


def check_record(state: State) -> Outcome | None:
    kind = (state.decision or state.reading.decision).kind
    state.note("record", kind)
    return Outcome.APPROVED if kind == "approve" else Outcome.DECLINED


# The chain, in order. Names are stable: they are stored with every message.
CHAIN: tuple[tuple[str, Check], ...] = (
    ("duplicate", check_duplicate),
    ("bounce", check_bounce),
    ("loop", check_loop),
    ("token", check_token),
    ("auto-reply", check_auto_reply),
    ("party", check_party),
    ("closed", check_closed),
    ("sender", check_sender),
    ("authentication", check_authentication),
    ("thread-only", check_thread_only),
    ("decision", check_decision),
    ("already-decided", check_already_decided),
    ("record", check_record),
)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    checks: tuple[str, ...]
    decided_by: str
    reason: str
    party: PartyInfo | None
    outbound: OutboundInfo | None
    notify: str | None
    problem: str
    duplicate_of: int | None = None
    detail: dict[str, str] = field(default_factory=dict)
    decision: DecisionWord | None = None  # as the chain took it; None when it did not get that far


def run_chain(reading: Reading, lookup: Lookup, policy: Policy, auth: AuthOutcome | None = None) -> Verdict:
    state = State(reading=reading, lookup=lookup, policy=policy, auth=auth)
    for name, check in CHAIN:
        outcome = check(state)
        if outcome is not None:
            return Verdict(outcome, tuple(state.notes), name, state.reason, state.party, state.outbound,
                           state.notify, state.problem, state.duplicate_of, dict(state.detail), state.decision)
    raise AssertionError("the record check always decides")
