"""Failed sign-ins, limited per operator name and per client address, in this process's memory.

Guessing passwords is slowed by argon2 and stopped by this: after ``per_name`` failed attempts for one name
within ``window`` seconds that name is refused (from anywhere), and after ``per_client`` failed attempts from
one client address (whatever the names) that address is refused, until the oldest failure is older than the
window. Successful sign-ins never count. The counts are per daemon (several daemons each allow as many);
behind a proxy every client has the proxy's address, so the per-name limit is the one that counts there.
A successful sign-in clears the name's failures.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 10_000  # names and addresses remembered at once; the least recently seen are forgotten first


class SignInThrottle:
    def __init__(self, per_name: int = 5, per_client: int = 20, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_name, self.per_client, self.window, self.clock = per_name, per_client, window, clock
        self._by_name: OrderedDict[str, deque[float]] = OrderedDict()
        self._by_client: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, table: OrderedDict[str, deque[float]], key: str, now: float, keep: bool = False) -> deque[float]:
        """The failures of ``key`` within the window (``keep``: remembered, to add one)."""
        stamps = table.get(key)
        if stamps is None:
            if not keep:
                return deque()
            stamps = table[key] = deque()
            while len(table) > MAX_KEYS:
                table.popitem(last=False)
        table.move_to_end(key)
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        return stamps

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until an attempt for ``name`` from ``client`` is allowed; 0 when it is."""
        now = self.clock()
        waits = [stamps[0] + self.window - now
                 for stamps, limit in ((self._recent(self._by_name, name.lower(), now), self.per_name),
                                       (self._recent(self._by_client, client, now), self.per_client))
                 if len(stamps) >= limit]
        return max(1.0, max(waits)) if waits else 0.0

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        self._recent(self._by_name, name.lower(), now, keep=True).append(now)
        self._recent(self._by_client, client, now, keep=True).append(now)

    def succeeded(self, name: str) -> None:
        self._by_name.pop(name.lower(), None)
