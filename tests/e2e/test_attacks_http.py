"""The attacker's tests over HTTP: sign-in guessing and flooding, forged Host headers, idle and half-sent
requests, numbers too large for a row id, invisible characters in names.

Each runs against the real daemon on loopback through a real HTTP client (httpx) or a raw socket. The
attacker is a script, not a browser: it chooses the sign-in form's double-submit token itself (that token
only protects browsers), and it speaks from addresses of its own (any 127.x.y.z, bound as the client's
source address), so that each test's per-address counts start at zero. The sign-in tests run on SQLite and
on PostgreSQL, with real concurrent clients.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import smtplib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.conftest import DOMAIN, make_config, populate
from tests.dashboard_world import csrf_of
from tests.helpers import RunningDaemon, wait_until
from tests.postgres import DATABASES
from transferbot.app import apikeys, operators
from transferbot.app.context import App, open_app
from transferbot.http.server import HttpServer
from transferbot.http.ui.auth import SESSION_COOKIE, SIGN_IN_COOKIE

BOTH_BACKENDS = True  # tests/conftest.py runs the `backend` tests on SQLite and on PostgreSQL

PUBLIC = "https://transfers.example.com"
OPERATOR, PASSWORD = "alice", "alice's long password"
TOKEN = "chosen-by-the-attacker"  # the sign-in form's double-submit token: a script sends any value twice
_SOURCES = itertools.count(2)


def fresh_sources(n: int) -> list[str]:
    """Loopback addresses no test has spoken from yet (127.0.0.1 is left to the honest clients)."""
    out = []
    for _ in range(n):
        k = next(_SOURCES)
        out.append(f"127.{k // 65536 % 256}.{k // 256 % 256}.{k % 256 or 1}")
    return out


@dataclass
class Target:
    app: App
    daemon: RunningDaemon
    admin_key: str

    @property
    def http(self) -> HttpServer:
        assert self.daemon.daemon is not None and self.daemon.daemon.http is not None
        return self.daemon.daemon.http

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"


def _target(folder: Path, backend: str, **http: object) -> Iterator[Target]:
    url = f"sqlite:///{folder / 'tb.db'}" if backend == "sqlite" else DATABASES.new()
    app = open_app(make_config(folder, database={"url": url}, http=http), upgrade=True)
    populate(app)
    operators.add_operator(app, OPERATOR, PASSWORD)
    key = apikeys.create_key(app, None)[1]
    daemon = RunningDaemon(app).start()
    try:
        yield Target(app, daemon, key)
    finally:
        daemon.stop()
        app.store.close()
        if backend != "sqlite":
            DATABASES.drop(url)


@pytest.fixture(scope="module")
def target(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The daemon as deployed behind a TLS proxy at PUBLIC, with every other setting at its default."""
    yield from _target(tmp_path_factory.mktemp(f"attacks-http-{backend}"), backend, public_url=PUBLIC)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A daemon with short timeouts and few connections, so that holding them is quick to show."""
    yield from _target(tmp_path_factory.mktemp("attacks-http-strict"), "sqlite", request_timeout_seconds=1.5,
                       keep_alive_seconds=1.0, max_connections=4)


def attacker(base: str, source: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=120, transport=httpx.AsyncHTTPTransport(local_address=source))


async def guess(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await client.post("/ui/sign-in", data={"csrf": TOKEN, "username": name, "password": password},
                             headers={"Cookie": f"{SIGN_IN_COOKIE}={TOKEN}"})


def signed_in_cookie(target: Target) -> dict[str, str]:
    """A session of the operator's, as a Cookie header (the cookie is Secure: httpx keeps it off plain http)."""
    [source] = fresh_sources(1)

    async def go() -> httpx.Response:
        async with attacker(target.base, source) as client:
            return await guess(client, OPERATOR, PASSWORD)

    got = asyncio.run(go())
    assert got.status_code == 303, got.text
    [token] = [h.split(";")[0].split("=", 1)[1] for h in got.headers.get_list("set-cookie")
               if h.startswith(f"{SESSION_COOKIE}=")]
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


# -- sign-in: guesses are counted before the hash runs, and the hash has a pool of its own ------------------------

def test_a_concurrent_burst_of_guesses_is_limited_like_a_sequential_one(target: Target) -> None:
    """30 sign-ins at once for one operator, 29 wrong and the right one last: 5 are checked, as 5 in a row
    would be; the others are 429 at once, without a hash."""
    name = "bursted"
    operators.add_operator(target.app, name, PASSWORD)
    sources = fresh_sources(30)  # from 30 addresses: only the per-name limit applies

    async def burst() -> list[httpx.Response]:
        clients = [attacker(target.base, s) for s in sources]
        try:
            return await asyncio.gather(*(guess(c, name, f"wrong guess {i:02d}") for i, c in enumerate(clients[:-1])),
                                        guess(clients[-1], name, PASSWORD))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    responses = asyncio.run(burst())
    codes = [r.status_code for r in responses]
    assert set(codes) <= {401, 429, 303}, codes
    assert codes.count(401) <= 5, f"{codes.count(401)} wrong guesses were checked at once: {codes}"
    assert codes.count(429) >= 24, codes
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)
    if codes[-1] == 429:  # the right password came after the limit: it signs nobody in, now or from elsewhere
        async def again() -> httpx.Response:
            async with attacker(target.base, fresh_sources(1)[0]) as client:
                return await guess(client, name, PASSWORD)
        assert asyncio.run(again()).status_code == 429


@dataclass
class Timings:
    readyz: float
    entitlements: float
    smtp: float

    def worst(self) -> float:
        return max(self.readyz, self.entitlements, self.smtp)


def _probe(target: Target) -> Timings:
    """How long /readyz, an admin's GET /v1/entitlements and an SMTP transaction take, one after the other.
    Run on a thread of its own, with clients of its own, so that the flood's own clients (on the test's event
    loop) do not delay it: what it measures is the daemon."""
    with httpx.Client(base_url=target.base, timeout=120) as admin:
        started = time.monotonic()
        assert admin.get("/readyz").status_code == 200
        ready = time.monotonic()
        got = admin.get("/v1/entitlements", headers={"Authorization": f"Bearer {target.admin_key}"})
        assert got.status_code == 200 and got.json()["items"]
        listed = time.monotonic()
        _smtp_round_trip(target.daemon.port)
        return Timings(ready - started, listed - ready, time.monotonic() - listed)


def _smtp_round_trip(port: int) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "probe@example.org", f"postmaster@{DOMAIN}", "probe"
    msg.set_content("Are you there?")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert client.send_message(msg) == {}


@pytest.mark.parametrize("spread", ["one address", "80 addresses"])
def test_a_flood_of_sign_ins_leaves_the_api_smtp_and_readyz_answering(target: Target, spread: str) -> None:
    """80 sign-ins at once with made-up names, from one address or from 80: the API, /readyz and SMTP
    answer in their usual time meanwhile; what the sign-in pool cannot take is refused at once (503)."""
    sources = fresh_sources(1 if spread == "one address" else 80)

    async def flood() -> tuple[Timings, list[httpx.Response], int]:
        clients = [attacker(target.base, s) for s in sources]
        try:
            tasks = [asyncio.create_task(guess(clients[i % len(clients)], f"nobody-{i}", "a made-up password"))
                     for i in range(80)]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            during = await asyncio.to_thread(_probe, target)
            unanswered = sum(not t.done() for t in tasks)
            return during, await asyncio.gather(*tasks), unanswered
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    quiet = min([_probe(target), _probe(target)], key=Timings.worst)
    during, responses, unanswered = asyncio.run(flood())
    bound = max(2.0, 20 * quiet.worst())
    assert during.worst() < bound, f"during the flood: {during} (quiet: {quiet}; bound {bound:.2f} s)"
    assert unanswered > 0, "the probes ran after the flood, not during it"
    codes = [r.status_code for r in responses]
    assert set(codes) <= {401, 429, 503}, codes
    assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code in (429, 503))
    if spread == "one address":
        assert codes.count(401) <= 20, f"{codes.count(401)} guesses from one address were checked: {codes}"
    else:
        assert codes.count(503) > 0, f"80 hashes at once were all queued: {codes}"
        busy = next(r for r in responses if r.status_code == 503)
        assert "try again" in busy.text


# -- hosts and redirects -----------------------------------------------------------------------------------------

def test_a_forged_host_is_refused_and_redirects_name_no_host(target: Target) -> None:
    with httpx.Client(base_url=target.base, timeout=30) as client:
        for path in ("/ui", "/ui/sign-in", "/metrics"):
            got = client.get(path, headers={"Host": "evil.example"})
            assert got.status_code == 400 and got.headers["content-type"].startswith("text/plain"), (path, got.text)
            assert "evil.example" not in got.headers.get("location", "") and "evil.example" not in got.text
        for method, path in (("GET", "/v1/transfers/"), ("GET", "/v1/entitlements"), ("POST", "/v1/transfers")):
            got = client.request(method, path, headers={"Host": "evil.example:443",
                                                         "Authorization": f"Bearer {target.admin_key}"})
            assert got.status_code == 400, (path, got.text)
            assert got.headers["content-type"].startswith("application/problem+json")
            assert got.json()["status"] == 400 and "host" in got.json()["detail"]
        # The names it does answer for: public_url's host, and loopback (local tools and tests).
        for host in ("transfers.example.com", "TRANSFERS.example.com:443", "localhost:8080", "127.0.0.1", "[::1]:80"):
            assert client.get("/ui/sign-in", headers={"Host": host}).status_code == 200, host
        # Health probes name the daemon by whatever address they reach it at.
        assert client.get("/readyz", headers={"Host": "10.1.2.3:8080"}).status_code == 200
        assert client.get("/healthz", headers={"Host": "10.1.2.3:8080"}).status_code == 200
        # Redirects are relative: no scheme, no host, whichever host was named.
        for host in ("transfers.example.com", f"127.0.0.1:{target.http.port}"):
            ui = client.get("/ui", headers={"Host": host})
            assert ui.is_redirect and ui.headers["location"] == "/ui/", ui.headers
            api = client.get("/v1/transfers/?limit=5", headers={"Host": host,
                                                                 "Authorization": f"Bearer {target.admin_key}"})
            assert api.is_redirect and api.headers["location"] == "/v1/transfers?limit=5", api.headers
            home = client.get("/ui/", headers={"Host": host})
            assert home.is_redirect and home.headers["location"].startswith("/ui/")
        assert client.get("/v1/transfers/", follow_redirects=True,
                          headers={"Authorization": f"Bearer {target.admin_key}"}).status_code == 200


def test_hsts_is_sent_when_the_public_url_is_https(target: Target, strict: Target) -> None:
    with httpx.Client(base_url=target.base, timeout=30) as client:
        for path in ("/ui/sign-in", "/v1/entitlements", "/healthz", "/ui/static/htmx.min.js", "/nowhere"):
            hsts = client.get(path).headers.get("strict-transport-security", "")
            assert hsts.startswith("max-age=") and int(hsts.split("=")[1].split(";")[0]) >= 86400 * 180, path
    with httpx.Client(base_url=strict.base, timeout=30) as client:  # plain http: nothing to pin
        assert "strict-transport-security" not in client.get("/ui/sign-in").headers


# -- connections that send nothing, or never finish --------------------------------------------------------------

def _closed_within(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """What the server sends before it closes the connection, and after how long (fails past ``limit``)."""
    sock.settimeout(limit)
    started, got = time.monotonic(), b""
    try:
        while chunk := sock.recv(4096):
            got += chunk
    except TimeoutError:
        pytest.fail(f"the connection was still open after {limit} s (it sent {got[:80]!r})")
    except ConnectionResetError:
        pass
    return got, time.monotonic() - started


@pytest.mark.parametrize("sent", [
    b"",  # a connection that never sends a request
    b"GET /healthz HT",  # half a request line
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",  # headers that never end
    b"POST /v1/transfers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{\"entitlement\": ",  # a body that never ends
], ids=["nothing", "partial-request-line", "partial-headers", "partial-body"])
def test_idle_and_incomplete_requests_time_out(strict: Target, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", strict.http.port)) as sock:
        sock.sendall(sent)
        got, after = _closed_within(sock, 8.0)
    assert after >= 1.0, f"closed after {after:.2f} s: before its time"
    if sent:
        assert got.startswith(b"HTTP/1.1 408 "), got
    else:
        assert got == b""


def test_an_idle_keep_alive_connection_is_closed(strict: Target) -> None:
    with socket.create_connection(("127.0.0.1", strict.http.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got, after = _closed_within(sock, 8.0)
    assert got.startswith(b"HTTP/1.1 200 ") and b'{"status":"ok"}' in got
    assert after < 3.0, f"an idle kept-alive connection was held {after:.2f} s (keep_alive_seconds = 1)"


def test_connections_past_the_cap_are_refused_at_once(strict: Target) -> None:
    wait_until(lambda: strict.http.open_connections == 0, what="no connection left from other tests")
    held = [socket.create_connection(("127.0.0.1", strict.http.port)) for _ in range(4)]
    try:
        wait_until(lambda: strict.http.open_connections == 4, what="four connections held")
        with socket.create_connection(("127.0.0.1", strict.http.port)) as fifth:
            got, after = _closed_within(fifth, 5.0)
        assert got.startswith(b"HTTP/1.1 503 ") and b"retry-after: " in got.lower(), got
        assert after < 1.0
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: strict.http.open_connections == 0, what="the held connections closed")
    assert httpx.get(f"{strict.base}/healthz", timeout=30).status_code == 200


# -- numbers in paths and queries ----------------------------------------------------------------------------------

HUGE = "99999999999999999999"


def test_a_huge_number_in_a_path_or_query_is_404_or_422(target: Target, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    cookie = signed_in_cookie(target)
    with httpx.Client(base_url=target.base, timeout=30, headers=cookie) as client:
        for path in (f"/ui/inbox/{HUGE}", f"/ui/inbox/{HUGE}/raw", f"/ui/outbox/{HUGE}/raw", "/ui/inbox/0",
                     "/ui/inbox/-1", f"/ui/inbox/{2**31}", f"/ui/inbox/{2**31 - 1}", f"/ui/inbox/{2**63}"):
            got = client.get(path)
            assert got.status_code == 404, (path, got.status_code, got.text)
            assert client.get("/ui/board").status_code == 200, "the keep-alive connection stays usable"
        board = client.get("/ui/board")
        csrf = csrf_of(board.text)
        for path in (f"/ui/inbox/{HUGE}/retry", f"/ui/outbox/{HUGE}/retry", f"/ui/webhooks/deliveries/{HUGE}/retry"):
            got = client.post(path, data={"csrf": csrf})
            assert got.status_code == 404, (path, got.text)
        for path in (f"/ui/inbox?before={HUGE}", f"/ui/outbox?before={HUGE}", f"/ui/webhooks?before={HUGE}",
                     f"/ui/inbox?before={HUGE[:18]}", f"/ui/outbox?before={2**31}", "/ui/webhooks?before=-1"):
            assert client.get(path).status_code == 200, path
    with httpx.Client(base_url=target.base, timeout=30,
                      headers={"Authorization": f"Bearer {target.admin_key}"}) as api:
        for path in (f"/v1/transfers?limit={HUGE}", f"/v1/accounts?limit={HUGE}", f"/v1/entitlements?limit={HUGE}",
                     "/v1/entitlements?limit=-1"):
            got = api.get(path)
            assert got.status_code == 422 and got.json()["errors"][0]["field"] == "query.limit", (path, got.text)
    crashed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashed, [r.getMessage() for r in crashed]


# -- invisible characters in names -------------------------------------------------------------------------------

@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"])
def test_invisible_format_characters_are_refused_in_names(target: Target, char: str) -> None:
    code = f"U+{ord(char):04X}"
    with httpx.Client(base_url=target.base, timeout=30,
                      headers={"Authorization": f"Bearer {target.admin_key}"}) as api:
        account = api.put("/v1/accounts/spoof", json={"kind": "reseller", "name": f"Reseller{char} One",
                                                      "emails": ["ops@spoof.example"]})
        assert account.status_code == 422 and code in account.json()["detail"], account.text
        assert "name" in account.json()["detail"]
        product = api.put("/v1/entitlements/ent-spoof", json={"product": f"Analytics{char}Pro", "customer": "acme",
                                                               "isv": "vendor", "reseller": None})
        assert product.status_code == 422 and code in product.json()["detail"], product.text
        assert api.get("/v1/accounts/spoof").status_code == 404
