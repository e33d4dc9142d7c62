"""The timed side of the daemon: APScheduler says when, the database says what.

The sweep job runs every ``[workflow] sweep_seconds`` and once at start, so a
daemon that was down does on start what became due meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from transferbot.clock import now
from transferbot.service import sweep

if TYPE_CHECKING:
    from transferbot.daemon import Daemon

log = logging.getLogger(__name__)


def schedule_sweep(scheduler: AsyncIOScheduler, daemon: Daemon) -> None:
    async def run_sweep() -> None:
        """Each due transfer in a transaction of its own, through the writer, so that inbound
        mail is stored between them rather than after the whole sweep."""
        moment = now()
        started = time.perf_counter()
        done = 0
        try:
            seen: set[str] = set()
            while ids := await asyncio.to_thread(sweep.unseen_due, daemon.app, moment, seen):
                for transfer_id in ids:
                    if await daemon.writer.run(sweep.sweep_transfer, daemon.app, transfer_id, moment, True):
                        done += 1
                        daemon.dispatcher.poke(unrendered=True)
        except Exception:  # noqa: BLE001 - the next sweep tries again; nothing is lost
            log.exception("sweep failed; it runs again at the next interval")
            return
        elapsed = time.perf_counter() - started
        daemon.sweeps.append((elapsed, done))
        del daemon.sweeps[:-100]
        if done:
            log.info("sweep at %s: %d transfers acted on in %.3f s", moment.isoformat(), done, elapsed)

    scheduler.add_job(run_sweep, "interval", seconds=daemon.app.config.workflow.sweep_seconds, id="sweep",
                      next_run_time=now(), coalesce=True, max_instances=1,
                      misfire_grace_time=max(1, int(daemon.app.config.workflow.sweep_seconds)))
