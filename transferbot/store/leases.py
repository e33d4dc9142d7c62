"""Leases on claimed work (an inbound message to read, a mail or a webhook to deliver), given back all at once.

Only where one daemon runs (SQLite, which store.single_daemon() makes sure of): any lease found at
start is a previous run's, so its work is due again at once rather than when the lease runs out.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session

from transferbot.store.models import InboundMessage, OutboundMessage, WebhookDelivery, table_of

TABLES: dict[str, sa.Table] = {"inbound": table_of(InboundMessage),
                               "outbox": table_of(OutboundMessage),
                               "webhooks": table_of(WebhookDelivery)}


def release_all(session: Session) -> dict[str, int]:
    """Clear every lease; returns how many there were, by kind of work."""
    taken: dict[str, int] = {}
    for work, table in TABLES.items():
        result = session.connection().execute(sa.update(table).where(table.c.lease_owner != "")
                                              .values(lease_owner="", lease_until=None))
        taken[work] = result.rowcount or 0
    return taken
