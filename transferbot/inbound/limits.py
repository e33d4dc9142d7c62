"""Guards against a hostile or broken sender: per-client connections, per-sender message rates.

Plain in-memory counters with the time passed in, owned by the one event
loop of the daemon (no locking needed).
"""

from __future__ import annotations

from collections import defaultdict, deque


class ConnectionCounter:
    """Concurrent sessions per client address."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = defaultdict(int)

    def admit(self, client: str) -> bool:
        if self.limit and self.open[client] >= self.limit:
            return False
        self.open[client] += 1
        return True

    def release(self, client: str) -> None:
        if self.open.get(client, 0) <= 1:
            self.open.pop(client, None)
        else:
            self.open[client] -= 1


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self.events: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        if not self.limit:
            return True
        times = self.events.get(key)
        if times is None:
            if len(self.events) >= self.max_keys:
                self._forget(now)
            times = self.events[key] = deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    def _forget(self, now: float) -> None:
        for key in [k for k, t in self.events.items() if not t or t[-1] <= now - self.window]:
            del self.events[key]
