"""What the two dispatchers (mail and webhooks) share: stopping their workers without losing a claim."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import TypeVar

T = TypeVar("T")


async def stop_workers(queue: asyncio.Queue[T], id_of: Callable[[T], int],
                       release: Callable[[list[int]], Awaitable[object]], workers: Sequence[asyncio.Task[None]],
                       timeout: float) -> None:
    """Give back what was claimed and not started (due again at once for any daemon), let what started
    finish (up to ``timeout`` seconds), then end the workers. The caller writes the results left after."""
    unsent = []
    while not queue.empty():
        unsent.append(id_of(queue.get_nowait()))
        queue.task_done()
    if unsent:
        with suppress(Exception):  # not given back: the leases run out and another daemon takes them
            await release(unsent)
    with suppress(asyncio.TimeoutError):
        await asyncio.wait_for(queue.join(), timeout=timeout)
    for task in workers:
        task.cancel()
    for task in workers:
        with suppress(asyncio.CancelledError):
            await task
