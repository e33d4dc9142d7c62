"""Sender authentication in "trusted-relay" mode: Authentication-Results believed only from our relay's address,
only the topmost header with its authserv-id, and the same rule as "verify"."""

from __future__ import annotations

import ipaddress

import pytest

from transferbot.inbound.senderauth import AuthOutcome, trusted_relay
from transferbot.inbound.senderauth.authresults import parse

RELAYS = [ipaddress.ip_network("192.0.2.0/28"), ipaddress.ip_network("2001:db8::/64")]
RELAY_IP = "192.0.2.10"
OUTSIDER = "198.51.100.66"
ID = "mx.market.example"


def judge(*headers: str, client_ip: str = RELAY_IP, domain: str | None = "acme.example") -> AuthOutcome:
    return trusted_relay(list(headers), client_ip=client_ip, trusted_relays=RELAYS, authserv_id=ID,
                         from_domain=domain)


def test_dmarc_pass_from_the_relay_counts() -> None:
    outcome = judge(f"{ID}; dkim=pass header.d=acme.example header.s=sel; spf=pass smtp.mailfrom=alice@acme.example;"
                    " dmarc=pass (p=reject dis=none) header.from=acme.example")
    assert outcome.result == "pass" and outcome.mode == "trusted-relay" and outcome.authserv_id == ID
    assert outcome.dmarc is not None and outcome.dmarc.result == "pass"
    assert outcome.dkim[0].domain == "acme.example" and outcome.dkim[0].aligned


def test_forged_authentication_results_from_an_untrusted_client_are_ignored() -> None:
    # The bug: receiving directly, a forged header naming our authserv-id was counted.
    forged = f"{ID}; dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example"
    outcome = judge(forged, client_ip=OUTSIDER)
    assert outcome.result == "fail" and not outcome.counts
    assert OUTSIDER in outcome.why and "not a trusted relay" in outcome.why


def test_a_forged_header_under_the_genuine_one_is_ignored() -> None:
    genuine = f"{ID}; dkim=none; spf=softfail smtp.mailfrom=alice@acme.example; dmarc=none header.from=acme.example"
    forged = f"{ID}; dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example"
    outcome = judge(genuine, forged)
    assert outcome.result == "fail"
    assert outcome.spf is not None and outcome.spf.result == "softfail"
    # The other way round (a genuine pass on top of a forged fail) the topmost still decides.
    assert judge(forged, genuine).result == "pass"


def test_an_authserv_id_with_a_version_is_read_but_only_from_a_trusted_relay() -> None:
    header = "MX.MARKET.EXAMPLE 1; dkim=pass header.i=@acme.example"
    assert parse(header).version == 1 and parse(header).authserv_id == ID
    outcome = judge(header)
    assert outcome.result == "pass" and outcome.dkim[0].domain == "acme.example"
    assert judge(header, client_ip=OUTSIDER).result == "fail"
    assert judge("mx.market.example 2; dkim=pass header.i=@acme.example").result == "fail"  # unknown version
    assert "cannot be read" in judge("mx.market.example junk; dkim=pass header.d=acme.example").why


def test_spf_pass_with_dmarc_none_counts_when_aligned() -> None:
    # A party whose domain publishes only SPF, behind an MX that reports dmarc=none: approves now.
    header = f"{ID}; spf=pass smtp.mailfrom=alice@mail.acme.example; dkim=none; dmarc=none header.from=acme.example"
    outcome = judge(header)
    assert outcome.result == "pass" and "spf=pass" in outcome.why
    unaligned = f"{ID}; spf=pass smtp.mailfrom=bounces@bulk.example; dmarc=none header.from=acme.example"
    assert judge(unaligned).result == "fail"


def test_dmarc_pass_for_another_from_domain_does_not_count() -> None:
    header = f"{ID}; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example"
    outcome = judge(header)
    assert outcome.result == "fail" and "evil.example" in outcome.why
    assert judge(f"{ID}; dmarc=pass").result == "fail"  # no header.from: not about our From domain


def test_dmarc_fail_is_not_rescued_by_an_aligned_dkim_pass() -> None:
    header = f"{ID}; dkim=pass header.d=acme.example; dmarc=fail header.from=acme.example"
    assert judge(header).result == "fail"


def test_unaligned_dkim_pass_without_dmarc_does_not_count() -> None:
    outcome = judge(f"{ID}; dkim=pass header.d=mailprovider.example; spf=none smtp.mailfrom=acme.example")
    assert outcome.result == "fail" and "unaligned" in outcome.why


def test_other_servers_headers_are_ignored_wherever_they_are() -> None:
    outcome = judge("other.example; dmarc=pass header.from=acme.example",
                    f"{ID}; dmarc=pass header.from=acme.example")
    assert outcome.result == "pass"
    assert "no Authentication-Results header from" in judge("other.example; dmarc=pass header.from=acme.example").why


@pytest.mark.parametrize("client_ip", ["2001:db8::25", "::ffff:192.0.2.3", "[192.0.2.3]"])
def test_relay_addresses(client_ip: str) -> None:
    assert judge(f"{ID}; dmarc=pass header.from=acme.example", client_ip=client_ip).result == "pass"


def test_comments_and_quoted_strings_cannot_smuggle_results() -> None:
    header = f'{ID}; dkim=fail (dmarc=pass header.from=acme.example) header.d=acme.example; ' \
             f'spf=neutral smtp.mailfrom="x;dmarc=pass"'
    result = parse(header)
    assert [(r.method, r.result) for r in result.results] == [("dkim", "fail"), ("spf", "neutral")]
    assert judge(header).result == "fail"


def test_a_from_that_is_not_one_address_fails() -> None:
    assert judge(f"{ID}; dmarc=pass header.from=acme.example", domain=None).result == "fail"


def test_relay_outcomes_round_trip_through_json() -> None:
    outcome = judge(f"{ID}; dkim=pass header.d=acme.example; dmarc=none header.from=acme.example")
    assert AuthOutcome.from_json(outcome.as_json()) == outcome


def test_the_unix_socket_is_a_relay_only_when_named() -> None:
    header = f"{ID}; dkim=pass header.d=acme.example; dmarc=pass header.from=acme.example"
    assert judge(header, client_ip="unix").result == "fail", "trusted_relays without \"unix\""
    through_socket = trusted_relay([header], client_ip="unix", trusted_relays=[], authserv_id=ID,
                                   from_domain="acme.example", unix_trusted=True)
    assert through_socket.result == "pass"
    over_tcp = trusted_relay([header], client_ip=OUTSIDER, trusted_relays=[], authserv_id=ID,
                             from_domain="acme.example", unix_trusted=True)
    assert over_tcp.result == "fail" and "not a trusted relay" in over_tcp.why
