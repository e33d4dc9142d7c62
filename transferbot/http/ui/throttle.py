"""Sign-in attempts, limited per operator name and per client address, in this process's memory.

Guessing passwords is slowed by argon2 and stopped by this: after ``per_name`` failed attempts for one name
within ``window`` seconds that name is refused (from anywhere) until the oldest failure is older than the
window, and one client address gets ``per_client`` attempts of any kind in the window. The counts are per
daemon (several daemons each allow as many); behind a proxy every client has the proxy's address, so the
per-name limit is the one that counts there. A successful sign-in clears the name's failures.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_KEYS = 10_000  # names and addresses remembered at once; the least recently seen are forgotten first


class SignInThrottle:
    def __init__(self, per_name: int = 5, per_client: int = 30, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_name, self.per_client, self.window, self.clock = per_name, per_client, window, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, table: OrderedDict[str, deque[float]], key: str, now: float) -> deque[float]:
        stamps = table.get(key)
        if stamps is None:
            stamps = table[key] = deque()
            while len(table) > MAX_KEYS:
                table.popitem(last=False)
        table.move_to_end(key)
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        return stamps

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until an attempt for ``name`` from ``client`` is allowed; 0 when it is. Counts the attempt."""
        now = self.clock()
        failures = self._recent(self._failures, name.lower(), now)
        attempts = self._recent(self._attempts, client, now)
        waits = []
        if len(failures) >= self.per_name:
            waits.append(failures[0] + self.window - now)
        if len(attempts) >= self.per_client:
            waits.append(attempts[0] + self.window - now)
        if waits:
            return max(1.0, max(waits))
        attempts.append(now)
        return 0.0

    def failed(self, name: str) -> None:
        self._recent(self._failures, name.lower(), self.clock()).append(self.clock())

    def succeeded(self, name: str) -> None:
        self._failures.pop(name.lower(), None)
