"""The timed side of the daemon: APScheduler says when, the database says what.

The sweep job runs every ``[workflow] sweep_seconds`` and once at start, so a
daemon that was down does on start what became due meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from transferbot.clock import now
from transferbot.service import sweep

if TYPE_CHECKING:
    from transferbot.daemon import Daemon

log = logging.getLogger(__name__)


def schedule_sweep(scheduler: AsyncIOScheduler, daemon: Daemon) -> None:
    async def run_sweep() -> None:
        try:
            done = await asyncio.to_thread(sweep.sweep, daemon.app, now())
        except Exception:  # noqa: BLE001 - the next sweep tries again; nothing is lost
            log.exception("sweep failed; it runs again at the next interval")
            return
        if done:
            daemon.dispatcher.poke()

    scheduler.add_job(run_sweep, "interval", seconds=daemon.app.config.workflow.sweep_seconds, id="sweep",
                      next_run_time=now(), coalesce=True, max_instances=1,
                      misfire_grace_time=max(1, int(daemon.app.config.workflow.sweep_seconds)))
