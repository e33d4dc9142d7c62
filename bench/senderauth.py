"""What one sender authentication costs: DKIM-signed replies of about 2 KB, DNS answered from a warm cache.

    python bench/senderauth.py [--count 1000]

DNS is a StaticResolver behind the CachingResolver the daemon uses, so the
numbers are the engine's own cost (parsing, hashing, RSA, SPF evaluation,
thread hand-offs), not the network's. Prints milliseconds per
authentication, one at a time and 50 at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.mailauth import make_key, reply, sign  # noqa: E402
from transferbot.inbound.senderauth import CachingResolver, StaticResolver, authenticate  # noqa: E402


async def run(count: int) -> None:
    key = make_key()
    raw = sign(reply(size=2000), "acme.example", key=key)
    static = StaticResolver({
        "sel._domainkey.acme.example": {"TXT": [key.record]},
        "acme.example": {"TXT": ["v=spf1 ip4:192.0.2.0/24 include:_spf.acme.example -all"]},
        "_spf.acme.example": {"TXT": ["v=spf1 ip4:198.51.100.0/24 -all"]},
        "_dmarc.acme.example": {"TXT": ["v=DMARC1; p=reject; rua=mailto:dmarc@acme.example"]},
    })
    resolver = CachingResolver(static)

    async def one() -> str:
        outcome = await authenticate(raw, mail_from="alice@acme.example", client_ip="198.51.100.7",
                                     helo="mail.acme.example", from_domain="acme.example", resolver=resolver)
        return outcome.result

    assert await one() == "pass"  # warm: the cache holds every record now
    asked = len(static.queries)
    started = time.perf_counter()
    for _ in range(count):
        await one()
    sequential = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, count, 50):
        await asyncio.gather(*(one() for _ in range(min(50, count - start))))
    concurrent = time.perf_counter() - started
    assert len(static.queries) == asked, "the warm cache should have answered everything"
    print(f"message size: {len(raw)} bytes, DKIM rsa-sha256 2048-bit, SPF with one include, DMARC p=reject")
    print(f"{count} authentications one at a time: {sequential:.2f} s, {1000 * sequential / count:.2f} ms each")
    print(f"{count} authentications 50 at a time:  {concurrent:.2f} s, {1000 * concurrent / count:.2f} ms each")
    print(f"cache: {resolver.stats}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    asyncio.run(run(parser.parse_args().count))


if __name__ == "__main__":
    main()
