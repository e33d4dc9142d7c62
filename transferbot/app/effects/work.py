"""A use case's unit of work: what its changes append, remember and write, held by one object.

A change appends audit events (each chained to the head before it) and queues mail rows (sharing a
snapshot per change); it reads accounts' names and the active webhook endpoints again and again.
The ``Work`` holds all of that for the use case that created it, and writes what was appended with
one statement per table (``flush``): at the end of each change, or, for a ``deferred`` Work (the
sweep's batch, the reader's), once when the batch ends. Two Works share nothing, even on one session.

A Work lives no longer than its transaction: the heads it remembers are valid because the
transaction holds the transfers' locks, and the names and endpoints because a use case that changes
an account or an endpoint does not apply changes after it in the same Work. Should a batch raise,
its savepoint is rolled back and ``forget`` drops what the Work appended and did not write (or the
Work is simply dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from transferbot.store.models import Event, MailSnapshot, OutboundMessage, table_of

if TYPE_CHECKING:
    from transferbot.app.webhooks import ActiveEndpoint

Head = tuple[int, str, datetime | None]  # a transfer's last event: its seq, its hash, its time (None: no event)

_INSERT_EVENTS = sa.insert(table_of(Event))
_SNAPSHOTS = table_of(MailSnapshot)
_INSERT_SNAPSHOT = sa.insert(_SNAPSHOTS).returning(_SNAPSHOTS.c.id)
_INSERT_SNAPSHOTS = sa.insert(_SNAPSHOTS).returning(_SNAPSHOTS.c.id, sort_by_parameter_order=True)
_INSERT_OUTBOX = sa.insert(table_of(OutboundMessage))


@dataclass(eq=False)
class PendingSnapshot:
    """A mail snapshot to write; its id once written (the rows that share it take it then)."""

    row: dict[str, Any]
    id: int | None = None


class Work:
    """The unit of work of one use case on one session (see the module)."""

    def __init__(self, session: Session, *, deferred: bool = False) -> None:
        self.session = session
        # True: the changes applied leave their events and mail for ``flush`` (a statement per table for
        # the whole batch); False: each change's are written when it is applied.
        self.deferred = deferred
        self.heads: dict[str, Head] = {}  # the chain heads of the transfers this Work appends to
        self.events: list[dict[str, Any]] = []  # event rows appended, not yet written
        self.mail: list[tuple[PendingSnapshot | None, dict[str, Any]]] = []  # outbox rows queued, with their snapshot
        self.names: dict[str, str] = {}  # accounts' names by id (facts.account_names)
        self.endpoints: list[ActiveEndpoint] | None = None  # the active webhook endpoints, read at first use

    def write_events(self) -> int:
        """Write the events appended and not yet written, in one statement; returns how many."""
        pending, self.events = self.events, []
        if pending:
            self.session.connection().execute(_INSERT_EVENTS, pending)
        return len(pending)

    def write_mail(self) -> int:
        """Write the outbox rows queued and not yet written (their snapshots first, in one statement each);
        returns how many rows."""
        pending, self.mail = self.mail, []
        if not pending:
            return 0
        conn = self.session.connection()
        new = list({id(snap): snap for snap, _row in pending if snap is not None and snap.id is None}.values())
        if len(new) == 1:
            new[0].id = conn.execute(_INSERT_SNAPSHOT, new[0].row).scalar_one()
        elif new:
            for snap, snap_id in zip(new, conn.execute(_INSERT_SNAPSHOTS, [s.row for s in new]).scalars(), strict=True):
                snap.id = int(snap_id)
        conn.execute(_INSERT_OUTBOX, [{**row, "snapshot_id": snap.id if snap else None} for snap, row in pending])
        return len(pending)

    def flush(self) -> None:
        """Write everything appended and not yet written: events, then mail."""
        self.write_events()
        self.write_mail()

    def forget(self) -> None:
        """Drop what was appended and not written, and the chain heads, which may name events a rolled-back
        savepoint took with it. The names and endpoints stay: a change does not alter them."""
        self.heads.clear()
        self.events.clear()
        self.mail.clear()
