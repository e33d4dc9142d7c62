"""Lets the synchronous SPF and DKIM libraries, on a worker thread, ask the loop's async resolver.

pyspf and dkimpy make their own DNS calls, synchronously. They run on a
worker thread; each of their questions is handed to the event loop (where
the resolver, its cache and its timeouts live) and the thread waits for the
answer, never longer than the authentication's time budget. The loop itself
never waits for them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

from transferbot.inbound.senderauth.dns import DnsTemporaryError, Resolver


class DnsBridge:
    """A blocking ``lookup(name, rdtype)`` for worker threads, answered by ``resolver`` on ``loop``."""

    def __init__(self, resolver: Resolver, loop: asyncio.AbstractEventLoop, *, budget: float,
                 per_query: float) -> None:
        self.resolver = resolver
        self.loop = loop
        self.deadline = time.monotonic() + budget
        self.per_query = per_query
        self.asked = 0

    def lookup(self, name: str, rdtype: str) -> list[str]:
        """Ask the loop's resolver; DnsTemporaryError when it cannot answer in time."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise DnsTemporaryError(f"{name} {rdtype}: time budget for this authentication spent")
        self.asked += 1
        try:
            future = asyncio.run_coroutine_threadsafe(self.resolver.query(name, rdtype), self.loop)
        except RuntimeError as exc:  # the loop is closed: the daemon is stopping
            raise DnsTemporaryError(f"{name} {rdtype}: {exc}") from None
        try:
            return future.result(timeout=min(remaining, self.per_query))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DnsTemporaryError(f"{name} {rdtype}: no answer within {min(remaining, self.per_query):.3g}s") from None
        except concurrent.futures.CancelledError:
            raise DnsTemporaryError(f"{name} {rdtype}: cancelled") from None
