"""The one backoff: how long to wait after failed attempts, for mail, webhooks and DNS trouble alike. Pure.

``first`` seconds after the first failure, multiplied by ``factor`` after each further one, never more than
``cap``, plus up to ``jitter`` of itself at random (so that work that failed together is not retried in
lock-step). What differs between queues is their numbers and when they give up, not this arithmetic.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_MAX_DOUBLINGS = 64  # past this every wait is the cap; keeps the power finite for absurd attempt counts


def backoff(attempts: int, first: float, cap: float, *, factor: float = 2.0, jitter: float = 0.0,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``attempts`` failed attempts (at least 1): first·factor^(attempts-1), capped, plus
    0..jitter of it. ``rand`` returns a number in [0, 1); pass ``lambda: 0.0`` for the bare schedule."""
    if attempts < 1:
        raise ValueError("attempts counts the attempts made so far, at least 1")
    seconds = min(cap, first * factor ** min(attempts - 1, _MAX_DOUBLINGS))
    return seconds * (1.0 + jitter * rand()) if jitter else seconds
