"""Leases on claimed work (an inbound message to read, a mail to deliver), given back all at once.

Only where one daemon runs (SQLite, which store.single_daemon() makes sure of): any lease found at
start is a previous run's, so its work is due again at once rather than when the lease runs out.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from transferbot.models import InboundMessage, OutboundMessage

TABLES: tuple[sa.Table, ...] = (InboundMessage.__table__, OutboundMessage.__table__)  # type: ignore[attr-defined]


def release_all(session: Session) -> int:
    """Clear every lease; returns how many there were."""
    taken = 0
    for table in TABLES:
        result = session.connection().execute(sa.update(table).where(table.c.lease_owner != "")
                                              .values(lease_owner="", lease_until=None))
        taken += result.rowcount or 0
    return taken
