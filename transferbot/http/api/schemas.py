"""The shapes the API takes and answers, for validation and for the OpenAPI document.

Request bodies are validated here (unknown fields refused, types checked), then by the service
layer as the CLI validates (its words in the problem's ``detail``). Response models only describe
what the service answers (``extra`` allowed where the record grows over time, as the audit trail
does); handlers return the service's JSON as it is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from transferbot.core.domain import AccountKind, Decision, EntitlementState, Role, TransferKind, TransferStatus
from transferbot.core.languages import Locale

NOTE_LIMIT, REASON_LIMIT, TEXT_LIMIT = 2000, 1000, 200  # as service.transfers, service.operator, service.registry
NO_CONTROLS = r"^[^\x00-\x1f\x7f]+$"  # an id: no control character (PostgreSQL cannot even store NUL)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- problems ------------------------------------------------------------------------------------------------

class FieldError(BaseModel):
    field: str = Field(description="the invalid field, dotted (`emails.0`), or a header's name")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (`application/problem+json`)."""

    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(description="what is wrong, in the CLI's words")
    errors: list[FieldError] | None = Field(default=None, description="for 422: the invalid fields")


# -- transfers ----------------------------------------------------------------------------------------------

class TransferRequest(_In):
    entitlement: str = Field(min_length=1, max_length=256, pattern=NO_CONTROLS, description="the entitlement to move")
    to_reseller: str | None = Field(min_length=1, max_length=256, pattern=NO_CONTROLS,
                                    description="the reseller account it goes to; null: direct")
    note: str = Field(default="", max_length=NOTE_LIMIT, description="shown to every party (may have several lines)")


class CancelRequest(_In):
    reason: str = Field(max_length=REASON_LIMIT, description="why, shown to every party")


class ResendRequest(_In):
    role: Role | None = Field(default=None, description="only this party (default: every party still to answer)")


class EntitlementNow(_Out):
    id: str
    product: str
    customer: str
    isv: str
    reseller: str | None
    state: EntitlementState


class Reply(_Out):
    inbound: int
    message_id: str
    from_: str = Field(alias="from")


OPERATOR_ONLY = "the operator's view only (an admin key)"


class PartyOut(_Out):
    role: Role
    account: str
    name: str
    email: str | None = Field(default=None, description="the first of `emails`: the operator's view, and the ISV's "
                                                        "for the ISV party itself")
    emails: list[str] = Field(default_factory=list, description="the addresses it was mailed at: the operator's "
                                                                "view, and the ISV's for the ISV party itself")
    undeliverable: list[dict[str, Any]] = Field(default_factory=list, description="as `emails`")
    decision: Decision
    decided_at: str | None
    reason: str | None
    reply: Reply | None = Field(default=None, description=OPERATOR_ONLY)
    locale: str | None = Field(default=None, description=OPERATOR_ONLY)
    timezone: str | None = Field(default=None, description=OPERATOR_ONLY)


class Transfer(_Out):
    """A transfer as a key sees it: the operator's view (`transferbot show --json` without reply tokens) or
    the ISV's (what its copy of the certificate shows, and its own addresses)."""

    audience: Literal["operator", "isv"] = Field(
        description="whose view: `operator` (an admin key, a webhook endpoint for every ISV) or `isv` (an ISV "
                    "key, an endpoint scoped to one ISV)")
    id: str
    kind: TransferKind
    status: TransferStatus
    note: str
    fingerprint: str
    created_at: str
    expires_at: str
    closed_at: str | None
    from_reseller: str | None
    to_reseller: str | None
    entitlement: EntitlementNow = Field(description="the entitlement as it stands now")
    parties: list[PartyOut]
    events: list[dict[str, Any]] = Field(description="the audit trail, in order: {seq, at, kind, …} (the ISV's "
                                                     "view: {seq, at, kind, hash})")
    inbound: list[dict[str, Any]] = Field(default_factory=list, description="mail received for the transfer, with "
                                                                            "its outcome; " + OPERATOR_ONLY)
    outbound: list[dict[str, Any]] = Field(default_factory=list, description="mail sent for the transfer, with its "
                                                                             "status; " + OPERATOR_ONLY)


class TransferSummary(_Out):
    """A transfer as `transferbot list --json` prints it."""

    id: str
    kind: TransferKind
    status: TransferStatus
    entitlement: str
    product: str
    from_reseller: str | None
    to_reseller: str | None
    created_at: str
    expires_at: str
    closed_at: str | None
    parties: dict[str, Decision] = Field(description="each role's decision")


class TransferPage(BaseModel):
    items: list[TransferSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last")


class Resent(BaseModel):
    id: str
    resent_to: list[Role] = Field(description="the parties mailed (those with a deliverable address)")


# -- the registry ----------------------------------------------------------------------------------------------

class AccountRequest(_In):
    kind: AccountKind
    name: str = Field(max_length=TEXT_LIMIT, description="as every party sees it (one line)")
    emails: list[str] = Field(min_length=1, max_length=100, description="any of them may answer for the account")
    locale: Locale | None = Field(
        default=None, description="the language of its mail; omitted: the default (new) or unchanged")
    timezone: str | None = Field(default=None, max_length=100,
                                 description="IANA name, e.g. Europe/Paris; omitted: the default (new) or unchanged")


class Account(BaseModel):
    id: str
    kind: AccountKind
    name: str
    emails: list[str]
    locale: str
    timezone: str


class AccountPage(BaseModel):
    items: list[Account]
    next_cursor: str | None


class EntitlementRequest(_In):
    product: str = Field(max_length=TEXT_LIMIT)
    customer: str = Field(min_length=1, max_length=256, pattern=NO_CONTROLS,
                          description="the customer account that bought it")
    isv: str = Field(min_length=1, max_length=256, pattern=NO_CONTROLS, description="the ISV account that sells it")
    reseller: str | None = Field(min_length=1, max_length=256, pattern=NO_CONTROLS,
                                 description="the reseller it is bought through; null: direct")
    state: EntitlementState = EntitlementState.ACTIVE


class Entitlement(BaseModel):
    id: str
    product: str
    customer: str
    isv: str
    reseller: str | None
    state: EntitlementState


class EntitlementPage(BaseModel):
    items: list[Entitlement]
    next_cursor: str | None
