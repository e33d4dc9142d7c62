"""The registry as the marketplace's billing system keeps it in step over HTTP: accounts and entitlements
created or replaced by id (PUT), read one at a time or a page at a time.

Each runs inside the caller's transaction and validates as the CLI does (service.registry's
checks, with their words). Two things a PUT may not do: change an account's kind (its entitlements
and transfers were made for that kind), and move an entitlement (its customer, ISV or reseller)
while a transfer of it is open: the transfer's parties were derived from where it is, and its
completion moves it only if it is still there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from transferbot.app import registry
from transferbot.app.apikeys import Principal, unseen
from transferbot.core.domain import AccountKind, EntitlementState, TransferStatus
from transferbot.core.errors import Conflict, Refusal, Unknown
from transferbot.store import paging
from transferbot.store.models import Account, AccountAddress, Entitlement, Transfer


def entitlement_json(ent: Entitlement) -> dict[str, Any]:
    """As `entitlement list --json` prints it."""
    return {"id": ent.id, "product": ent.product, "customer": ent.customer_id, "isv": ent.isv_id,
            "reseller": ent.reseller_id, "state": ent.state}


def account_json(session: Session, account: Account) -> dict[str, Any]:
    """As `account list --json` prints it."""
    return registry.AccountView(account.id, account.kind, account.name,
                                tuple(registry.account_emails(session, account.id)), account.locale,
                                account.timezone).as_json()


def put_account(session: Session, account_id: str, kind: str, name: str, emails: list[str], locale: str | None,
                timezone: str | None, defaults: tuple[str, str], now: datetime) -> tuple[dict[str, Any], bool]:
    """Create the account or replace what it says; returns it and whether it was created.
    ``locale``/``timezone`` omitted: ``defaults`` for a new account, unchanged for an existing one."""
    registry.check_id(account_id, "account")
    try:
        kind_value = AccountKind(kind).value
    except ValueError:
        raise Refusal(f"account kind {kind!r} is not one of customer, isv, reseller") from None
    name = registry.check_text(name, "name")
    addresses = registry.check_emails(emails)
    locale = registry.check_locale(locale) if locale is not None else None
    timezone = registry.check_timezone(timezone) if timezone is not None else None
    account = session.get(Account, account_id)
    created = account is None
    if account is None:
        account = Account(id=account_id, kind=kind_value, name=name, locale=locale or defaults[0],
                          timezone=timezone or defaults[1], created_at=now)
        session.add(account)
        session.flush()
    else:
        if account.kind != kind_value:
            raise Conflict(f"account {account_id} is a {account.kind}; its kind cannot change to {kind_value}")
        account.name = name
        account.locale = locale or account.locale
        account.timezone = timezone or account.timezone
        session.add(account)
        current = list(session.exec(select(AccountAddress).where(AccountAddress.account_id == account_id)
                                    .order_by(col(AccountAddress.position))))
        if [row.address for row in current] != addresses:
            for row in current:
                session.delete(row)
            session.flush()
        else:
            addresses = []
    for position, address in enumerate(addresses):
        session.add(AccountAddress(account_id=account_id, address=address, position=position))
    session.flush()
    return account_json(session, account), created


def get_account(session: Session, account_id: str) -> dict[str, Any]:
    account = session.get(Account, account_id)
    if account is None:
        raise Unknown(f"unknown account {account_id!r}")
    return account_json(session, account)


def accounts_page(session: Session, cursor: str | None, limit: int) -> dict[str, Any]:
    after = paging.decode(cursor, 1)
    query = select(Account).order_by(col(Account.id))
    if after is not None:
        query = query.where(col(Account.id) > after[0])
    rows = list(session.exec(query.limit(limit + 1)))
    page = rows[:limit]
    return paging.page_of([account_json(session, a) for a in page], int(len(rows) > limit),
                          (page[-1].id,) if page else None).as_api()


def _party_account(session: Session, account_id: str | None, kind: AccountKind, field: str) -> None:
    if account_id is None:
        return
    account = session.get(Account, account_id)
    if account is None:
        raise Unknown(f"unknown account {account_id!r} ({field})")
    if account.kind != kind.value:
        raise Refusal(f"account {account_id} is a {account.kind}, not a {kind.value} ({field})")


def put_entitlement(session: Session, entitlement_id: str, product: str, customer: str, isv: str,
                    reseller: str | None, state: str, now: datetime) -> tuple[dict[str, Any], bool]:
    """Create the entitlement or replace what it says; returns it and whether it was created."""
    registry.check_id(entitlement_id, "entitlement")
    product = registry.check_text(product, "product")
    try:
        state = EntitlementState(state).value
    except ValueError:
        raise Refusal(f"state {state!r} is not one of {', '.join(s.value for s in EntitlementState)}") from None
    _party_account(session, customer, AccountKind.CUSTOMER, "customer")
    _party_account(session, isv, AccountKind.ISV, "isv")
    _party_account(session, reseller, AccountKind.RESELLER, "reseller")
    ent = session.exec(select(Entitlement).where(Entitlement.id == entitlement_id).with_for_update()).first()
    if ent is None:
        ent = Entitlement(id=entitlement_id, product=product, customer_id=customer, isv_id=isv, reseller_id=reseller,
                          state=state, created_at=now, updated_at=now)
        session.add(ent)
        session.flush()
        return entitlement_json(ent), True
    if (ent.customer_id, ent.isv_id, ent.reseller_id) != (customer, isv, reseller):
        open_id = session.exec(select(Transfer.id).where(Transfer.entitlement_id == ent.id,
                                                         Transfer.status == TransferStatus.PENDING.value)).first()
        if open_id is not None:
            raise Conflict(f"entitlement {ent.id} has an open transfer {open_id}; its customer, ISV and reseller "
                           f"cannot change until it is closed (cancel it first)")
    if (ent.product, ent.customer_id, ent.isv_id, ent.reseller_id, ent.state) != (product, customer, isv, reseller,
                                                                                   state):
        ent.product, ent.customer_id, ent.isv_id, ent.reseller_id, ent.state = product, customer, isv, reseller, state
        ent.updated_at = now
        session.add(ent)
        session.flush()
    return entitlement_json(ent), False


def get_entitlement(session: Session, principal: Principal, entitlement_id: str) -> dict[str, Any]:
    ent = session.get(Entitlement, entitlement_id)
    if ent is None or not principal.may_act_for(ent.isv_id):
        raise unseen("entitlement")
    return entitlement_json(ent)


def entitlements_page(session: Session, principal: Principal, cursor: str | None, limit: int) -> dict[str, Any]:
    after = paging.decode(cursor, 1)
    query = select(Entitlement).order_by(col(Entitlement.id))
    if not principal.admin:
        query = query.where(Entitlement.isv_id == principal.isv)
    if after is not None:
        query = query.where(col(Entitlement.id) > after[0])
    rows = list(session.exec(query.limit(limit + 1)))
    page = rows[:limit]
    return paging.page_of([entitlement_json(e) for e in page], int(len(rows) > limit),
                          (page[-1].id,) if page else None).as_api()
