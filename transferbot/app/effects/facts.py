"""Loading rows and turning them into the plain facts the rules take."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.core.domain import ROLE_ORDER, Decision, EntitlementState, Role, TransferStatus
from transferbot.core.rules import EntitlementFacts, PartyFacts, TransferFacts
from transferbot.store.models import Account, Entitlement, Party, PartyAddress, Transfer, table_of


def entitlement_facts(ent: Entitlement) -> EntitlementFacts:
    return EntitlementFacts(ent.id, ent.product, ent.customer_id, ent.isv_id, ent.reseller_id,
                            EntitlementState(ent.state))


# The hot paths' statements, built once: building one costs more than running it on SQLite
# (executing a prebuilt statement reuses its cache key and compiled form).
_PARTIES_OF = select(Party).where(Party.transfer_id == sa.bindparam("transfer_id"))
_PARTIES_FOR = select(Party).where(col(Party.transfer_id).in_(sa.bindparam("ids", expanding=True)))
_ADDRESSES_OF = (select(PartyAddress).where(PartyAddress.party_id == sa.bindparam("party_id"))
                 .order_by(col(PartyAddress.position)))
_ADDRESSES_FOR = (select(PartyAddress).where(col(PartyAddress.party_id).in_(sa.bindparam("ids", expanding=True)))
                  .order_by(col(PartyAddress.party_id), col(PartyAddress.position)))
_ACCOUNTS = table_of(Account)
_NAMES_OF = sa.select(_ACCOUNTS.c.id, _ACCOUNTS.c.name).where(_ACCOUNTS.c.id.in_(sa.bindparam("ids", expanding=True)))
_LOCK_TRANSFER = select(Transfer).where(Transfer.id == sa.bindparam("transfer_id")).with_for_update()


def parties_of(session: Session, transfer_id: str) -> list[Party]:
    rows = list(session.exec(_PARTIES_OF, params={"transfer_id": transfer_id}))
    return sorted(rows, key=lambda p: ROLE_ORDER.index(Role(p.role)))


def parties_for(session: Session, transfer_ids: Iterable[str]) -> dict[str, list[Party]]:
    """The parties of several transfers in one query (each transfer's in role order)."""
    wanted = sorted(set(transfer_ids))
    found: dict[str, list[Party]] = {i: [] for i in wanted}
    if wanted:
        for p in session.exec(_PARTIES_FOR, params={"ids": wanted}):
            found[p.transfer_id].append(p)
    return {i: sorted(rows, key=lambda p: ROLE_ORDER.index(Role(p.role))) for i, rows in found.items()}


def addresses_of(session: Session, party_id: int) -> list[PartyAddress]:
    return list(session.exec(_ADDRESSES_OF, params={"party_id": party_id}))


Addresses = dict[int, list[PartyAddress]]  # each party's addresses (by party id), in order


def addresses_for(session: Session, party_ids: Iterable[int | None]) -> Addresses:
    """The addresses of several parties in one query; a party without any maps to an empty list."""
    wanted = sorted({i for i in party_ids if i is not None})
    found: dict[int, list[PartyAddress]] = defaultdict(list)
    if wanted:
        for a in session.exec(_ADDRESSES_FOR, params={"ids": wanted}):
            found[a.party_id].append(a)
    return {i: found[i] for i in wanted}


def complete_addresses(session: Session, parties: Iterable[Party], addresses: Addresses | None = None) -> Addresses:
    """``addresses`` (a new mapping if None) with those of every party it lacks added, in one query: a
    caller that has them loaded saves the query, one that has not gets them."""
    found = addresses if addresses is not None else {}
    missing = [p.id for p in parties if p.id not in found]
    if missing:
        found.update(addresses_for(session, missing))
    return found


def account_names(session: Session, ids: Iterable[str | None], known: dict[str, str] | None = None) -> dict[str, str]:
    """Accounts' names by id. ``known``, a unit of work's (Work.names), remembers them for the rest of its
    changes: a batch asks for the same accounts again and again."""
    known = known if known is not None else {}
    wanted = {i for i in ids if i}
    missing = wanted - known.keys()
    if missing:
        known.update((i, name) for i, name in session.connection().execute(_NAMES_OF, {"ids": sorted(missing)}))
    return {i: known[i] for i in wanted if i in known}


def transfer_key(transfer_id: str) -> str:
    """A transfer id as stored, forgiving case and a missing TR- prefix."""
    key = transfer_id.strip().upper()
    return key if key.startswith("TR-") else "TR-" + key


def find_transfer(session: Session, transfer_id: str) -> Transfer | None:
    """Look a transfer up by id, forgiving case and a missing TR- prefix."""
    return session.get(Transfer, transfer_key(transfer_id))


def lock_transfer(session: Session, transfer_id: str, held: Collection[str] = ()) -> Transfer | None:
    """The transfer row, locked for the rest of the transaction: every use case takes it first, so two
    daemons never interleave one transfer's changes. Where this transaction holds the lock already (on
    SQLite the write transaction, BEGIN IMMEDIATE, is the only lock there is; elsewhere ``held``, the
    transfers it locked before reading anything of them), a row it loaded since is used as it is."""
    if transfer_id in held or session.get_bind().dialect.name == "sqlite":
        return session.get(Transfer, transfer_id)
    return session.exec(_LOCK_TRANSFER, params={"transfer_id": transfer_id}).first()


def facts_of(session: Session, t: Transfer, parties: list[Party], addresses: Addresses | None = None) -> TransferFacts:
    """The rules' view of a transfer, with each party's progress (what was sent, what is deliverable);
    ``addresses``, when the caller has them loaded, saves the query."""
    addresses = complete_addresses(session, parties, addresses)
    return TransferFacts(
        id=t.id, status=TransferStatus(t.status), entitlement_id=t.entitlement_id,
        from_reseller=t.from_reseller_id, to_reseller=t.to_reseller_id, created_at=t.created_at,
        expires_at=t.expires_at,
        parties=tuple(PartyFacts(
            Role(p.role), p.account_id, Decision(p.decision), reminders_sent=p.reminders_sent,
            last_call_sent=p.last_call_sent,
            deliverable=any(a.undeliverable_at is None for a in addresses[p.id or 0]),
            last_help_at=p.last_help_at, last_notice_at=p.last_notice_at) for p in parties),
    )
