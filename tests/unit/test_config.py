"""config.example.toml documents every key, and is itself a valid configuration."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.paths import ROOT
from transferbot.config import Config, ConfigError, parse_config

EXAMPLE = ROOT / "config.example.toml"


def test_the_example_is_valid_and_equal_to_the_defaults() -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert parse_config(data, "example", env={}) == parse_config({}, "example", env={})


def test_every_key_is_documented() -> None:
    text = EXAMPLE.read_text()
    for section, model in Config.model_fields.items():
        if section == "source":
            continue
        assert f"[{section}]" in text, section
        block = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
        for key in model.annotation.model_fields:  # type: ignore[union-attr]
            assert re.search(rf"^#? ?{key} = ", block, re.MULTILINE), f"{section}.{key} is not in config.example.toml"


def _inbound(**values: object) -> Config:
    return parse_config({"inbound": values}, "test", env={})


def _error(**values: object) -> str:
    with pytest.raises(ConfigError) as info:
        _inbound(**values)
    return str(info.value)


def test_sender_auth_defaults_to_verify_with_the_system_resolver() -> None:
    inbound = Config().inbound
    assert (inbound.sender_auth, inbound.dns_resolvers, inbound.allow_unauthenticated) == ("verify", (), False)


def test_sender_auth_off_needs_allow_unauthenticated() -> None:
    message = _error(sender_auth="off")
    assert message.startswith("test: inbound.sender_auth: ") and "allow_unauthenticated = true" in message
    assert _inbound(sender_auth="off", allow_unauthenticated=True).inbound.sender_auth == "off"


def test_trusted_relay_needs_relays_and_an_authserv_id() -> None:
    message = _error(sender_auth="trusted-relay")
    assert message.startswith("test: inbound.sender_auth: ")
    assert "trusted_relays and trusted_authserv_id" in message
    assert "trusted_authserv_id" in _error(sender_auth="trusted-relay", trusted_relays=["192.0.2.0/28"])
    inbound = _inbound(sender_auth="trusted-relay", trusted_relays=["192.0.2.25", "2001:db8::/64"],
                       trusted_authserv_id="mx.market.example").inbound
    assert [str(n) for n in inbound.trusted_networks] == ["192.0.2.25/32", "2001:db8::/64"]


@pytest.mark.parametrize(("values", "key"), [
    ({"sender_auth": "maybe"}, "inbound.sender_auth"),
    ({"dns_resolvers": ["resolver.example"]}, "inbound.dns_resolvers"),
    ({"dns_resolvers": ["127.0.0.1:99999"]}, "inbound.dns_resolvers"),
    ({"dns_timeout_seconds": 0}, "inbound.dns_timeout_seconds"),
    ({"trusted_relays": ["192.0.2.1/24"]}, "inbound.trusted_relays"),
    ({"trusted_relays": ["not-a-network"]}, "inbound.trusted_relays"),
    ({"trusted_authserv_id": "mx.example; dmarc=pass"}, "inbound.trusted_authserv_id"),
])
def test_sender_auth_errors_name_the_key(values: dict[str, object], key: str) -> None:
    assert _error(**values).startswith(f"test: {key}")


def test_resolver_entries_are_accepted_as_written() -> None:
    entries = ["192.0.2.53", "127.0.0.1:5353", "[::1]:5353", "2001:db8::53"]
    assert _inbound(dns_resolvers=entries).inbound.dns_resolvers == tuple(entries)


def test_the_helo_name_defaults_to_the_inbound_domain_and_must_be_a_host_name() -> None:
    assert parse_config({"inbound": {"domain": "Transfers.Example.NET"}}, "t", env={}).outbound.helo_name == \
        "transfers.example.net"
    assert parse_config({}, "t", env={}).outbound.helo_name == "transfers.example.com"
    given = parse_config({"outbound": {"helo_name": "mx1.example.org"}}, "t", env={})
    assert given.outbound.helo_name == "mx1.example.org"
    assert parse_config({"outbound": {"helo_name": "[192.0.2.7]"}}, "t", env={}).outbound.helo_name == "[192.0.2.7]"
    for bad in ("two words", "host\r\nMAIL FROM:<x>", "-leading.example"):
        with pytest.raises(ConfigError, match="outbound.helo_name"):
            parse_config({"outbound": {"helo_name": bad}}, "t", env={})


def test_dkim_signs_for_the_from_domain_or_a_parent_and_its_keys_have_selectors() -> None:
    key = [{"selector": "S2026", "key_file": "/k"}]
    assert parse_config({}, "t", env={}).dkim_domain == "transfers.example.com"
    assert parse_config({"outbound": {"dkim_keys": key}}, "t", env={}).outbound.dkim_keys[0].selector == "s2026"
    moved = parse_config({"outbound": {"from_address": "noreply@mail.market.example", "dkim_domain": "Market.Example.",
                                       "dkim_keys": key}}, "t", env={})
    assert moved.dkim_domain == "market.example"
    with pytest.raises(ConfigError, match=r"outbound\.dkim_domain: ket\.example is not mail\.market\.example"):
        parse_config({"outbound": {"from_address": "noreply@mail.market.example", "dkim_domain": "ket.example",
                                   "dkim_keys": key}}, "t", env={})
    for bad in ("two words", "s1\r\nx", ""):
        with pytest.raises(ConfigError, match=r"outbound\.dkim_keys\.0\.selector"):
            parse_config({"outbound": {"dkim_keys": [{"selector": bad, "key_file": "/k"}]}}, "t", env={})
    with pytest.raises(ConfigError, match=r"outbound\.dkim_keys\.0\.key_file"):
        parse_config({"outbound": {"dkim_keys": [{"selector": "s1"}]}}, "t", env={})


def test_allowed_hosts_are_names_addresses_or_wildcards_and_include_the_public_host() -> None:
    http = parse_config({"http": {"public_url": "https://Transfers.Example.com:8443/x",
                                  "allowed_hosts": ["[::1]", "*.Corp.Example.", "10.0.0.5", "localhost"]}},
                        "test", env={}).http
    assert http.hosts == ("::1", "*.corp.example", "10.0.0.5", "localhost", "transfers.example.com")
    assert http.https and not Config().http.https
    assert Config().http.hosts == ("localhost", "127.0.0.1", "::1")
    for bad in (["transfers.example.com:443"], ["two words"], ["*example.com"], ["http://x.example"]):
        with pytest.raises(ConfigError, match=r"^test: http\.allowed_hosts: .* is not a host name"):
            parse_config({"http": {"allowed_hosts": bad}}, "test", env={})
    with pytest.raises(ConfigError, match=r"^test: http\.allowed_hosts: empty and no public_url"):
        parse_config({"http": {"allowed_hosts": []}}, "test", env={})
    assert parse_config({"http": {"allowed_hosts": [], "public_url": "https://t.example"}}, "test",
                        env={}).http.hosts == ("t.example",)


def test_lmtp_on_a_unix_socket_and_its_errors_name_the_key(tmp_path: object) -> None:
    inbound = _inbound(protocol="lmtp", socket="/tmp/transferbot.sock", socket_mode="0600").inbound
    assert (inbound.protocol, str(inbound.socket), inbound.socket_permissions) == ("lmtp", "/tmp/transferbot.sock",
                                                                                   0o600)
    assert _error(protocol="esmtp").startswith("test: inbound.protocol")
    assert _error(socket_mode="rw-rw----").startswith("test: inbound.socket_mode")
    assert _error(socket_mode="0999").startswith("test: inbound.socket_mode")
    missing = _error(socket="/no/such/folder/tb.sock")
    assert missing.startswith("test: inbound.socket") and "no such folder /no/such/folder" in missing
    assert "\n" not in missing


def test_a_unix_socket_is_named_as_a_trusted_relay() -> None:
    inbound = _inbound(sender_auth="trusted-relay", trusted_relays=["unix", "192.0.2.25"],
                       trusted_authserv_id="mx.market.example").inbound
    assert inbound.trusted_relays == ("unix", "192.0.2.25/32")
    assert [str(n) for n in inbound.trusted_networks] == ["192.0.2.25/32"]
    assert _error(trusted_relays=["unix:/run/x.sock"]).startswith("test: inbound.trusted_relays")
