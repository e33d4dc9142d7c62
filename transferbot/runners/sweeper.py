"""The timed side of the daemon: APScheduler says when, the database says what.

The sweep job runs every ``[workflow] sweep_seconds`` and once at start, so a daemon that was down
does on start what became due meanwhile. Each batch of due transfers is a transaction of its own,
so inbound mail is stored between batches rather than after the whole sweep; with several daemons,
each batch takes transfers no other daemon holds (sweep.sweep_batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from transferbot.app import sweep
from transferbot.app.context import App
from transferbot.core.clock import now

log = logging.getLogger(__name__)


@dataclass
class SweepStats:
    recent: list[tuple[float, int]] = field(default_factory=list)  # (seconds, transfers acted on)
    on_sweep: Callable[[float, int], None] | None = None  # told of each sweep (metrics)


async def run_sweep(app: App, on_acted: Callable[[], None], stats: SweepStats) -> int:
    """One sweep at this moment; returns how many transfers were acted on."""
    moment = now()
    started = time.perf_counter()
    done = 0
    seen: set[str] = set()
    try:
        while True:
            swept = await app.store.transact(sweep.sweep_batch, app, moment, sweep.BATCH, frozenset(seen))
            seen.update(swept.looked_at)
            done += swept.acted
            if swept.acted:
                on_acted()
            if len(swept.looked_at) < sweep.BATCH:
                break
    except Exception:  # noqa: BLE001 - the next sweep tries again; nothing is lost
        log.exception("sweep failed; it runs again at the next interval")
        return done
    elapsed = time.perf_counter() - started
    stats.recent.append((elapsed, done))
    del stats.recent[:-100]
    if stats.on_sweep is not None:
        stats.on_sweep(elapsed, done)
    if done:
        log.info("sweep at %s: %d transfers acted on in %.3f s", moment.isoformat(), done, elapsed)
    return done


def schedule_sweep(scheduler: AsyncIOScheduler, app: App, on_acted: Callable[[], None], stats: SweepStats) -> None:
    seconds = app.config.workflow.sweep_seconds

    async def job() -> None:
        await run_sweep(app, on_acted, stats)

    scheduler.add_job(job, "interval", seconds=seconds, id="sweep", next_run_time=now(), coalesce=True,
                      max_instances=1, misfire_grace_time=max(1, int(seconds)))
