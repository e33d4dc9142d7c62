"""The resolver layer: the cache (TTL, negative answers, temporary errors, LRU bound, shared questions), the
static resolver, nameserver entries, and DMARC record discovery."""

from __future__ import annotations

import asyncio

import pytest

from tests.dnsserver import DnsServer
from tests.mailauth import publish_key, reply, sign
from transferbot.core.nameservers import DnsConfigError, parse_nameserver
from transferbot.inbound.senderauth import (
    CachingResolver,
    DnsPythonResolver,
    DnsTemporaryError,
    StaticResolver,
    authenticate,
)
from transferbot.inbound.senderauth.dmarc import discover, parse_record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_second_authentication_is_answered_from_the_cache_until_the_ttl_expires() -> None:
    static = StaticResolver({"acme.example": {"TXT": ["v=spf1 ip4:192.0.2.25 -all"]}}, ttl=300)
    clock = Clock()
    cache = CachingResolver(static, clock=clock, negative_ttl=30)

    async def once() -> str:
        outcome = await authenticate(reply(), mail_from="alice@acme.example", client_ip="192.0.2.25",
                                     helo="mail.acme.example", from_domain="acme.example", resolver=cache)
        return outcome.result

    assert asyncio.run(once()) == "pass"
    asked = len(static.queries)
    assert asked >= 2  # the SPF record and the DMARC record (none)
    assert asyncio.run(once()) == "pass"
    assert len(static.queries) == asked and cache.stats.hits >= asked
    clock.now += 31  # negative answers (no DMARC record) expire first
    asyncio.run(once())
    assert set(static.queries[asked:]) == {("_dmarc.acme.example", "TXT")}
    clock.now += 300  # then the SPF record
    asyncio.run(once())
    assert ("acme.example", "TXT") in static.queries[asked + 1:]


def test_temporary_errors_are_not_cached() -> None:
    static = StaticResolver({"acme.example": {"TXT": ["x"]}}, temporary=["acme.example"])
    cache = CachingResolver(static)

    async def ask() -> list[str]:
        return await cache.query("acme.example", "TXT")

    with pytest.raises(DnsTemporaryError):
        asyncio.run(ask())
    static.temporary.clear()
    assert asyncio.run(ask()) == ["x"]
    assert cache.stats.errors == 1 and len(static.queries) == 2


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    static = StaticResolver({f"d{i}.example": {"A": [f"192.0.2.{i}"]} for i in range(5)})
    cache = CachingResolver(static, max_entries=3)

    async def run() -> None:
        for i in range(4):
            await cache.query(f"d{i}.example", "A")
        await cache.query("d1.example", "A")  # d0 was evicted, d1 is still there
        await cache.query("d0.example", "A")

    asyncio.run(run())
    assert len(cache) == 3
    assert static.queries.count(("d0.example", "A")) == 2 and static.queries.count(("d1.example", "A")) == 1


def test_concurrent_identical_questions_share_one_query(dns_server: DnsServer) -> None:
    dns_server.txt("acme.example", "hello")
    cache = CachingResolver(DnsPythonResolver([dns_server.address], timeout=1.0))

    async def run() -> list[list[str]]:
        return await asyncio.gather(*(cache.query("acme.example", "TXT") for _ in range(10)))

    assert asyncio.run(run()) == [["hello"]] * 10
    assert dns_server.asked("acme.example", "TXT") == 1


def test_the_dnspython_resolver_reports_trouble_as_temporary(dns_server: DnsServer) -> None:
    dns_server.fault("slow.example", "drop")
    dns_server.fault("broken.example", "servfail")
    dns_server.add("acme.example", "MX", "10 mx.acme.example")
    resolver = DnsPythonResolver([dns_server.address], timeout=0.3)

    async def run() -> None:
        assert await resolver.query("acme.example", "MX") == ["10 mx.acme.example"]
        assert await resolver.query("missing.example", "TXT") == []  # NXDOMAIN
        assert await resolver.query("acme.example", "AAAA") == []  # NODATA
        for name, words in (("slow.example", "timed out"), ("broken.example", "SERVFAIL")):
            with pytest.raises(DnsTemporaryError, match=words):
                await resolver.query(name, "TXT")

    asyncio.run(run())


def test_a_resolver_that_is_not_listening_is_temporary() -> None:
    server = DnsServer().start()
    address = server.address
    server.stop()
    resolver = DnsPythonResolver([address], timeout=0.3)
    with pytest.raises(DnsTemporaryError):
        asyncio.run(resolver.query("acme.example", "TXT"))


@pytest.mark.parametrize(("entry", "parsed"), [
    ("192.0.2.53", ("192.0.2.53", 53)),
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)),
    ("[::1]:5353", ("::1", 5353)),
    ("[2001:db8::53]", ("2001:db8::53", 53)),
])
def test_nameserver_entries(entry: str, parsed: tuple[str, int]) -> None:
    assert parse_nameserver(entry) == parsed


@pytest.mark.parametrize("entry", ["", "resolver.example", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000",
                                   "[::1", "[nope]:53", "::1:53:zz", "[::1]x"])
def test_bad_nameserver_entries(entry: str) -> None:
    with pytest.raises(DnsConfigError):
        parse_nameserver(entry)


def test_dmarc_records_are_parsed_as_rfc_7489_says() -> None:
    record = parse_record("v=DMARC1; p=reject; sp=none; adkim=s; aspf=r; rua=mailto:d@acme.example")
    assert record is not None and (record.policy, record.subdomain_policy, record.adkim, record.aspf) == (
        "reject", "none", "s", "r")
    assert record.policy_for("acme.example", "acme.example") == "reject"
    assert record.policy_for("mail.acme.example", "acme.example") == "none"
    assert parse_record("v=spf1 -all") is None
    assert parse_record("v=DMARC1; p=bogus") is None  # no valid p and no rua: no policy
    bad_p = parse_record("v=DMARC1; p=bogus; rua=mailto:d@acme.example")
    assert bad_p is not None and bad_p.policy == "none"
    assert parse_record("v=DMARC1;p=quarantine;adkim=x") is not None


def test_dmarc_discovery() -> None:
    static = StaticResolver({
        "_dmarc.acme.example": {"TXT": ["v=DMARC1; p=reject", "some-verification=abc"]},
        "_dmarc.two.example": {"TXT": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]},
        "_dmarc.org.example": {"TXT": ["v=DMARC1; p=quarantine"]},
    }, temporary=["_dmarc.down.example"])

    async def run() -> None:
        found = await discover("acme.example", static)
        assert found.status == "found" and found.record is not None and found.record.policy == "reject"
        several = await discover("two.example", static)
        assert several.status == "none" and "2 DMARC records" in several.detail
        inherited = await discover("a.b.org.example", static)
        assert inherited.status == "found" and inherited.record_domain == "org.example"
        assert ("_dmarc.b.org.example", "TXT") not in static.queries  # the From domain, then the org domain only
        assert (await discover("down.example", static)).status == "temperror"
        assert (await discover("nothing.example", static)).status == "none"

    asyncio.run(run())


def test_the_static_resolver_serves_a_signed_reply() -> None:
    from tests.mailauth import make_key

    static = StaticResolver({"sel._domainkey.acme.example": {"TXT": [make_key().record]}})
    outcome = asyncio.run(authenticate(sign(reply(), "acme.example"), mail_from="alice@acme.example",
                                       client_ip="198.51.100.66", helo="x.example", from_domain="acme.example",
                                       resolver=static))
    assert outcome.result == "pass"


def test_publish_key_helper_uses_the_selector(dns_server: DnsServer) -> None:
    publish_key(dns_server, "acme.example", "s2024")
    assert dns_server.asked("s2024._domainkey.acme.example") == 0
    resolver = DnsPythonResolver([dns_server.address], timeout=1.0)
    texts = asyncio.run(resolver.query("s2024._domainkey.acme.example", "TXT"))
    assert texts and texts[0].startswith("v=DKIM1; k=rsa; p=") and len(texts[0]) > 255  # split and joined again


def test_retries_start_within_30_seconds_and_back_off_to_an_hour() -> None:
    from transferbot.app.replies import AUTH_RETRY_CAP
    from transferbot.core.backoff import backoff

    def retry_delay(attempt: int) -> float:
        return backoff(attempt, 15.0, AUTH_RETRY_CAP)  # what the reader waits after DNS trouble (replies.defer)

    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays[0] <= 30 and delays == sorted(delays) and delays[-1] == 3600
    assert retry_delay(10_000) == 3600
