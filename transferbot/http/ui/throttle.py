"""Sign-in attempts, limited per operator name and per client address, in this process's memory.

Guessing passwords is slowed by argon2 and stopped by this: within ``window`` seconds at most ``per_name``
failed attempts for one name (from anywhere) and ``per_client`` from one client address (whatever the
names) are checked; past either, an attempt is refused without a hash until the oldest failure is older
than the window. An attempt is counted *before* its password is checked (:meth:`SignInThrottle.reserve`), as
a failure until it is known otherwise, so that guesses sent all at once are limited exactly as guesses sent
one after the other: the hash takes a fraction of a second, and a count made after it would let every guess
of a burst through. A success then takes its attempt back and clears the name's earlier failures (not
those of attempts still being checked); an attempt that was never checked (the server was busy) is taken
back too. The counts are per daemon (several daemons each allow as many); behind a proxy every client has
the proxy's address, so the per-name limit is the one that counts there.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_KEYS = 10_000  # names and addresses remembered at once; the least recently seen are forgotten first


@dataclass(eq=False)
class Attempt:
    """One sign-in attempt, counted against its name and its client until it is settled."""

    name: str
    client: str
    at: float
    checking: bool = field(default=True)


class SignInThrottle:
    def __init__(self, per_name: int = 5, per_client: int = 20, window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_name, self.per_client, self.window, self.clock = per_name, per_client, window, clock
        self._by_name: OrderedDict[str, deque[Attempt]] = OrderedDict()
        self._by_client: OrderedDict[str, deque[Attempt]] = OrderedDict()

    def _recent(self, table: OrderedDict[str, deque[Attempt]], key: str, now: float,
                keep: bool = False) -> deque[Attempt]:
        """The attempts of ``key`` within the window (``keep``: remembered, to add one)."""
        attempts = table.get(key)
        if attempts is None:
            if not keep:
                return deque()
            attempts = table[key] = deque()
            while len(table) > MAX_KEYS:
                table.popitem(last=False)
        table.move_to_end(key)
        while attempts and attempts[0].at <= now - self.window:
            attempts.popleft()
        return attempts

    def reserve(self, name: str, client: str) -> Attempt | float:
        """Count an attempt for ``name`` from ``client`` now, before its password is checked; or, when one of
        the limits is reached, the seconds to wait (nothing is counted then)."""
        now, key = self.clock(), name.lower()
        by_name, by_client = self._recent(self._by_name, key, now), self._recent(self._by_client, client, now)
        waits = [attempts[0].at + self.window - now
                 for attempts, limit in ((by_name, self.per_name), (by_client, self.per_client))
                 if len(attempts) >= limit]
        if waits:
            return max(1.0, max(waits))
        attempt = Attempt(key, client, now)
        self._recent(self._by_name, key, now, keep=True).append(attempt)
        self._recent(self._by_client, client, now, keep=True).append(attempt)
        return attempt

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong (or the name unknown): the attempt stays counted, as a failure."""
        attempt.checking = False

    def succeeded(self, attempt: Attempt) -> None:
        """Signed in: the attempt is taken back, and so are the name's failures before it."""
        attempt.checking = False
        self._drop(self._by_client, attempt.client, lambda a: a is attempt)
        self._drop(self._by_name, attempt.name, lambda a: a is attempt or not a.checking)

    def release(self, attempt: Attempt) -> None:
        """The password was never checked (the server was busy): the attempt is taken back."""
        attempt.checking = False
        for table, key in ((self._by_name, attempt.name), (self._by_client, attempt.client)):
            self._drop(table, key, lambda a: a is attempt)

    @staticmethod
    def _drop(table: OrderedDict[str, deque[Attempt]], key: str, which: Callable[[Attempt], bool]) -> None:
        attempts = table.get(key)
        if attempts is not None:  # a key forgotten meanwhile (MAX_KEYS) has nothing left to take back
            table[key] = deque(a for a in attempts if not which(a))
