"""When to try a webhook delivery again, and when to give up: pure functions of counts and times (the
waits are core.backoff's).

The schedule the Standard Webhooks spec recommends in spirit: retries soon after a blip, then
further and further apart, spanning days. Here 5 s, doubling, each wait capped at 6 h, with up to
10 % jitter added (so that endpoints that failed together are not retried in lock-step), until the
event is 3 days old. The last attempt is made at the 3-day mark itself, not skipped because the
next doubling would overshoot it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from transferbot.core.backoff import backoff

FIRST_DELAY = timedelta(seconds=5)
FACTOR = 2.0
MAX_DELAY = timedelta(hours=6)
MAX_AGE = timedelta(hours=72)
JITTER = 0.1


def retry_delay(attempts: int, *, first: timedelta = FIRST_DELAY, factor: float = FACTOR,
                cap: timedelta = MAX_DELAY, jitter: float = JITTER,
                rand: Callable[[], float] = random.random) -> timedelta:
    """The wait after ``attempts`` failed attempts: first·factor^(attempts-1), capped, plus 0..jitter of it.

    ``rand`` returns a number in [0, 1); tests pass ``lambda: 0.0`` for the bare schedule.
    """
    return timedelta(seconds=backoff(attempts, first.total_seconds(), cap.total_seconds(), factor=factor,
                                     jitter=jitter, rand=rand))


def next_attempt(attempts: int, first_at: datetime, now: datetime, *, retry_after: float | None = None,
                 max_age: timedelta = MAX_AGE, first: timedelta = FIRST_DELAY, factor: float = FACTOR,
                 cap: timedelta = MAX_DELAY, jitter: float = JITTER,
                 rand: Callable[[], float] = random.random) -> datetime | None:
    """When to make attempt ``attempts + 1``, after ``attempts`` failures; None to give up.

    ``first_at`` is when the event was queued (its age decides the giving up); ``now`` when the
    last attempt ended. ``retry_after`` (seconds, from the receiver's Retry-After) can only push
    the next attempt later, and never past the cap nor past the give-up time.
    """
    if first_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("first_at and now must be timezone-aware")
    deadline = first_at + max_age
    if now >= deadline:
        return None
    delay = retry_delay(attempts, first=first, factor=factor, cap=cap, jitter=jitter, rand=rand)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(timedelta(seconds=retry_after), cap))
    return min(now + delay, deadline)
