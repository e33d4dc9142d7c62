"""The pure core: kinds, derived parties, decisions, the hash chain, tokens and addresses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from transferbot.app.effects.audit import GENESIS, event_hash, first_broken
from transferbot.core import errors, rules
from transferbot.core.addresses import AddressBook, AddressError, normalize_address
from transferbot.core.domain import (
    AccountKind,
    Decision,
    EntitlementState,
    MailKind,
    Role,
    TransferKind,
    TransferStatus,
)
from transferbot.core.tokens import check_token, new_token, new_transfer_id

ENT = rules.EntitlementFacts("e1", "P", "cust", "isv", None, EntitlementState.ACTIVE)
R2 = rules.AccountFacts("r2", AccountKind.RESELLER)


def test_kind_follows_from_where_it_is_and_where_it_goes() -> None:
    assert rules.transfer_kind(None, "r2") is TransferKind.DIRECT_TO_RESELLER
    assert rules.transfer_kind("r1", None) is TransferKind.RESELLER_TO_DIRECT
    assert rules.transfer_kind("r1", "r2") is TransferKind.RESELLER_CHANGE
    with pytest.raises(errors.Refusal):
        rules.transfer_kind("r1", "r1")


def test_parties_are_derived() -> None:
    plan = rules.plan_request("e1", replace(ENT, reseller_id="r1"), "r2", R2, False)
    assert plan.parties == ((Role.CUSTOMER, "cust"), (Role.ISV, "isv"), (Role.CURRENT_RESELLER, "r1"),
                            (Role.NEW_RESELLER, "r2"))
    direct = rules.plan_request("e1", replace(ENT, reseller_id="r1"), None, None, False)
    assert [r for r, _ in direct.parties] == [Role.CUSTOMER, Role.ISV, Role.CURRENT_RESELLER]


@pytest.mark.parametrize(("ent", "target_id", "target", "open_", "message"), [
    (None, "r2", R2, False, "unknown entitlement"),
    (replace(ENT, state=EntitlementState.CANCELLED), "r2", R2, False, "cancelled, not active"),
    (ENT, "ghost", None, False, "unknown account"),
    (ENT, "cust", rules.AccountFacts("cust", AccountKind.CUSTOMER), False, "not a reseller"),
    (ENT, None, None, False, "already a direct order"),
    (ENT, "r2", R2, True, "already has an open transfer"),
])
def test_refusals(ent: rules.EntitlementFacts | None, target_id: str | None, target: rules.AccountFacts | None,
                  open_: bool, message: str) -> None:
    with pytest.raises(errors.Refusal, match=message):
        rules.plan_request("e1", ent, target_id, target, open_)


def _facts(*decisions: Decision, status: TransferStatus = TransferStatus.PENDING) -> rules.TransferFacts:
    roles = (Role.CUSTOMER, Role.ISV, Role.NEW_RESELLER)
    return rules.TransferFacts("TR-1", status, "e1", None, "r2",
                               tuple(rules.PartyFacts(r, r.value, d) for r, d in zip(roles, decisions, strict=True)))


def test_the_last_approval_completes_and_moves() -> None:
    change = rules.record_decision(_facts(Decision.APPROVED, Decision.APPROVED, Decision.PENDING),
                                   Role.NEW_RESELLER, Decision.APPROVED, ENT)
    assert change.status is TransferStatus.COMPLETED and change.move_entitlement and change.closed
    assert change.notices[0].kind is MailKind.COMPLETED and len(change.notices[0].roles) == 3


def test_an_earlier_approval_only_gets_a_receipt() -> None:
    change = rules.record_decision(_facts(Decision.PENDING, Decision.PENDING, Decision.PENDING),
                                   Role.ISV, Decision.APPROVED, ENT)
    assert change.status is TransferStatus.PENDING and not change.move_entitlement
    assert [(n.kind, n.roles) for n in change.notices] == [(MailKind.RECEIPT, (Role.ISV,))]


def test_a_decline_tells_everyone_who_and_why() -> None:
    change = rules.record_decision(_facts(Decision.APPROVED, Decision.PENDING, Decision.PENDING),
                                   Role.ISV, Decision.DECLINED, ENT, "price")
    assert change.status is TransferStatus.DECLINED and not change.move_entitlement
    assert change.notices[0].extra == {"by_role": "isv", "reason": "price"}


def test_a_decision_counts_once_and_closed_transfers_change_nothing() -> None:
    with pytest.raises(rules.AlreadyDecided):
        rules.record_decision(_facts(Decision.APPROVED, Decision.PENDING, Decision.PENDING),
                              Role.CUSTOMER, Decision.APPROVED, ENT)
    with pytest.raises(rules.NotPending):
        rules.record_decision(_facts(Decision.PENDING, Decision.PENDING, Decision.PENDING,
                                     status=TransferStatus.EXPIRED), Role.CUSTOMER, Decision.APPROVED, ENT)


def test_the_entitlement_moves_only_if_it_is_still_where_the_transfer_said() -> None:
    moved = replace(ENT, reseller_id="r9")
    change = rules.record_decision(_facts(Decision.APPROVED, Decision.APPROVED, Decision.PENDING),
                                   Role.NEW_RESELLER, Decision.APPROVED, moved)
    assert change.status is TransferStatus.CANCELLED and not change.move_entitlement
    assert change.alerts and change.alerts[0].name == "cancelled"


class _Ev:
    def __init__(self, seq: int, prev: str, kind: str, data: dict[str, object]) -> None:
        self.transfer_id, self.seq, self.kind, self.data, self.prev_hash = "TR-1", seq, kind, data, prev
        self.at = datetime(2026, 1, 1, tzinfo=UTC)
        self.hash = event_hash(prev, "TR-1", seq, self.at, kind, data)


def test_a_party_is_resent_at_most_once_an_hour_unless_forced() -> None:
    t, at = _facts(Decision.PENDING, Decision.PENDING, Decision.PENDING), datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    last = {Role.ISV: at - timedelta(minutes=10), Role.CUSTOMER: at - rules.RESEND_INTERVAL}
    with pytest.raises(rules.TooSoon, match=r"the isv of TR-1 was resent its confirmation at 11:50 UTC; a party is "
                                            r"resent at most once an hour: again from 12:50 UTC") as refused:
        rules.resend(t, (Role.ISV,), {}, at, last)
    assert refused.value.retry_after == 3000 and refused.value.kind == "too-soon"
    some = rules.resend(t, (Role.CUSTOMER, Role.ISV, Role.NEW_RESELLER), {}, at, last, "operator:alice")
    assert some.notices[0].roles == (Role.CUSTOMER, Role.NEW_RESELLER), "an hour on is soon enough; 10 minutes not"
    assert [e[1] for e in some.events] == [{"role": r, "cleared_undeliverable": [], "by": "operator:alice"}
                                           for r in ("customer", "new-reseller")]
    forced = rules.resend(t, (Role.ISV, Role.NEW_RESELLER), {}, at, last, "operator", force=True)
    assert [(e[1]["role"], e[1].get("forced", False)) for e in forced.events] == [("isv", True),
                                                                                ("new-reseller", False)]


def test_the_hash_chain_names_the_first_tampered_event() -> None:
    a = _Ev(1, GENESIS, "requested", {})
    b = _Ev(2, a.hash, "approved", {"role": "isv"})
    c = _Ev(3, b.hash, "completed", {})
    assert first_broken([a, b, c]) is None
    b.data = {"role": "customer"}
    assert first_broken([a, b, c]) == (2, "its content does not match its hash")
    assert first_broken([a, c]) == (3, "expected event #2 here, found #3")


def test_tokens_are_signed_and_ids_are_short() -> None:
    token = new_token(b"k")
    assert len(token) == 24 and token == token.lower()
    assert check_token(b"k", token) and check_token(b"k", token.upper())
    assert not check_token(b"other", token)
    assert not check_token(b"k", token[:-1] + ("a" if token[-1] != "a" else "b"))
    tid = new_transfer_id()
    assert tid.startswith("TR-") and len(tid) == 9 and not set(tid[3:]) & set("ILOU")


def test_addresses() -> None:
    assert normalize_address(" Alice@Example.COM ") == "alice@example.com"
    with pytest.raises(AddressError):
        normalize_address("alice@")
    book = AddressBook("transfers.example.com")
    assert book.parse("Transfer+ABC@Transfers.Example.com") == book.parse("transfer+abc@transfers.example.com")
    assert book.parse("transfer@transfers.example.com").kind == "reply"  # type: ignore[union-attr]
    assert book.parse("bounce+k@transfers.example.com").kind == "bounce"  # type: ignore[union-attr]
    assert book.parse("info@transfers.example.com") is None
    assert book.parse("transfer@elsewhere.example.com") is None
