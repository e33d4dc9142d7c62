"""DNS for sender authentication: one small async interface, a real resolver, a cache, a static one.

SPF, DKIM and DMARC all ask DNS the same few questions (TXT, A, AAAA, MX,
PTR). They ask through :class:`Resolver`, so the daemon can point them at
the operator's resolvers (or a test's loopback server), keep answers in a
bounded cache, and tell a temporary failure (timeout, SERVFAIL: try again
later) from a definite "no such record" (an answer like any other).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from transferbot.core.nameservers import DnsConfigError, parse_nameserver

log = logging.getLogger(__name__)

__all__ = ["CachingResolver", "DnsConfigError", "DnsPythonResolver", "DnsTemporaryError", "Resolver", "StaticResolver",
           "TtlResolver", "build_resolver", "normalize_name", "parse_nameserver"]

RDTYPES = ("TXT", "A", "AAAA", "MX", "PTR", "SPF")


class DnsTemporaryError(Exception):
    """The question could not be answered now (timeout, SERVFAIL, REFUSED, no server): ask again later."""


@runtime_checkable
class Resolver(Protocol):
    """Answers one DNS question: records as text, ``[]`` when there are none, DnsTemporaryError when unsure.

    TXT records come as one string per record (its character-strings joined),
    MX as ``"PREFERENCE EXCHANGE"``, A/AAAA as addresses, PTR as names, all
    names without the final dot.
    """

    async def query(self, name: str, rdtype: str) -> list[str]: ...


@runtime_checkable
class TtlResolver(Resolver, Protocol):
    """A resolver that also says how long its answer may be kept (seconds)."""

    async def query_with_ttl(self, name: str, rdtype: str) -> tuple[list[str], float | None]: ...


def normalize_name(name: str) -> str:
    """The comparable form of a domain name: lower case, no final dot."""
    return name.strip().rstrip(".").lower()


def _text(rdtype: str, rdata: object) -> str:
    if rdtype in ("TXT", "SPF"):
        return b"".join(rdata.strings).decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
    if rdtype in ("A", "AAAA"):
        return str(rdata.address)  # type: ignore[attr-defined]
    if rdtype == "MX":
        return f"{rdata.preference} {rdata.exchange.to_text(omit_final_dot=True).lower()}"  # type: ignore[attr-defined]
    if rdtype == "PTR":
        return str(rdata.target.to_text(omit_final_dot=True)).lower()  # type: ignore[attr-defined]
    return str(rdata.to_text())  # type: ignore[attr-defined]


class DnsPythonResolver:
    """Asks real DNS servers through dnspython's asyncio resolver.

    ``nameservers`` empty means the system's (resolv.conf). ``timeout`` bounds
    each question as a whole, retries included, so no caller waits longer.
    """

    def __init__(self, nameservers: Sequence[str] = (), timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._servers = [parse_nameserver(entry) for entry in nameservers]
        self._resolver: dns.asyncresolver.Resolver | None = None
        self.queries = 0

    def __repr__(self) -> str:
        where = ", ".join(f"{h}:{p}" for h, p in self._servers) or "system"
        return f"DnsPythonResolver({where}, timeout={self.timeout})"

    def _make(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            if self._servers:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port) for host, port in self._servers]
            else:
                try:
                    resolver = dns.asyncresolver.Resolver()
                except (dns.resolver.NoResolverConfiguration, OSError) as exc:
                    raise DnsTemporaryError(f"no system resolver configured: {exc}") from None
            resolver.lifetime = self.timeout
            resolver.timeout = min(self.timeout, 2.0)  # per attempt: a lost UDP datagram is retried
            resolver.retry_servfail = False
            self._resolver = resolver
        return self._resolver

    async def query(self, name: str, rdtype: str) -> list[str]:
        return (await self.query_with_ttl(name, rdtype))[0]

    async def query_with_ttl(self, name: str, rdtype: str) -> tuple[list[str], float | None]:
        rdtype = rdtype.upper()
        self.queries += 1
        try:
            qname = dns.name.from_text(normalize_name(name) + ".")
        except dns.exception.DNSException:
            return [], None  # not a DNS name: nothing can be published there
        resolver = self._make()
        try:
            answer = await resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
            return [], None
        except dns.exception.Timeout as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: timed out after {self.timeout:g}s") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: no server answered (SERVFAIL or REFUSED)") from exc
        except dns.exception.DNSException as exc:
            raise DnsTemporaryError(f"{name} {rdtype}: {exc.__class__.__name__}: {exc}") from exc
        except OSError as exc:  # e.g. network unreachable
            raise DnsTemporaryError(f"{name} {rdtype}: {exc}") from exc
        if answer.rrset is None:
            return [], None
        return [_text(rdtype, rdata) for rdata in answer.rrset], float(answer.rrset.ttl)


class StaticResolver:
    """Answers from a dictionary: for unit tests and the benchmark.

    ``records`` maps a name to ``{rdtype: [text, ...]}``. Names in
    ``temporary`` (mutable) raise DnsTemporaryError, as a dead server would.
    """

    def __init__(self, records: Mapping[str, Mapping[str, Sequence[str]]] | None = None, *,
                 temporary: Iterable[str] = (), ttl: float = 300.0) -> None:
        self.records: dict[str, dict[str, list[str]]] = {}
        for name, by_type in (records or {}).items():
            for rdtype, values in by_type.items():
                self.add(name, rdtype, *values)
        self.temporary = {normalize_name(name) for name in temporary}
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault(normalize_name(name), {}).setdefault(rdtype.upper(), []).extend(values)

    def remove(self, name: str) -> None:
        self.records.pop(normalize_name(name), None)

    async def query(self, name: str, rdtype: str) -> list[str]:
        return (await self.query_with_ttl(name, rdtype))[0]

    async def query_with_ttl(self, name: str, rdtype: str) -> tuple[list[str], float | None]:
        key = normalize_name(name)
        self.queries.append((key, rdtype.upper()))
        if key in self.temporary:
            raise DnsTemporaryError(f"{name} {rdtype}: SERVFAIL (static)")
        values = list(self.records.get(key, {}).get(rdtype.upper(), []))
        return values, (self.ttl if values else None)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0


@dataclass
class _Entry:
    values: list[str]
    expires: float


class CachingResolver:
    """A bounded LRU cache with TTLs around any resolver.

    Answers are kept for their TTL (capped at ``max_ttl``); empty answers for
    ``negative_ttl``; temporary errors are never kept, so the next try asks
    again. Concurrent identical questions share one upstream query.
    """

    def __init__(self, inner: Resolver, *, max_entries: int = 4096, max_ttl: float = 3600.0,
                 negative_ttl: float = 60.0, default_ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.max_entries = max_entries
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.default_ttl = default_ttl
        self.clock = clock
        self.stats = CacheStats()
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[list[str]]] = {}

    def __repr__(self) -> str:
        return f"CachingResolver({self.inner!r}, {len(self._entries)}/{self.max_entries} entries)"

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    async def query(self, name: str, rdtype: str) -> list[str]:
        key = (normalize_name(name), rdtype.upper())
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires > self.clock():
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return list(entry.values)
            del self._entries[key]
        pending = self._inflight.get(key)
        if pending is None:
            self.stats.misses += 1
            pending = asyncio.ensure_future(self._fetch(key))
            self._inflight[key] = pending
            pending.add_done_callback(self._done)
        else:
            self.stats.hits += 1
        return list(await asyncio.shield(pending))

    def _done(self, future: asyncio.Future[list[str]]) -> None:
        for key, pending in list(self._inflight.items()):
            if pending is future:
                del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved here, so a failure nobody still awaits is not reported as lost

    async def _fetch(self, key: tuple[str, str]) -> list[str]:
        name, rdtype = key
        try:
            if isinstance(self.inner, TtlResolver):
                values, ttl = await self.inner.query_with_ttl(name, rdtype)
            else:
                values, ttl = await self.inner.query(name, rdtype), None
        except DnsTemporaryError:
            self.stats.errors += 1
            raise
        keep = (min(ttl if ttl is not None else self.default_ttl, self.max_ttl) if values
                else self.negative_ttl)
        if keep > 0:
            self._entries[key] = _Entry(list(values), self.clock() + keep)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return values


def build_resolver(nameservers: Sequence[str] = (), timeout: float = 5.0, *,
                   max_entries: int = 4096) -> CachingResolver:
    """The resolver the daemon uses: dnspython to the given servers (or the system's), cached."""
    return CachingResolver(DnsPythonResolver(nameservers, timeout), max_entries=max_entries)
