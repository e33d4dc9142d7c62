"""The HTTP server on the daemon's loop: health, readiness through a graceful stop, problem documents."""

from __future__ import annotations

import smtplib
import threading

import httpx

from tests.helpers import RunningDaemon, http_base, wait_until
from transferbot.http.hosts import allows, host_name, relative


def test_health_and_readiness(daemon: RunningDaemon) -> None:
    assert httpx.get(http_base(daemon) + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(http_base(daemon) + "/readyz")
    assert ready.status_code == 200 and ready.json()["problems"] == []


def test_an_unknown_path_is_a_problem_document(daemon: RunningDaemon) -> None:
    got = httpx.get(http_base(daemon) + "/no/such/thing")
    assert got.status_code == 404 and got.headers["content-type"].startswith("application/problem+json")
    body = got.json()
    assert body["status"] == 404 and body["title"] == "Not found" and body["type"].startswith("https://")


def test_readyz_turns_503_first_thing_in_a_graceful_stop(world: object) -> None:
    from transferbot.app.context import App

    assert isinstance(world, App)
    d = RunningDaemon(world).start()
    url = http_base(d) + "/readyz"
    assert httpx.get(url).status_code == 200
    client = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    client.ehlo()
    client.mail("alice@acme.example.com")  # a mail transaction under way holds the stop open
    stopper = threading.Thread(target=d.stop)
    stopper.start()
    try:
        seen = wait_until(lambda: (r := httpx.get(url)).status_code == 503 and r, what="readyz 503")
        assert "stopping" in seen.json()["problems"]
        assert stopper.is_alive(), "still serving the transaction under way"
    finally:
        client.close()
        stopper.join(30)
    assert not stopper.is_alive()


def test_host_headers_are_read_strictly_and_locations_made_relative() -> None:
    assert [host_name(h) for h in ("Transfers.Example.com.:443", "[::1]:8080", "[::1]", "127.0.0.1")] == \
        ["transfers.example.com", "::1", "::1", "127.0.0.1"]
    assert [host_name(h) for h in ("", "a b", "x.example:http", "[::1", "[::1]x", "::1", "évil.example")] == \
        [None, None, None, None, None, None, None]
    patterns = ("localhost", "*.corp.example")
    assert allows(patterns, "a.corp.example") and allows(patterns, "localhost") and allows(("*",), "x.example")
    assert not allows(patterns, "corp.example") and not allows(patterns, "evilcorp.example") \
        and not allows(patterns, None)
    assert relative("http://evil.example/ui/?a=1#f", "Evil.Example") == "/ui/?a=1#f"
    assert relative("http://127.0.0.1:8080", "127.0.0.1:8080") == "/"
    assert relative("https://elsewhere.example/x", "127.0.0.1:8080") == "https://elsewhere.example/x"
    assert relative("/ui/board", "127.0.0.1:8080") == "/ui/board"
