"""Shared fixtures: a configured app on a temporary database, a sink relay, a running daemon."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pydantic.v1  # noqa: F401 - FastAPI imports it lazily; it must not first load under freezegun's date
import pytest

from tests.dnsserver import DnsServer
from tests.helpers import RunningDaemon, dns_toml, http_base, internet_dns
from tests.postgres import DATABASES
from tests.receiver import Receiver
from transferbot.app import apikeys, registry
from transferbot.app.context import App, open_app
from transferbot.config import Config, parse_config
from transferbot.devtools.sink import MailSink

DOMAIN = "transfers.example.com"



def make_config(tmp_path: Path, sink_port: int | None = None, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path / 'tb.db'}"},
        "inbound": {"host": "127.0.0.1", "port": 0, "domain": DOMAIN, "sender_auth": "verify",
                    "dns_resolvers": [internet_dns().address], "dns_timeout_seconds": 2.0},
        "outbound": ({"transport": "smtp", "host": "127.0.0.1", "port": sink_port, "poll_seconds": 0.1,
                      "retry_min_seconds": 1, "retry_max_seconds": 4}
                     if sink_port else {"transport": "maildir", "maildir": str(tmp_path / "outbox")}),
        "workflow": {"secret": "test-secret", "operator_address": "ops@marketplace.example.com"},
        "http": {"host": "127.0.0.1", "port": 0},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_config(data, "test", env={})


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """An authoritative DNS server on a loopback port: the internet's DNS, as far as the test is concerned."""
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[MailSink]:
    s = MailSink().start_in_thread()
    yield s
    s.stop_thread()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module that sets BOTH_BACKENDS = True runs its database tests on SQLite and on PostgreSQL."""
    if "backend" in metafunc.fixturenames:
        both = getattr(metafunc.module, "BOTH_BACKENDS", False)
        metafunc.parametrize("backend", ["sqlite", "postgresql"] if both else ["sqlite"], scope="module")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    DATABASES.drop_all()


@pytest.fixture
def database_url(tmp_path: Path, backend: str) -> Iterator[str]:
    """The database a test's app uses: a file in its folder, or a fresh PostgreSQL database (dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'tb.db'}"
        return
    url = DATABASES.new()
    yield url
    DATABASES.drop(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, for tests of what only PostgreSQL does (several daemons)."""
    url = DATABASES.new()
    yield url
    DATABASES.drop(url)


@pytest.fixture
def config(tmp_path: Path, sink: MailSink, database_url: str) -> Config:
    return make_config(tmp_path, sink.port, database={"url": database_url})


@pytest.fixture
def app(config: Config) -> Iterator[App]:
    a = open_app(config, upgrade=True)
    yield a
    a.store.close()


@pytest.fixture
def world(app: App) -> App:
    """A small marketplace: a customer with two addresses, an ISV, two resellers, three entitlements."""
    return populate(app)


def populate(app: App) -> App:
    """The `world` fixture's marketplace, for a test that opens an app of its own."""
    registry.add_account(app, "acme", "customer", "Acme Corp", ["alice@acme.example.com", "bob@acme.example.com"])
    registry.add_account(app, "vendor", "isv", "Vendor Inc", ["deals@vendor.example.com"])
    registry.add_account(app, "r1", "reseller", "Reseller One", ["ops@r1.example.com"])
    registry.add_account(app, "r2", "reseller", "Reseller Two", ["ops@r2.example.com"])
    registry.add_account(app, "globex", "customer", "Globex", ["it@globex.example.com"])
    registry.add_entitlement(app, "ent-direct", "Analytics Pro", "acme", "vendor")
    registry.add_entitlement(app, "ent-r1", "Analytics Pro", "acme", "vendor", "r1")
    registry.add_entitlement(app, "ent-globex", "Storage Plus", "globex", "vendor", "r1")
    return app


@pytest.fixture
def daemon(world: App) -> Iterator[RunningDaemon]:
    d = RunningDaemon(world).start()
    yield d
    d.stop()


@pytest.fixture
def cli_config(tmp_path: Path, config: Config, app: App) -> Path:
    """A TOML file for the CLI pointing at the same database and relay as the `app` fixture."""
    path = tmp_path / "cli.toml"
    path.write_text(
        f'[database]\nurl = "{config.database.url}"\n'
        f'[inbound]\ndomain = "{DOMAIN}"\n{dns_toml()}'
        f'[outbound]\ntransport = "smtp"\nhost = "127.0.0.1"\nport = {config.outbound.port}\n'
        '[workflow]\nsecret = "test-secret"\noperator_address = "ops@marketplace.example.com"\n'
    )
    return path


@pytest.fixture
def daemon_factory() -> Iterator[Callable[[App], RunningDaemon]]:
    started: list[RunningDaemon] = []

    def make(app: App) -> RunningDaemon:
        d = RunningDaemon(app).start()
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def api(daemon: RunningDaemon) -> Iterator[httpx.Client]:
    """An HTTP client of the running daemon's API."""
    with httpx.Client(base_url=http_base(daemon), timeout=10) as client:
        yield client


@pytest.fixture
def keys(world: App) -> dict[str, str]:
    """API keys: the world's ISV (vendor), another ISV with an entitlement of its own, and an admin."""
    registry.add_account(world, "other-isv", "isv", "Other Vendor", ["deals@other.example.com"])
    registry.add_entitlement(world, "ent-other", "Other Product", "globex", "other-isv")
    return {"vendor": apikeys.create_key(world, "vendor")[1], "other": apikeys.create_key(world, "other-isv")[1],
            "admin": apikeys.create_key(world, None)[1]}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback."""
    r = Receiver().start()
    yield r
    r.stop()
