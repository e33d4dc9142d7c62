"""The webhook engine over real HTTP on loopback: signatures the reference library accepts, retries that keep
their id and bytes, the status-code etiquette, caps and timeouts, the address guard, the retry schedule.

A uvicorn server in a thread (port 0) is the receiver. Nothing here sends a packet beyond loopback: addresses
the guard must refuse are tried with a network backend that records and refuses every connection.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import itertools
import json
import socket
import ssl
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import pytest
import trustme
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.helpers import wait_until
from transferbot.config import ConfigError, WebhooksConfig, parse_config
from transferbot.core.clock import now
from transferbot.outbound.webhooks import (
    EVENT_TYPES,
    AddressGuard,
    AddressRefused,
    Attempt,
    UrlError,
    WebhookClient,
    new_event_id,
    new_secret,
    next_attempt,
    payload,
    retry_delay,
    sign_headers,
    validate_url,
)
from transferbot.outbound.webhooks.backoff import MAX_AGE, MAX_DELAY
from transferbot.outbound.webhooks.transport import GuardedBackend
from transferbot.outbound.webhooks.urls import address_kind

HUGE_LIMIT = 64 * 1024 * 1024  # what /huge would send to a client that read everything
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
TRANSFER = {"id": "TR-7K3Q9M", "kind": "reseller-change", "status": "completed", "entitlement": "ent-r1",
            "parties": [{"role": "customer", "account": "acme", "decision": "approved"}], "note": "Müller & Söhne"}


# -- the receiver -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An ASGI app that records every request and answers by path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self.huge_sent: dict[str, int] = {}

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.requests]

    def to(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self.lock:
            self.requests.append(Received(path, headers, body))
            self.hits[path] = self.hits.get(path, 0) + 1
            hits = self.hits[path]
        if path == "/slow":  # never answers; returns when the client hangs up
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        if path.startswith("/huge"):
            await self._huge(path, receive, send)
            return
        status, extra, content = 200, [], b"ok"
        if path.startswith("/flaky") and hits == 1:
            status, extra, content = 503, [(b"retry-after", b"7")], b"try later"
        elif path == "/gone":
            status, content = 410, b"gone"
        elif path == "/moved":
            status, extra, content = 302, [(b"location", b"/target")], b""
        elif path == "/binary":
            status, content = 500, b"\xff\xfe\x00bad\r\nline\x00" + "é".encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(content)).encode()), *extra]})
        await send({"type": "http.response.body", "body": content})

    async def _huge(self, path: str, receive: Any, send: Any) -> None:
        """Up to HUGE_LIMIT bytes, stopping as soon as the client goes away, and count what was sent."""
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        sent, chunk = 0, b"x" * 65536
        while sent < HUGE_LIMIT and not gone.is_set():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
            await asyncio.sleep(0)
        if not gone.is_set():
            await send({"type": "http.response.body", "body": b""})
        watcher.cancel()
        with self.lock:
            self.huge_sent[path] = sent


class Server:
    """uvicorn on 127.0.0.1, port 0, in a thread of its own."""

    def __init__(self, app: Receiver, certfile: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=2,
                                ssl_certfile=str(certfile) if certfile else None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> Server:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture(scope="module")
def server(receiver: Receiver) -> Iterator[Server]:
    s = Server(receiver).start()
    yield s
    s.stop()


class NoNetwork(httpcore.AsyncNetworkBackend):
    """A network backend that records where it was asked to connect, and connects nowhere."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        self.asked.append(host)
        raise httpcore.ConnectError("test: no network")

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def fake_dns(answers: dict[str, Sequence[str]], calls: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]
    return resolve


def deliver(url: str, body: bytes, headers: dict[str, str] | None = None, **options: Any) -> Attempt:
    """One attempt with a fresh client (private networks allowed unless said otherwise), signed now."""
    options.setdefault("allow_private_networks", True)
    options.setdefault("timeout", 5.0)
    headers = headers if headers is not None else sign_headers(SECRET, new_event_id(), now(), body)

    async def go() -> Attempt:
        async with WebhookClient(**options) as client:
            return await client.deliver(url, headers, body)
    return asyncio.run(go())


def event_body(type: str = "transfer.completed") -> bytes:
    return payload(type, T0, TRANSFER)


# -- events and signatures ----------------------------------------------------------------------------------------

def test_the_payload_is_compact_canonical_utf8_json() -> None:
    body = event_body()
    assert body == event_body()  # same input, same bytes
    assert body.startswith(b'{"data":{') and b" " not in body.replace(b"M\xc3\xbcller & S\xc3\xb6hne", b"")
    assert "Müller".encode() in body  # UTF-8, not \u escapes
    document = json.loads(body)
    assert document["type"] == "transfer.completed" and document["timestamp"] == "2025-03-01T12:00:00Z"
    assert document["data"] == TRANSFER
    reordered = payload("transfer.completed", T0, dict(reversed(list(TRANSFER.items()))))
    assert reordered == body  # key order in the snapshot does not matter
    paris = dt.timezone(dt.timedelta(hours=1))
    assert payload("transfer.completed", T0.astimezone(paris), {"at": T0.astimezone(paris)}) == \
        b'{"data":{"at":"2025-03-01T12:00:00Z"},"timestamp":"2025-03-01T12:00:00Z","type":"transfer.completed"}'
    assert set(EVENT_TYPES) == {"transfer.requested", "transfer.party_decided", "transfer.completed",
                                "transfer.declined", "transfer.expired", "transfer.cancelled"}


@pytest.mark.parametrize("args, message", [
    (("transfer.moved", T0, {}), "unknown event type 'transfer.moved'"),
    (("transfer.completed", T0.replace(tzinfo=None), {}), "timezone-aware"),
    (("transfer.completed", T0, {"x": float("nan")}), "Out of range float"),
    (("transfer.completed", T0, {"x": object()}), "cannot put a object in a webhook payload"),
])
def test_a_payload_that_cannot_be_made_says_why(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        payload(*args)


def test_event_ids_and_secrets() -> None:
    ids = {new_event_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(i.startswith("msg_") and i[4:].isalnum() and len(i) == 31 for i in ids)
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32
    assert secret != new_secret()
    body = event_body()
    headers = sign_headers(secret, "msg_1", now(), body)
    assert Webhook(secret).verify(body, headers)["type"] == "transfer.completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_signatures_match_the_reference_test_vector() -> None:
    stamp = dt.datetime.fromtimestamp(1614265330, dt.UTC)
    headers = sign_headers(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", stamp, b'{"test": 2432232314}')
    assert headers == {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
                       "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    # the same instant in another zone signs the same (the library reads wall-clock time as UTC)
    tokyo = stamp.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert sign_headers(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", tokyo, b'{"test": 2432232314}') == headers
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_headers(SECRET, "msg_1", stamp.replace(tzinfo=None), b"{}")
    with pytest.raises(ValueError, match="without '.'"):
        sign_headers(SECRET, "msg.1", stamp, b"{}")


# -- delivery over HTTP -------------------------------------------------------------------------------------------

def test_a_delivery_verifies_with_the_reference_library(server: Server, receiver: Receiver) -> None:
    body = event_body()
    msg_id = new_event_id()
    attempt = deliver(server.url("/hook-verify"), body, sign_headers(SECRET, msg_id, now(), body))
    assert attempt.outcome == "delivered" and attempt.status_code == 200 and attempt.error == ""
    assert attempt.response_excerpt == "ok" and attempt.remote_address == "127.0.0.1"
    assert attempt.elapsed_ms >= 0
    [got] = receiver.to("/hook-verify")
    assert got.body == body
    assert Webhook(SECRET).verify(got.body, got.headers) == json.loads(body)
    assert got.headers["webhook-id"] == msg_id
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("transferbot-webhooks/")


def test_a_retried_event_keeps_its_id_and_bytes_503_then_200(server: Server, receiver: Receiver) -> None:
    body, msg_id, path = event_body(), new_event_id(), f"/flaky-{uuid.uuid4().hex}"
    first = deliver(server.url(path), body, sign_headers(SECRET, msg_id, now(), body))
    assert first.outcome == "retry" and first.status_code == 503
    assert first.error == "HTTP 503 Service Unavailable" and first.retry_after == 7.0
    assert first.response_excerpt == "try later"
    second = deliver(server.url(path), body, sign_headers(SECRET, msg_id, now(), body))
    assert second.outcome == "delivered" and second.status_code == 200
    one, two = receiver.to(path)
    assert one.body == two.body == body
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == msg_id
    for got in (one, two):  # each attempt is signed with its own timestamp, and verifies
        Webhook(SECRET).verify(got.body, got.headers)


def test_410_gone_disables_the_endpoint(server: Server) -> None:
    attempt = deliver(server.url("/gone"), event_body())
    assert attempt.outcome == "disable" and attempt.status_code == 410
    assert attempt.error == "HTTP 410 Gone: the receiver asked for no more webhooks"


def test_a_redirect_is_not_followed(server: Server, receiver: Receiver) -> None:
    attempt = deliver(server.url("/moved"), event_body())
    assert attempt.outcome == "retry" and attempt.status_code == 302
    assert attempt.error == "HTTP 302 Found: redirect to /target not followed (update the endpoint URL)"
    assert "/moved" in receiver.paths() and "/target" not in receiver.paths()


def test_a_huge_response_is_read_only_up_to_the_cap(server: Server, receiver: Receiver) -> None:
    path = f"/huge-{uuid.uuid4().hex}"
    attempt = deliver(server.url(path), event_body(), max_response_bytes=1000)
    assert attempt.outcome == "delivered" and attempt.response_excerpt == "x" * 1000
    sent = wait_until(lambda: receiver.huge_sent.get(path, 0), 10, what="the server to notice the hang-up")
    assert sent < HUGE_LIMIT  # we hung up: the server stopped early, its 64 MiB never read


def test_a_slow_receiver_times_out(server: Server) -> None:
    attempt = deliver(server.url("/slow"), event_body(), timeout=0.3)
    assert attempt.outcome == "retry" and attempt.status_code is None
    assert attempt.error == "no response within 0.3 s"
    assert 250 <= attempt.elapsed_ms < 3000


def test_a_response_body_is_kept_as_safe_text(server: Server) -> None:
    attempt = deliver(server.url("/binary"), event_body())
    assert attempt.outcome == "retry" and attempt.error == "HTTP 500 Internal Server Error"
    assert "\x00" not in attempt.response_excerpt and attempt.response_excerpt.endswith("line\ufffdé")


def test_no_listener_and_no_such_host_are_retried() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    refused = deliver(f"http://127.0.0.1:{port}/", event_body())
    assert refused.outcome == "retry" and refused.error.startswith("connection failed:") and "\n" not in refused.error
    unknown = deliver("http://nowhere.example/", event_body(), resolver=fake_dns({}))
    assert unknown.outcome == "retry" and unknown.error.startswith("connection failed: cannot resolve nowhere.example")


def test_one_client_reuses_its_connection(server: Server, receiver: Receiver) -> None:
    body, calls = event_body(), list[str]()

    async def go() -> list[Attempt]:
        async with WebhookClient(allow_private_networks=True, resolver=fake_dns({"hooks.example": ["127.0.0.1"]},
                                                                                   calls)) as client:
            return [await client.deliver(server.url("/hook-reuse", "hooks.example"), {}, body) for _ in range(3)]
    assert [a.outcome for a in asyncio.run(go())] == ["delivered"] * 3
    assert calls == ["hooks.example"]  # one connection, one lookup, three requests


# -- the address guard --------------------------------------------------------------------------------------------

REFUSED_LITERALS = [
    ("127.0.0.1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.9", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("169.254.169.254", "link-local"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fd00::1", "unique-local"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("2002:a00:1::", "6to4 private"),
    ("64:ff9b::a00:1", "NAT64 private"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.2.1", "special-purpose"),
]


@pytest.mark.parametrize("address, kind", REFUSED_LITERALS)
def test_the_guard_refuses_non_public_addresses(address: str, kind: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:8080/hook"
    with pytest.raises(UrlError, match="refused") as info:
        validate_url(url)
    assert "\n" not in str(info.value)
    network = NoNetwork()
    attempt = deliver(url, event_body(), allow_private_networks=False, network_backend=network)
    assert attempt.outcome == "failed" and f"{address}, a" in attempt.error and kind in attempt.error
    # and at the connection itself, should a literal ever get past the URL check
    backend = GuardedBackend(AddressGuard(allow_private_networks=False), network)
    with pytest.raises(AddressRefused, match=kind.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(backend.connect_tcp(address, 8080))
    assert network.asked == []


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) is None


def test_a_name_that_resolves_to_loopback_is_refused(server: Server, receiver: Receiver) -> None:
    attempt = deliver(server.url("/via-localhost", "localhost"), event_body(), allow_private_networks=False)
    assert attempt.outcome == "retry"  # a name: the next lookup may answer otherwise
    assert attempt.error.startswith("localhost resolves to ") and "a loopback address: refused" in attempt.error
    assert "allow_private_networks" in attempt.error
    assert "/via-localhost" not in receiver.paths()


def test_loopback_is_allowed_when_private_networks_are(server: Server, receiver: Receiver) -> None:
    attempt = deliver(server.url("/via-localhost-allowed", "localhost"), event_body(), allow_private_networks=True)
    assert attempt.outcome == "delivered"
    assert receiver.to("/via-localhost-allowed")


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1", "[::ffff:0.0.0.0]"])
def test_some_addresses_are_refused_even_when_private_networks_are_allowed(address: str) -> None:
    network = NoNetwork()
    attempt = deliver(f"http://{address}/", event_body(), allow_private_networks=True, network_backend=network)
    assert attempt.outcome == "failed" and "allow_private_networks" not in attempt.error
    assert network.asked == []


def test_one_refused_address_among_public_ones_refuses_the_name() -> None:
    network, calls = NoNetwork(), list[str]()
    dns = fake_dns({"mixed.example": ["93.184.216.34", "10.0.0.5"]}, calls)
    attempt = deliver("https://mixed.example/hook", event_body(), allow_private_networks=False, resolver=dns,
                      network_backend=network)
    assert attempt.outcome == "retry"
    assert attempt.error.startswith("mixed.example resolves to 10.0.0.5, a private address: refused")
    assert network.asked == [] and calls == ["mixed.example"]


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup() -> None:
    """DNS rebinding: the first answer is public and passes, a second would be loopback. There is no second."""
    network, calls = NoNetwork(), list[str]()
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return next(answers)

    attempt = deliver("http://rebind.example/hook", event_body(), allow_private_networks=False, resolver=rebinding,
                      network_backend=network)
    assert calls == ["rebind.example"]
    assert network.asked == ["93.184.216.34"]  # the checked address, as an IP: nothing left to resolve
    assert attempt.outcome == "retry" and "test: no network" in attempt.error


def test_a_pinned_connection_still_verifies_tls_against_the_host_name(tmp_path: Path, receiver: Receiver) -> None:
    ca = trustme.CA()
    pem = tmp_path / "hooks.pem"
    ca.issue_cert("hooks.example").private_key_and_cert_chain_pem.write_to_path(str(pem))
    tls_server = Server(receiver, certfile=pem).start()
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        dns = fake_dns({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
        good = deliver(tls_server.url("/tls", "hooks.example", "https"), event_body(), resolver=dns,
                       ssl_context=context)
        assert good.outcome == "delivered" and receiver.to("/tls")[0].headers["host"].startswith("hooks.example:")
        wrong = deliver(tls_server.url("/tls-wrong-name", "other.example", "https"), event_body(), resolver=dns,
                        ssl_context=context)
        assert wrong.outcome == "retry" and "CERTIFICATE_VERIFY_FAILED" in wrong.error
        assert "Hostname mismatch" in wrong.error or "hostname" in wrong.error.lower()
        assert not receiver.to("/tls-wrong-name")
    finally:
        tls_server.stop()


# -- URL validation -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("ftp://files.example.com/hook", "must start with http:// or https:// (not ftp:)"),
    ("garbage", "must start with http:// or https://"),
    ("", "webhook URL is empty"),
    ("http:///hook", "has no host"),
    ("https://", "has no host"),
    ("https://user:secret@billing.example.com/hook", "must not contain a user name or password"),
    ("https://billing.example.com\\@evil.example/", "must not contain a user name or password"),
    ("https://exa mple.com/", "spaces or control characters"),
    ("https://billing.example.com/\r\nX-Injected: 1", "spaces or control characters"),
    ("http://2130706433/", "is not a valid host name or IP address"),
    ("http://0x7f.1/", "is not a valid host name or IP address"),
    ("http://%31%32%37.0.0.1/", "is not a valid host name or IP address"),
    ("http://-bad-.example/", "is not a valid host name or IP address"),
    ("http://billing.example.com:0/", "port 0 is out of range"),
    ("https://billing.example.com/" + "a" * 2100, "too long"),
    ("http://[fe80::1%25eth0]/", "is not a valid host name or IP address"),
])
def test_bad_urls_are_refused_with_a_one_line_reason(url: str, message: str) -> None:
    with pytest.raises(UrlError) as info:
        validate_url(url)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["https://billing.example.com/hooks/transferbot?token=abc",
                                 "http://hooks.example.com:8080/", "https://93.184.216.34/x", "https://exämple.de/",
                                 "HTTPS://Billing.Example.COM./hook", "https://[2606:4700:4700::1111]/hook"])
def test_good_urls_pass(url: str) -> None:
    assert validate_url(url) == url


def test_private_literals_pass_validation_only_when_allowed() -> None:
    assert validate_url("http://127.0.0.1:9000/hook", allow_private_networks=True)
    assert validate_url("http://[fd00::1]/hook", allow_private_networks=True)
    with pytest.raises(UrlError, match="unspecified"):
        validate_url("http://0.0.0.0/hook", allow_private_networks=True)


# -- the retry schedule -------------------------------------------------------------------------------------------

def no_jitter() -> float:
    return 0.0


def test_retry_delays_start_at_5_seconds_and_double_up_to_6_hours() -> None:
    delays = [retry_delay(n, rand=no_jitter).total_seconds() for n in range(1, 20)]
    assert delays[:5] == [5, 10, 20, 40, 80]
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) == MAX_DELAY.total_seconds() == delays[-1]
    assert retry_delay(10_000, rand=no_jitter) == MAX_DELAY
    assert retry_delay(1, rand=lambda: 0.999).total_seconds() == pytest.approx(5.4995)  # jitter adds up to 10 %
    with pytest.raises(ValueError):
        retry_delay(0)


def test_next_attempt_gives_up_when_the_event_is_3_days_old() -> None:
    assert next_attempt(1, T0, T0, rand=no_jitter) == T0 + dt.timedelta(seconds=5)
    assert next_attempt(3, T0, T0 + dt.timedelta(minutes=1), rand=no_jitter) == T0 + dt.timedelta(seconds=80)
    assert next_attempt(30, T0, T0 + MAX_AGE, rand=no_jitter) is None
    assert next_attempt(30, T0, T0 + MAX_AGE + dt.timedelta(seconds=1)) is None
    last_call = T0 + MAX_AGE - dt.timedelta(hours=1)
    assert next_attempt(30, T0, last_call, rand=no_jitter) == T0 + MAX_AGE  # one last try at the deadline
    with pytest.raises(ValueError, match="timezone-aware"):
        next_attempt(1, T0.replace(tzinfo=None), T0)


def test_retry_after_can_only_delay_and_is_capped() -> None:
    assert next_attempt(1, T0, T0, retry_after=60, rand=no_jitter) == T0 + dt.timedelta(seconds=60)
    assert next_attempt(5, T0, T0, retry_after=1, rand=no_jitter) == T0 + dt.timedelta(seconds=80)
    assert next_attempt(1, T0, T0, retry_after=10**9, rand=no_jitter) == T0 + MAX_DELAY


def test_a_dead_endpoint_is_tried_for_3_days_then_given_up() -> None:
    moments, attempts, at = [T0], 1, T0
    while (following := next_attempt(attempts, T0, at)) is not None:
        assert following > at and following - at <= MAX_DELAY * 1.1
        moments.append(following)
        attempts += 1
        at = following
    assert moments[-1] == T0 + MAX_AGE and 15 < len(moments) < 30


# -- configuration ------------------------------------------------------------------------------------------------

def test_the_webhooks_section() -> None:
    default = WebhooksConfig()
    assert default.allow_private_networks is False and default.max_age_hours == 72
    config = parse_config({"webhooks": {"allow_private_networks": True, "timeout_seconds": 2}}, "test", env={})
    client = WebhookClient.from_config(config.webhooks)
    assert client.allow_private_networks and client.timeout == 2 and client.max_response_bytes == 65536
    asyncio.run(client.aclose())
    with pytest.raises(ConfigError, match="webhooks.concurrency"):
        parse_config({"webhooks": {"concurrency": 0}}, "test", env={})
    with pytest.raises(ConfigError, match="webhooks.allow_private: unknown key"):
        parse_config({"webhooks": {"allow_private": True}}, "test", env={})
