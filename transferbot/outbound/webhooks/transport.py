"""An httpx transport whose every connection goes to an address the AddressGuard has just checked.

httpx resolves host names inside httpcore's network backend, at connect time; a check made
before the request (a separate lookup) would be a check of a different answer than the one
connected to. So the guard *is* the network backend: ``connect_tcp`` resolves the name once,
refuses if any address is refused, and connects to the checked IP itself. TLS still starts with
the URL's host name (httpcore passes it as SNI and the certificate is verified against it), so
pinning the IP costs no certificate checking.

httpx's own AsyncHTTPTransport does not take a network backend (encode/httpx#3749 is open), so
this is a small transport over httpcore's public API: a connection pool with our backend, and
httpcore's exceptions turned into httpx's, as AsyncHTTPTransport does.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator

import httpcore
import httpx

from transferbot.outbound.webhooks.urls import AddressGuard

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check, then connect to the checked address: one lookup per connection, no rebinding gap."""

    def __init__(self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.guard = guard
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.guard.resolve(host, port)
        except OSError as exc:  # socket.gaierror: the name does not resolve (now)
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
        failure: Exception | None = None
        for address in addresses:  # AddressRefused propagates as itself, above: every address was checked
            try:
                return await self.inner.connect_tcp(str(address), port, timeout=timeout, local_address=local_address,
                                                    socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _httpx_error(exc: Exception) -> httpx.TransportError | None:
    """The httpx exception of the same name as an httpcore one (they mirror each other), else None."""
    for cls in type(exc).__mro__:
        if not cls.__module__.startswith("httpcore"):
            continue
        target = getattr(httpx, cls.__name__, None)
        if isinstance(target, type) and issubclass(target, httpx.TransportError):
            return target(str(exc))
    return None


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _httpx_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpcore.Response) -> None:
        self._response = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for part in self._response.aiter_stream():
                yield part

    async def aclose(self) -> None:
        with _mapped():
            await self._response.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over a pooled, guarded connection per origin; no proxies (a proxy would resolve for us)."""

    def __init__(self, guard: AddressGuard, *, ssl_context: ssl.SSLContext | None = None,
                 limits: httpx.Limits | None = None, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        limits = limits or httpx.Limits()
        self.guard = guard
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(guard, inner),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host, port=request.url.port,
                             target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_ResponseStream(response), extensions=response.extensions)

    async def aclose(self) -> None:
        with _mapped():
            await self._pool.aclose()
