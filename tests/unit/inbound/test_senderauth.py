"""Sender authentication in "verify" mode, end to end: real DKIM signatures made here, real SPF, DKIM and DMARC
records served by a DNS server on loopback, asked through the real dnspython resolver."""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import Iterator

import pytest

from tests.dnsserver import DnsServer
from tests.mailauth import make_key, publish_key, reply, sign
from transferbot.inbound.senderauth import AuthOutcome, CachingResolver, authenticate, build_resolver, from_domain
from transferbot.inbound.senderauth.domains import aligned, organizational_domain

PARTY_IP = "192.0.2.25"  # acme.example's outgoing server
EVIL_IP = "198.51.100.66"


@pytest.fixture
def dns(dns_server: DnsServer) -> Iterator[DnsServer]:
    """acme.example signs with DKIM and lists its server in SPF; no DMARC record unless a test adds one."""
    publish_key(dns_server, "acme.example")
    dns_server.txt("acme.example", f"v=spf1 ip4:{PARTY_IP} -all")
    yield dns_server


@pytest.fixture
def resolver(dns: DnsServer) -> CachingResolver:
    return build_resolver([dns.address], timeout=0.4)


def check(raw: bytes, resolver: CachingResolver, *, mail_from: str = "alice@acme.example", client_ip: str = PARTY_IP,
          helo: str = "mail.acme.example", domain: str | None = "acme.example") -> AuthOutcome:
    return asyncio.run(authenticate(raw, mail_from=mail_from, client_ip=client_ip, helo=helo, from_domain=domain,
                                    resolver=resolver, timeout=0.4, budget=3.0))


def test_dkim_pass_aligned_counts(resolver: CachingResolver) -> None:
    # Sent from elsewhere (SPF fails), but the signature by the From domain is enough without a DMARC record.
    outcome = check(sign(reply(), "acme.example"), resolver, client_ip=EVIL_IP)
    assert outcome.result == "pass" and outcome.counts
    assert [(d.domain, d.result, d.aligned) for d in outcome.dkim] == [("acme.example", "pass", True)]
    assert outcome.spf is not None and outcome.spf.result == "fail"
    assert outcome.dmarc is not None and outcome.dmarc.result == "none"
    assert "DKIM signature by acme.example" in outcome.why


def test_dkim_pass_by_another_domain_is_not_aligned(dns: DnsServer, resolver: CachingResolver) -> None:
    publish_key(dns, "mailprovider.example")
    outcome = check(sign(reply(), "mailprovider.example"), resolver, client_ip=EVIL_IP)
    assert outcome.result == "fail" and not outcome.counts
    assert [(d.domain, d.result, d.aligned) for d in outcome.dkim] == [("mailprovider.example", "pass", False)]
    assert "mailprovider.example" in outcome.why and "acme.example" in outcome.why
    assert "does not align" in outcome.why
    assert outcome.advice_key == "align-dkim" and "under acme.example" in outcome.advice


def test_body_altered_after_signing_fails_dkim(resolver: CachingResolver) -> None:
    raw = sign(reply(body="DECLINE\r\n"), "acme.example").replace(b"DECLINE", b"APPROVE")
    outcome = check(raw, resolver, client_ip=EVIL_IP)
    assert outcome.result == "fail"
    assert outcome.dkim[0].result == "fail" and "body" in outcome.dkim[0].detail
    assert outcome.advice_key == "fix-dkim"


def test_spf_pass_aligned_without_dmarc_counts(resolver: CachingResolver) -> None:
    outcome = check(reply(), resolver)  # unsigned, from acme.example's listed server
    assert outcome.result == "pass"
    assert outcome.spf is not None and (outcome.spf.result, outcome.spf.aligned) == ("pass", True)
    assert outcome.dkim == ()
    assert "SPF" in outcome.why and "no DMARC record" in outcome.why


def test_spf_pass_for_another_envelope_domain_is_not_aligned(dns: DnsServer, resolver: CachingResolver) -> None:
    dns.txt("bulk.example", f"v=spf1 ip4:{EVIL_IP} -all")
    outcome = check(reply(), resolver, mail_from="bounces@bulk.example", client_ip=EVIL_IP)
    assert outcome.result == "fail"
    assert outcome.spf is not None and (outcome.spf.result, outcome.spf.domain, outcome.spf.aligned) == (
        "pass", "bulk.example", False)
    assert "bulk.example" in outcome.why and "does not align" in outcome.why
    assert outcome.advice_key == "align-envelope"


def test_envelope_sender_unlike_from_is_recorded_and_authentication_decides(dns: DnsServer,
                                                                             resolver: CachingResolver) -> None:
    dns.txt("bulk.example", f"v=spf1 ip4:{EVIL_IP} -all")
    outcome = check(sign(reply(), "acme.example"), resolver, mail_from="bounces@bulk.example", client_ip=EVIL_IP)
    assert outcome.result == "pass"
    assert outcome.spf is not None and outcome.spf.domain == "bulk.example" and not outcome.spf.aligned


def test_forged_from_with_the_right_token_fails(dns: DnsServer, resolver: CachingResolver) -> None:
    dns.txt("evil.example", f"v=spf1 ip4:{EVIL_IP} -all")
    publish_key(dns, "evil.example")
    raw = sign(reply(to="transfer+the-real-token@transfers.example.com"), "evil.example")
    outcome = check(raw, resolver, mail_from="mallory@evil.example", client_ip=EVIL_IP, helo="evil.example")
    assert outcome.result == "fail"
    assert outcome.spf is not None and outcome.spf.result == "pass" and not outcome.spf.aligned
    assert outcome.dkim[0].domain == "evil.example" and not outcome.dkim[0].aligned
    # The same forgery claiming acme.example as envelope sender fails SPF instead.
    outcome = check(reply(), resolver, client_ip=EVIL_IP)
    assert outcome.result == "fail" and outcome.spf is not None and outcome.spf.result == "fail"
    assert outcome.advice_key == "fix-spf" and EVIL_IP in outcome.advice


def test_dmarc_reject_with_failing_mechanisms_names_the_policy(dns: DnsServer, resolver: CachingResolver) -> None:
    dns.txt("_dmarc.acme.example", "v=DMARC1; p=reject; rua=mailto:dmarc@acme.example")
    outcome = check(reply(), resolver, client_ip=EVIL_IP)
    assert outcome.result == "fail"
    assert outcome.dmarc is not None
    assert (outcome.dmarc.result, outcome.dmarc.policy, outcome.dmarc.record_domain) == (
        "fail", "reject", "acme.example")
    assert "p=reject" in outcome.why


def test_dmarc_pass_with_record(dns: DnsServer, resolver: CachingResolver) -> None:
    dns.txt("_dmarc.acme.example", "v=DMARC1; p=quarantine")
    outcome = check(sign(reply(), "acme.example"), resolver)
    assert outcome.result == "pass"
    assert outcome.dmarc is not None and (outcome.dmarc.result, outcome.dmarc.policy) == ("pass", "quarantine")
    assert outcome.why.startswith("DMARC passes for acme.example")


def test_dmarc_relaxed_alignment_through_the_organisational_domain(dns: DnsServer,
                                                                    resolver: CachingResolver) -> None:
    # The record lives at the organisational domain (Public Suffix List: co.uk is a suffix, acme.co.uk is not).
    dns.txt("_dmarc.acme.co.uk", "v=DMARC1; p=reject; sp=quarantine")
    publish_key(dns, "acme.co.uk")
    publish_key(dns, "mail.acme.co.uk")
    outcome = check(sign(reply("bob@mail.acme.co.uk"), "acme.co.uk"), resolver, mail_from="bob@mail.acme.co.uk",
                    client_ip=EVIL_IP, domain="mail.acme.co.uk")
    assert outcome.result == "pass"
    assert outcome.dmarc is not None
    assert (outcome.dmarc.record_domain, outcome.dmarc.policy) == ("acme.co.uk", "quarantine")  # sp for a subdomain
    outcome = check(sign(reply("bob@acme.co.uk"), "mail.acme.co.uk"), resolver, mail_from="bob@acme.co.uk",
                    client_ip=EVIL_IP, domain="acme.co.uk")
    assert outcome.result == "pass" and outcome.dmarc is not None and outcome.dmarc.policy == "reject"


def test_a_public_suffix_never_aligns(dns: DnsServer, resolver: CachingResolver) -> None:
    assert organizational_domain("mail.acme.co.uk") == "acme.co.uk"
    assert organizational_domain("co.uk") is None
    assert not aligned("co.uk", "acme.co.uk") and not aligned("acme.co.uk", "co.uk")
    assert not aligned("co.uk", "co.uk")
    publish_key(dns, "co.uk")
    outcome = check(sign(reply("bob@acme.co.uk"), "co.uk"), resolver, mail_from="bob@acme.co.uk",
                    client_ip=EVIL_IP, domain="acme.co.uk")
    assert outcome.result == "fail" and outcome.dkim[0].result == "pass" and not outcome.dkim[0].aligned


def test_strict_dkim_alignment_refuses_a_subdomain_signer(dns: DnsServer, resolver: CachingResolver) -> None:
    dns.txt("_dmarc.acme.example", "v=DMARC1; p=none; adkim=s")
    publish_key(dns, "mail.acme.example")
    outcome = check(sign(reply(), "mail.acme.example"), resolver, client_ip=EVIL_IP)
    assert outcome.result == "fail" and not outcome.dkim[0].aligned
    assert outcome.dmarc is not None and (outcome.dmarc.result, outcome.dmarc.policy) == ("fail", "none")


def test_a_domain_that_publishes_nothing_fails_and_the_advice_says_what_to_publish(resolver: CachingResolver) -> None:
    outcome = check(reply("carol@nothing.example"), resolver, mail_from="carol@nothing.example",
                    client_ip=EVIL_IP, domain="nothing.example")
    assert outcome.result == "fail"
    assert outcome.spf is not None and outcome.spf.result == "none"
    assert outcome.why == ("nothing.example publishes no DMARC record and no SPF record, and the reply has no "
                           "DKIM signature")
    assert outcome.advice_key == "publish-spf-or-dkim"
    assert "SPF record for nothing.example" in outcome.advice and "DKIM" in outcome.advice


def test_dns_timing_out_then_answering(dns: DnsServer, resolver: CachingResolver) -> None:
    raw = sign(reply(), "acme.example")
    dns.fault("sel._domainkey.acme.example", "drop")
    started = time.monotonic()
    outcome = check(raw, resolver, client_ip=EVIL_IP)
    assert outcome.result == "temperror" and not outcome.counts
    assert outcome.dkim[0].result == "temperror"
    assert "DKIM key of acme.example" in outcome.why and "again" in outcome.why
    assert time.monotonic() - started < 2.5
    dns.fault("sel._domainkey.acme.example", None)  # the temporary error was not cached: asked again
    outcome = check(raw, resolver, client_ip=EVIL_IP)
    assert outcome.result == "pass"


def test_servfail_is_temporary(dns: DnsServer, resolver: CachingResolver) -> None:
    dns.fault("acme.example", "servfail")  # the SPF record: the only aligned mechanism here
    outcome = check(reply(), resolver)
    assert outcome.result == "temperror" and outcome.spf is not None and outcome.spf.result == "temperror"
    dns.fault("acme.example", None)
    assert check(reply(), resolver).result == "pass"


def test_dmarc_record_unknown_only_strict_alignment_passes(dns: DnsServer, resolver: CachingResolver) -> None:
    dns.fault("_dmarc.acme.example", "servfail")
    publish_key(dns, "mail.acme.example")
    # Signed by the From domain itself: aligned under any policy, so DMARC trouble does not matter.
    assert check(sign(reply(), "acme.example"), resolver, client_ip=EVIL_IP).result == "pass"
    # Signed by a subdomain: aligned only if the record (unknown) does not say adkim=s.
    outcome = check(sign(reply(), "mail.acme.example"), resolver, client_ip=EVIL_IP)
    assert outcome.result == "temperror" and "DMARC record of acme.example" in outcome.why
    # Nothing aligned could pass: a definite fail, whatever the record says.
    assert check(reply(), resolver, client_ip=EVIL_IP).result == "fail"


def test_spf_trouble_for_an_unaligned_envelope_domain_does_not_matter(dns: DnsServer,
                                                                       resolver: CachingResolver) -> None:
    dns.fault("bulk.example", "servfail")
    outcome = check(reply(), resolver, mail_from="bounces@bulk.example", client_ip=EVIL_IP)
    assert outcome.spf is not None and outcome.spf.result == "temperror"
    assert outcome.result == "fail"


def test_null_sender_and_unusable_from_fail(resolver: CachingResolver) -> None:
    outcome = check(sign(reply(), "acme.example"), resolver, mail_from="")
    assert outcome.result == "fail" and "null" in outcome.why and outcome.advice_key == "null-sender"
    outcome = check(sign(reply(), "acme.example"), resolver, domain=None)
    assert outcome.result == "fail" and "exactly one address" in outcome.why


def test_a_two_address_from_has_no_from_domain(resolver: CachingResolver) -> None:
    raw = sign(reply("alice@acme.example, mallory@evil.example"), "acme.example")
    message = email.message_from_bytes(raw)
    assert from_domain(message) is None
    assert check(raw, resolver, domain=from_domain(message)).result == "fail"
    assert from_domain(email.message_from_bytes(reply("Alice <Alice@ACME.example>"))) == "acme.example"
    assert from_domain(email.message_from_bytes(reply() + b"")) == "acme.example"
    two_fields = b"From: mallory@evil.example\r\n" + reply()
    assert from_domain(email.message_from_bytes(two_fields)) is None


def test_l_tag_leaving_the_body_unsigned_does_not_pass(resolver: CachingResolver) -> None:
    raw = sign(reply(body="DECLINE\r\n"), "acme.example", length=True)
    assert check(raw, resolver, client_ip=EVIL_IP).result == "pass"
    appended = raw + b"APPROVE\r\n"
    outcome = check(appended, resolver, client_ip=EVIL_IP)
    assert outcome.result == "fail" and "unsigned" in outcome.dkim[0].detail


def test_missing_key_is_a_permanent_error(resolver: CachingResolver) -> None:
    outcome = check(sign(reply(), "acme.example", selector="gone"), resolver, client_ip=EVIL_IP)
    assert outcome.result == "fail"
    assert outcome.dkim[0].result == "permerror" and "gone._domainkey.acme.example" in outcome.dkim[0].detail
    assert outcome.advice_key == "publish-dkim-key" and "gone._domainkey.acme.example" in outcome.advice


def test_every_signature_is_checked_and_the_aligned_one_counts(dns: DnsServer, resolver: CachingResolver) -> None:
    publish_key(dns, "mailprovider.example", key=make_key(2048, 1))
    raw = sign(sign(reply(), "acme.example"), "mailprovider.example", key=make_key(2048, 1))
    outcome = check(raw, resolver, client_ip=EVIL_IP)
    assert [(d.domain, d.result, d.aligned) for d in outcome.dkim] == [
        ("mailprovider.example", "pass", False), ("acme.example", "pass", True)]
    assert outcome.result == "pass"


def test_the_outcome_round_trips_through_json(resolver: CachingResolver) -> None:
    outcome = check(sign(reply(), "acme.example"), resolver, client_ip=EVIL_IP)
    assert AuthOutcome.from_json(outcome.as_json()) == outcome
    assert "dkim=pass(acme.example)" in outcome.summary()


def test_the_loop_is_never_blocked_while_dns_times_out(dns: DnsServer) -> None:
    dns.fault("acme.example", "drop")
    dns.fault("sel._domainkey.acme.example", "drop")
    dns.fault("_dmarc.acme.example", "drop")
    lags: list[float] = []

    async def probe(stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    async def main() -> AuthOutcome:
        stop = asyncio.Event()
        task = asyncio.create_task(probe(stop))
        resolver = build_resolver([dns.address], timeout=0.5)
        outcome = await authenticate(sign(reply(size=2000), "acme.example"), mail_from="alice@acme.example",
                                     client_ip=PARTY_IP, helo="mail.acme.example", from_domain="acme.example",
                                     resolver=resolver, timeout=0.5, budget=3.0)
        stop.set()
        await task
        return outcome

    outcome = asyncio.run(main())
    assert outcome.result == "temperror"
    assert len(lags) > 20 and max(lags) < 0.1, max(lags)
