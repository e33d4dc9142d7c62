"""config.example.toml documents every key, and is itself a valid configuration."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from transferbot.config import Config, ConfigError, parse_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


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
