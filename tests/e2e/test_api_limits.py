"""The API's limits and keys: a body cap (413), a rate per key (429 with Retry-After), keys that never reach a log,
and the `apikey` and `webhook` commands."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_config
from tests.helpers import RunningDaemon
from transferbot.app import apikeys
from transferbot.app.context import App
from transferbot.cli import main
from transferbot.config import Config
from transferbot.devtools.sink import MailSink
from transferbot.http.api.ratelimit import RateLimiter


@pytest.fixture
def config(tmp_path: Path, sink: MailSink) -> Config:
    return make_config(tmp_path, sink.port, api={"rate_limit_per_minute": 60, "rate_limit_burst": 5},
                       webhooks={"allow_private_networks": True})



def test_a_body_over_the_cap_is_413(api: httpx.Client, world: App) -> None:
    key = apikeys.create_key(world, None)[1]
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    big = json.dumps({"entitlement": "ent-r1", "to_reseller": "r2", "note": "x" * 70_000}).encode()
    got = api.post("/v1/transfers", content=big, headers=headers)
    assert got.status_code == 413 and got.headers["content-type"].startswith("application/problem+json")
    assert "65536" in got.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: held to the same cap
        yield big[:40_000]
        yield big[40_000:]

    assert api.post("/v1/transfers", content=chunks(), headers=headers).status_code == 413
    assert api.post("/v1/transfers", json={"entitlement": "ent-r1", "to_reseller": "r2", "note": "x" * 1000},
                    headers=headers).status_code == 201


def test_each_key_has_its_rate_then_429_with_retry_after(api: httpx.Client, world: App) -> None:
    busy, quiet = apikeys.create_key(world, None)[1], apikeys.create_key(world, None)[1]
    codes = [api.get("/v1/accounts", headers={"Authorization": f"Bearer {busy}"}).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]
    limited = api.get("/v1/accounts", headers={"Authorization": f"Bearer {busy}"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["type"].endswith("rate-limited")
    assert api.get("/v1/accounts", headers={"Authorization": f"Bearer {quiet}"}).status_code == 200, "per key"


def test_the_token_bucket_refills_at_its_rate() -> None:
    clock = [0.0]
    limiter = RateLimiter(60, 2, clock=lambda: clock[0])
    assert [limiter.take(1), limiter.take(1)] == [0.0, 0.0]
    assert limiter.take(1) == pytest.approx(1.0)
    clock[0] += 1.0
    assert limiter.take(1) == 0.0
    assert RateLimiter(0, 1).take(1) == 0.0, "0: no limit"


def test_a_key_never_reaches_a_log(api: httpx.Client, world: App, caplog: pytest.LogCaptureFixture,
                                   capsys: pytest.CaptureFixture[str], cli_config: Path) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["--config", str(cli_config), "apikey", "create", "--isv", "vendor", "--name", "ci"]) == 0
    out = capsys.readouterr()
    key = out.out.splitlines()[-1]
    assert key.startswith("tbk_") and len(key) > 40 and key not in out.err
    headers = {"Authorization": f"Bearer {key}"}
    assert api.post("/v1/transfers", json={"entitlement": "ent-r1", "to_reseller": "r2"}, headers=headers
                    ).status_code == 201
    api.get("/v1/transfers/TR-NOPE", headers=headers)
    api.get("/v1/transfers", headers={"Authorization": f"Bearer {key}x"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert key not in logged and key[12:] not in logged and "Bearer" not in logged
    # Only the hash is kept.
    from sqlmodel import select

    from transferbot.store.models import ApiKey

    with world.store.read() as session:
        row = session.exec(select(ApiKey).where(ApiKey.prefix == key[:12])).one()
    assert row.hash == apikeys.digest(key) and key not in repr(row.model_dump())


def test_apikey_commands(cli_config: Path, capsys: pytest.CaptureFixture[str], app: App) -> None:
    from transferbot.app import registry

    registry.add_account(app, "vendor", "isv", "Vendor", ["deals@vendor.example.com"])
    registry.add_account(app, "acme", "customer", "Acme", ["a@acme.example.com"])
    run = ["--config", str(cli_config)]
    assert main([*run, "apikey", "create", "--admin", "--name", "billing"]) == 0
    admin_key = capsys.readouterr().out.splitlines()[-1]
    assert admin_key.startswith("tbk_")
    assert main([*run, "apikey", "create", "--isv", "acme"]) == 1
    assert capsys.readouterr().err == "transferbot: error: account acme is a customer, not an isv (--isv)\n"
    with pytest.raises(SystemExit) as usage:
        main([*run, "apikey", "create"])
    assert usage.value.code == 2 and "one of the arguments --isv --admin is required" in capsys.readouterr().err
    assert main([*run, "apikey", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["scope"], k["name"], k["state"]) for k in listed] == [("admin", "billing", "active")]
    assert admin_key not in json.dumps(listed) and listed[0]["prefix"] == admin_key[:12]
    assert main([*run, "apikey", "revoke", str(listed[0]["id"])]) == 0
    assert main([*run, "apikey", "revoke", str(listed[0]["id"])]) == 1
    assert "revoked already" in capsys.readouterr().err
    assert main([*run, "apikey", "list"]) == 0
    assert "revoked" in capsys.readouterr().out


def test_webhook_commands(cli_config: Path, capsys: pytest.CaptureFixture[str], app: App) -> None:
    run = ["--config", str(cli_config)]
    assert main([*run, "webhook", "add", "https://billing.example.com/hooks", "--event", "transfer.completed"]) == 0
    endpoint_id, secret = capsys.readouterr().out.splitlines()
    assert endpoint_id == "1" and secret.startswith("whsec_")
    assert main([*run, "webhook", "add", "http://10.0.0.5/hooks"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("transferbot: error: webhook URL refused") and err.count("\n") == 1
    with pytest.raises(SystemExit) as usage:
        main([*run, "webhook", "add", "https://x.example.com/", "--event", "transfer.nope"])
    assert usage.value.code == 2 and "invalid choice: 'transfer.nope'" in capsys.readouterr().err
    assert main([*run, "webhook", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["events"] == ["transfer.completed"] and "secret" not in listed[0]
    assert main([*run, "webhook", "deliveries", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"items": [], "next_cursor": None, "more": 0}
    assert main([*run, "webhook", "retry", "7"]) == 1
    assert capsys.readouterr().err == "transferbot: error: unknown webhook delivery #7\n"
    assert main([*run, "webhook", "remove", "1"]) == 0
    assert main([*run, "webhook", "list"]) == 0
    assert "billing.example.com" not in capsys.readouterr().out
    for command in (["apikey", "--help"], ["webhook", "add", "--help"], ["webhook", "deliveries", "--help"]):
        with pytest.raises(SystemExit) as done:
            main([*run, *command])
        assert done.value.code == 0


def test_keep_alive_responses_are_not_held_back(daemon: RunningDaemon) -> None:
    """Each response on a kept-alive connection goes out at once: with Nagle on (TCP_NODELAY unset), the body
    waited for the client's delayed ACK, about 40 ms every time."""
    import socket
    import statistics
    import time

    assert daemon.daemon is not None and daemon.daemon.http is not None
    with socket.create_connection(("127.0.0.1", daemon.daemon.http.port), timeout=5) as client:
        took = []
        for _ in range(15):
            started = time.perf_counter()
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            data = b""
            while not data.endswith(b'{"status":"ok"}'):
                data += client.recv(65536)
            took.append(time.perf_counter() - started)
    assert statistics.median(took) < 0.025, f"median {statistics.median(took) * 1000:.1f} ms"
