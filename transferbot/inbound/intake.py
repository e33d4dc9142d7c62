"""What the SMTP edge hands over (an ``Arrival``), and its group commit: every message waiting goes in the
next transaction.

Sessions that finish DATA while a commit is under way are stored together in the next one, so
they share one commit and every 250 still follows its own message's commit. One message can never
fail the others: when a group's commit fails, each of its messages is stored again alone, and only
a message that fails on its own gets an error, its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

log = logging.getLogger(__name__)

GROUP_LIMIT = 200


@dataclass(frozen=True)
class Arrival:
    """One message as the SMTP session received it (envelope addresses already checked as UTF-8)."""

    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str
    received_at: datetime
    helo: str = ""


Commit = Callable[[Sequence[Arrival]], Awaitable[list[int]]]


class Unstorable(Exception):
    """This message, alone, cannot be stored: its content is what the database refuses."""


class GroupCommit:
    def __init__(self, commit: Commit) -> None:
        self.commit = commit
        self.waiting: list[tuple[Arrival, asyncio.Future[int]]] = []
        self.flushing = False

    async def store(self, arrival: Arrival) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.waiting.append((arrival, future))
        if not self.flushing:
            self.flushing = True
            asyncio.create_task(self._flush(), name="inbound-commit")
        return await future

    async def _flush(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[:GROUP_LIMIT], self.waiting[GROUP_LIMIT:]
                try:
                    ids = await self.commit([a for a, _ in batch])
                except Exception:  # noqa: BLE001 - the group failed: each message is stored alone
                    if len(batch) > 1:
                        log.warning("a group commit of %d messages failed; storing each alone", len(batch),
                                    exc_info=True)
                    await self._one_by_one(batch)
                    continue
                for (_arrival, future), inbound_id in zip(batch, ids, strict=True):
                    if not future.done():
                        future.set_result(inbound_id)
        finally:
            self.flushing = False

    async def _one_by_one(self, batch: list[tuple[Arrival, asyncio.Future[int]]]) -> None:
        for arrival, future in batch:
            if future.done():
                continue
            try:
                [inbound_id] = await self.commit([arrival])
            except (sa.exc.DataError, UnicodeError, ValueError) as exc:
                future.set_exception(Unstorable(f"{type(exc).__name__}: {exc}"))
            except Exception as exc:  # noqa: BLE001 - our trouble: that session answers 451
                future.set_exception(exc)
            else:
                future.set_result(inbound_id)
