"""What the reader's checks may ask of the database: read-only lookups behind reader.chain.Lookup."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from transferbot.app.context import App
from transferbot.app.effects.facts import addresses_of
from transferbot.core.domain import Decision, InboxState, Outcome, TransferStatus
from transferbot.core.tokens import check_token
from transferbot.inbound.reader.chain import OutboundInfo, PartyInfo
from transferbot.inbound.reader.details import TransferNames
from transferbot.store.models import Event, InboundMessage, OutboundMessage, Party, RevokedToken, Transfer, table_of

_EARLIER = (select(InboundMessage.id).where(InboundMessage.state == InboxState.DONE,
                                           InboundMessage.outcome != Outcome.DUPLICATE.value,
                                           col(InboundMessage.id) != sa.bindparam("me"))
            .order_by(col(InboundMessage.id)).limit(1))
_EARLIER_BY_ID = _EARLIER.where(InboundMessage.message_id == sa.bindparam("message_id"))
_EARLIER_BY_DIGEST = _EARLIER.where(InboundMessage.digest == sa.bindparam("digest"), InboundMessage.message_id == "")
_PARTY_BY_TOKEN = select(Party).where(Party.token == sa.bindparam("token"))
_OM = table_of(OutboundMessage)
_OUTBOUND = sa.select(_OM.c.id, _OM.c.transfer_id, _OM.c.party_id, _OM.c.recipients, _OM.c.kind).limit(1)
_OUTBOUND_BY_KEY = _OUTBOUND.where(_OM.c.key == sa.bindparam("key"))
_OUTBOUND_BY_ID = _OUTBOUND.where(_OM.c.message_id == sa.bindparam("message_id"))
_EV = table_of(Event)
_REQUESTED = (sa.select(_EV.c.data).where(_EV.c.transfer_id == sa.bindparam("transfer_id"), _EV.c.kind == "requested")
              .order_by(_EV.c.seq).limit(1))


class DbLookup:
    """The chain's read-only view of the database, inside the caller's transaction."""

    def __init__(self, app: App, session: Session, inbound_id: int | None) -> None:
        self.app, self.session, self.inbound_id = app, session, inbound_id
        # The session's identity map holds rows weakly: the transfers looked up are held here, so that
        # acting on the verdict while this lookup lives finds them loaded rather than reading them again.
        self._held: list[Transfer] = []

    def earlier_copy(self, message_id: str, digest: str) -> int | None:
        me = self.inbound_id if self.inbound_id is not None else 0  # ids start at 1
        if message_id:
            return self.session.exec(_EARLIER_BY_ID, params={"me": me, "message_id": message_id}).first()
        return self.session.exec(_EARLIER_BY_DIGEST, params={"me": me, "digest": digest}).first()

    def _info(self, party: Party, revoked: bool = False) -> PartyInfo:
        transfer = self.session.get(Transfer, party.transfer_id)
        assert transfer is not None
        self._held.append(transfer)
        addresses = tuple(a.address for a in addresses_of(self.session, party.id or 0))
        return PartyInfo(party.id or 0, party.transfer_id, party.role, addresses, Decision(party.decision),
                         TransferStatus(transfer.status), revoked)

    def party_by_token(self, token: str) -> PartyInfo | None:
        token = token.lower()
        party = self.session.exec(_PARTY_BY_TOKEN, params={"token": token}).first()
        if party is not None:
            return self._info(party)
        revoked = self.session.get(RevokedToken, token)
        if revoked is not None:
            old = self.session.get(Party, revoked.party_id)
            return self._info(old, revoked=True) if old else None
        return None

    def party_by_thread(self, message_ids: Sequence[str]) -> PartyInfo | None:
        for message_id in message_ids:
            row = self.session.connection().execute(_OUTBOUND_BY_ID, {"message_id": message_id}).first()
            if row is not None and row.party_id is not None:
                party = self.session.get(Party, row.party_id)
                if party is not None:
                    info = self._info(party)
                    # a thread to mail sent before the contact was replaced does not name the new contact
                    if not set(row.recipients) & set(info.addresses):
                        return PartyInfo(**{**info.__dict__, "revoked": True})
                    return info
        return None

    def outbound(self, keys: Sequence[str], message_ids: Sequence[str]) -> OutboundInfo | None:
        row = None
        conn = self.session.connection()
        for key in keys:
            row = conn.execute(_OUTBOUND_BY_KEY, {"key": key.lower()}).first()
            if row:
                break
        if row is None:
            for message_id in message_ids:
                row = conn.execute(_OUTBOUND_BY_ID, {"message_id": message_id}).first()
                if row:
                    break
        if row is None or row.id is None:
            return None
        return OutboundInfo(row.id, row.transfer_id, row.party_id, tuple(row.recipients), row.kind)

    def token_is_ours(self, token: str) -> bool:
        return check_token(self.app.secret, token)

    def is_own_address(self, address: str) -> bool:
        return address == self.app.config.from_address or self.app.book.is_ours(address)

    def transfer_names(self, transfer_id: str) -> TransferNames | None:
        """The names in the transfer's fingerprinted details (its 'requested' event): what every party
        was shown, and what an approval's stated details are compared with."""
        data = self.session.connection().execute(_REQUESTED, {"transfer_id": transfer_id}).scalar()
        if not isinstance(data, dict):
            return None
        by_role = {p.get("role"): str(p.get("name") or "") for p in data.get("parties") or [] if isinstance(p, dict)}
        return TransferNames(kind=str(data.get("transfer_kind") or ""), product=str(data.get("product") or ""),
                             customer=str(data.get("customer") or ""), isv=str(data.get("isv") or ""),
                             from_reseller=by_role.get("current-reseller", "") if data.get("from_reseller") else "",
                             to_reseller=by_role.get("new-reseller", "") if data.get("to_reseller") else "")
