"""When to authenticate a reply again after DNS trouble (``temperror``). Pure.

The first retry comes within 30 seconds (most DNS trouble is a lost packet
or a resolver restarting), then the wait doubles up to an hour: a reply
waits as long as it takes and is never counted unauthenticated, nor dropped.
"""

from __future__ import annotations

FIRST_SECONDS = 15.0
MAX_SECONDS = 3600.0


def retry_delay(attempt: int, *, first: float = FIRST_SECONDS, cap: float = MAX_SECONDS) -> float:
    """Seconds to wait before authentication attempt ``attempt + 1`` (``attempt`` counts from 1)."""
    return min(cap, first * float(2 ** max(0, min(attempt, 32) - 1)))
