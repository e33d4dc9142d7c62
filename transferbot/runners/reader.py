"""The reader worker: claims unread messages, reads them off the loop, applies the verdicts in order.

Messages are claimed a batch at a time under a lease, so with several daemons each is read by one;
the reading (parsing, finding the fresh text) is pure and runs on a worker thread; the verdicts of
a batch are applied in one transaction. On start it catches up with what was stored but not read,
and the messages of a daemon that died are taken once their lease has run out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from transferbot.app import arrivals, replies
from transferbot.app.context import App
from transferbot.core.addresses import AddressBook
from transferbot.core.clock import now
from transferbot.inbound.authenticator import Authenticator
from transferbot.inbound.reader.reading import Reading, read_message

if TYPE_CHECKING:
    from transferbot.inbound.senderauth import AuthOutcome

log = logging.getLogger(__name__)

BATCH = 10


class ReadLoop:
    def __init__(self, app: App, owner: str, on_applied: Callable[[], None], authenticator: Authenticator) -> None:
        self.app, self.owner, self.on_applied, self.authenticator = app, owner, on_applied, authenticator
        self.wake = asyncio.Event()
        self.stopping = False
        self.backlog = False
        self.taken_over = 0
        self.read = 0
        self.deferred = 0  # authentications that met DNS trouble

    def poke(self) -> None:
        self.wake.set()

    async def run(self) -> None:
        lease = self.app.config.database.lease_seconds
        poll = self.app.config.database.poll_seconds
        while not self.stopping:
            self.wake.clear()
            try:
                batch = await self.app.store.transact(arrivals.claim_unread, self.owner, now(), lease, BATCH)
            except Exception:  # noqa: BLE001 - a busy database is tried again shortly
                log.exception("reader: cannot claim unread messages; trying again")
                batch = []
            self.backlog = len(batch) == BATCH
            if batch:
                self.taken_over += sum(s.taken_over for s in batch)
                await self.read_batch(batch)
                continue
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=poll)

    async def _authenticate(self, stored: arrivals.Stored, reading: Reading | str) -> AuthOutcome | None:
        if isinstance(reading, str):
            return None
        try:
            return await self.authenticator.check(stored.raw, reading, mail_from=stored.mail_from,
                                                  client_ip=stored.peer, helo=stored.helo)
        except Exception as exc:  # noqa: BLE001 - a fault of ours: the message waits and is tried again
            log.exception("inbound #%s: sender authentication raised", stored.id)
            from transferbot.inbound.senderauth import AuthOutcome as Outcome

            return Outcome("temperror", why=f"authentication raised {type(exc).__name__}: {exc}")

    async def read_batch(self, batch: list[arrivals.Stored]) -> None:
        readings = await asyncio.to_thread(lambda: [read_stored(self.app.book, s) for s in batch])
        auths = await asyncio.gather(*(self._authenticate(s, r) for s, r in zip(batch, readings, strict=True)))
        items: list[replies.Item] = []
        waiting: list[tuple[int, AuthOutcome, int]] = []
        for stored, reading, auth in zip(batch, readings, auths, strict=True):
            if auth is not None and auth.temporary:
                waiting.append((stored.id, auth, stored.auth_tries))
            else:
                items.append((stored.id, reading, auth))
        try:
            await self.app.store.transact(_record, self.app, items, waiting, now())
        except Exception:  # noqa: BLE001 - rolled back: the messages stay unread and leased; read again later
            log.exception("reader: could not record %d read messages; they are read again", len(batch))
            await asyncio.sleep(1.0)
            return
        self.read += len(items)
        self.deferred += len(waiting)
        self.on_applied()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()


def read_stored(book: AddressBook, stored: arrivals.Stored) -> Reading | str:
    """The pure reading of a stored message (the reader's own parser, no database), or the reason it could not
    be read: the message is then recorded as failed, never dropped."""
    try:
        return read_message(stored.raw, stored.mail_from, list(stored.rcpt_tos), book)
    except Exception as exc:  # noqa: BLE001 - recorded as failed, never dropped
        log.exception("inbound #%s: reading raised", stored.id)
        return f"{type(exc).__name__}: {exc}"


def _record(session: Session, app: App, items: list[replies.Item], waiting: list[tuple[int, AuthOutcome, int]],
            moment: datetime) -> list[str]:
    """The verdicts of a batch, and the messages that wait for DNS, in one transaction."""
    outcomes = replies.apply_batch(session, app, items)
    first = app.config.inbound.dns_retry_seconds
    return outcomes + [replies.defer(session, inbound_id, auth, tries, moment, first)
                       for inbound_id, auth, tries in waiting]
