"""The marketplace registry: accounts and entitlements (the active orders)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.core.addresses import AddressError, normalize_address
from transferbot.core.clock import now
from transferbot.core.domain import AccountKind, EntitlementState
from transferbot.core.errors import Refusal, Unknown
from transferbot.core.languages import MAIL
from transferbot.store.models import Account, AccountAddress, Entitlement

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Format characters (Cf) are invisible: bidirectional controls (U+202A-U+202E, U+2066-U+2069) make a text
# read other than it is stored; zero-width ones (U+200B-U+200D, U+2060, U+FEFF, the soft hyphen) make two
# names that read alike differ ("Reseller One" and "Reseller\u200b One"), so one can pass for the other.


def unsafe_character(value: str, allow: str = "") -> str | None:
    """The first character a human text must not hold, named ("U+2028 LINE SEPARATOR"), or None.

    Control characters (Cc), line and paragraph separators (Zl, Zp) would start a line of their own
    in a header or the text part (a fake "Bcc:" line); format characters (Cf: bidirectional controls,
    zero-width characters) are invisible, and make a name read other than it is, or like another.
    ``allow`` lists controls a multi-line text may keep (a note's line breaks)."""
    for char in value:
        if char in allow:
            continue
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}"
    return None


def refuse_unsafe(value: str, what: str, allow: str = "") -> None:
    """Refuse, naming the field and the character (never printing it: the error stays one line)."""
    found = unsafe_character(value, allow)
    if found is None:
        return
    if allow:
        raise Refusal(f"{what} must not contain control characters (other than line breaks and tabs), line or "
                      f"paragraph separators or invisible format characters such as bidirectional controls "
                      f"(found {found})")
    raise Refusal(f"{what} must be one line without control characters, line or paragraph separators or "
                  f"invisible format characters such as bidirectional controls (found {found})")


def check_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise Refusal(f"{what} id {value!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def check_text(value: str, what: str, limit: int = 200) -> str:
    """A one-line human text (name, product): no control characters, so no header injection."""
    value = value.strip()
    if not value:
        raise Refusal(f"{what} must not be empty")
    refuse_unsafe(value, what)
    if len(value) > limit:
        raise Refusal(f"{what} is longer than {limit} characters")
    return value


def check_emails(values: list[str]) -> list[str]:
    if not values:
        raise Refusal("at least one --email is required")
    out: list[str] = []
    for value in values:
        try:
            address = normalize_address(value)
        except AddressError as exc:
            raise Refusal(f"invalid email address {exc}") from None
        if address not in out:
            out.append(address)
    return out


def check_locale(value: str) -> str:
    if value not in MAIL:
        raise Refusal(f"locale {value!r} is not one of {', '.join(MAIL)}")
    return value


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refusal(f"unknown time zone {value!r} (use a name such as Europe/Paris)") from None
    return value


@dataclass(frozen=True)
class AccountView:
    id: str
    kind: str
    name: str
    emails: tuple[str, ...]
    locale: str
    timezone: str

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "emails": list(self.emails),
                "locale": self.locale, "timezone": self.timezone}


def account_emails(session: Session, account_id: str) -> list[str]:
    rows = session.exec(
        select(AccountAddress).where(AccountAddress.account_id == account_id).order_by(col(AccountAddress.position))
    )
    return [row.address for row in rows]


def _view(session: Session, account: Account) -> AccountView:
    return AccountView(account.id, account.kind, account.name, tuple(account_emails(session, account.id)),
                       account.locale, account.timezone)


def add_account(
    app: App, account_id: str, kind: str, name: str, emails: list[str],
    locale: str | None = None, timezone: str | None = None,
) -> AccountView:
    check_id(account_id, "account")
    try:
        kind_value = AccountKind(kind)
    except ValueError:
        raise Refusal(f"account kind {kind!r} is not one of customer, isv, reseller") from None
    name = check_text(name, "name")
    addresses = check_emails(emails)
    locale = check_locale(locale or app.config.workflow.default_locale)
    timezone = check_timezone(timezone or app.config.workflow.default_timezone)
    with app.store.write() as session:
        if session.get(Account, account_id) is not None:
            raise Refusal(f"account {account_id!r} already exists (use `account update` to change it)")
        account = Account(id=account_id, kind=kind_value.value, name=name, locale=locale, timezone=timezone,
                          created_at=now())
        session.add(account)
        for position, address in enumerate(addresses):
            session.add(AccountAddress(account_id=account_id, address=address, position=position))
        session.flush()
        return _view(session, account)


def update_account(
    app: App, account_id: str, name: str | None = None, emails: list[str] | None = None,
    locale: str | None = None, timezone: str | None = None,
) -> AccountView:
    """Change an account. An open transfer keeps the addresses, language and time zone it was filed
    with (its parties were mailed there; `replace-contact` changes one, revoking the old token)."""
    name = check_text(name, "name") if name is not None else None
    addresses = check_emails(emails) if emails is not None else None
    locale = check_locale(locale) if locale is not None else None
    timezone = check_timezone(timezone) if timezone is not None else None
    if name is None and addresses is None and locale is None and timezone is None:
        raise Refusal("nothing to update: give --name, --email, --locale or --timezone")
    with app.store.write() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise Unknown(f"unknown account {account_id!r}")
        if name is not None:
            account.name = name
        if locale is not None:
            account.locale = locale
        if timezone is not None:
            account.timezone = timezone
        if addresses is not None:
            for row in session.exec(select(AccountAddress).where(AccountAddress.account_id == account_id)):
                session.delete(row)
            session.flush()
            for position, address in enumerate(addresses):
                session.add(AccountAddress(account_id=account_id, address=address, position=position))
        session.add(account)
        session.flush()
        return _view(session, account)


def list_accounts(app: App) -> list[AccountView]:
    with app.store.read() as session:
        return [_view(session, a) for a in session.exec(select(Account).order_by(col(Account.id)))]


def add_entitlement(
    app: App, entitlement_id: str, product: str, customer: str, isv: str, reseller: str | None = None
) -> Entitlement:
    check_id(entitlement_id, "entitlement")
    product = check_text(product, "product")
    with app.store.write() as session:
        if session.get(Entitlement, entitlement_id) is not None:
            raise Refusal(f"entitlement {entitlement_id!r} already exists")
        for account_id, kind, flag in ((customer, AccountKind.CUSTOMER, "--customer"), (isv, AccountKind.ISV, "--isv"),
                                       (reseller, AccountKind.RESELLER, "--reseller")):
            if account_id is None:
                continue
            account = session.get(Account, account_id)
            if account is None:
                raise Unknown(f"unknown account {account_id!r} ({flag})")
            if account.kind != kind.value:
                raise Refusal(f"account {account_id} is a {account.kind}, not a {kind.value} ({flag})")
        stamp = now()
        ent = Entitlement(id=entitlement_id, product=product, customer_id=customer, isv_id=isv,
                          reseller_id=reseller, state=EntitlementState.ACTIVE.value, created_at=stamp, updated_at=stamp)
        session.add(ent)
        return ent


def list_entitlements(app: App) -> list[Entitlement]:
    with app.store.read() as session:
        return list(session.exec(select(Entitlement).order_by(col(Entitlement.id))))
