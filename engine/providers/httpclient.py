"""The HTTP client the OpenAI-compatible providers send on: keep-alive connections
(httpcore's HTTP/1.1 over asyncio's own transports, engine.providers.aionet) reused last in,
first out, one client shared by every experiment of a sweep."""

import asyncio
import ssl
from collections import defaultdict

import httpcore
import httpx

from engine.providers.aionet import AsyncioBackend

KEEPALIVE_EXPIRY_S = 5.0  # as httpx's default: an idle connection older than this is closed

# httpcore's errors as the httpx ones the provider classifies (the names are the same)
_ERRORS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    httpcore.ProxyError: httpx.ProxyError,
}

Origin = tuple[bytes, bytes, int]


class PooledTransport(httpx.AsyncBaseTransport):
    """Sends each request on an idle keep-alive connection to its origin (the one used
    last, so the fewest stay open) or on a new one (TCP, then TLS for https, verified by
    the SSL context), reads the whole body, and keeps the connection for the next request: at most `max_idle` idle per origin, none idle for
    longer than KEEPALIVE_EXPIRY_S, none the server has closed.

    Why not httpcore's AsyncConnectionPool: it does work quadratic in its number of
    connections on every request (encode/httpcore#1035). How many requests are in flight
    is the limiter's business (engine.limits), so this pool does not queue: taking an idle
    connection or making one is O(1)."""

    def __init__(self, max_idle: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_idle = max_idle
        self._tls = ssl_context  # made at the first https connection: plain HTTP needs none
        self._backend = AsyncioBackend()
        self._idle: defaultdict[Origin, list[httpcore.AsyncHTTP11Connection]] = defaultdict(list)
        self._open: set[httpcore.AsyncHTTP11Connection] = set()

    @property
    def connections(self) -> int:
        """Connections open now (in use or idle)."""
        return len(self._open)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        if scheme not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
        origin = (scheme, url.raw_host, url.port or (443 if scheme == b"https" else 80))
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=scheme, host=origin[1], port=origin[2], target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]
            extensions=request.extensions,
        )
        connection = None
        try:
            connection = await self._idle_one(origin) or await self._connect(origin, request)
            response = await connection.handle_async_request(core)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
        except BaseException as exc:
            if connection is not None:
                await self._drop(connection)
            mapped = next((_ERRORS[k] for k in type(exc).__mro__ if k in _ERRORS), None)
            if mapped is None:
                raise
            raise mapped(str(exc)) from exc
        await self._give_back(origin, connection)
        return httpx.Response(response.status, headers=response.headers, content=body,
                              extensions=response.extensions, request=request)

    async def _idle_one(self, origin: Origin) -> httpcore.AsyncHTTP11Connection | None:
        idle = self._idle[origin]
        while idle:
            connection = idle.pop()
            if not connection.has_expired():
                return connection
            await self._drop(connection)
        return None

    async def _connect(self, origin: Origin, request: httpx.Request) -> httpcore.AsyncHTTP11Connection:
        timeout = request.extensions.get("timeout", {}).get("connect")
        host = origin[1].decode("ascii")
        stream = await self._backend.connect_tcp(host, origin[2], timeout=timeout)
        if origin[0] == b"https":
            if self._tls is None:
                self._tls = httpx.create_ssl_context()  # certifi, or SSL_CERT_FILE / SSL_CERT_DIR
            self._tls.set_alpn_protocols(["http/1.1"])
            stream = await stream.start_tls(self._tls, server_hostname=host, timeout=timeout)
        connection = httpcore.AsyncHTTP11Connection(
            httpcore.Origin(*origin), stream, keepalive_expiry=KEEPALIVE_EXPIRY_S)
        self._open.add(connection)
        return connection

    async def _give_back(self, origin: Origin, connection: httpcore.AsyncHTTP11Connection) -> None:
        idle = self._idle[origin]
        if connection.is_idle() and len(idle) < self.max_idle:
            idle.append(connection)
        else:
            await self._drop(connection)

    async def _drop(self, connection: httpcore.AsyncHTTP11Connection) -> None:
        self._open.discard(connection)
        await connection.aclose()

    async def aclose(self) -> None:
        self._idle.clear()
        while self._open:
            await self._drop(next(iter(self._open)))
        await asyncio.sleep(0)  # a closed connection's socket is released in a loop callback


class HTTPClient:
    """Sends prepared `httpx.Request`s on a transport, nothing more: no cookies kept
    between requests, no redirects followed, no auth flow (headers travel with each
    request), so none of httpx.AsyncClient's per-request bookkeeping."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self.is_closed = False

    async def send(self, request: httpx.Request) -> httpx.Response:
        if self.is_closed:
            raise RuntimeError("the HTTP client is closed")
        response = await self.transport.handle_async_request(request)
        await response.aread()
        return response

    async def aclose(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            await self.transport.aclose()


class SharedClient:
    """One HTTPClient (keep-alive pool of up to `max_connections` per origin) for every
    provider attached to it: one pool, one TLS context, connections reused across the
    experiments of a sweep. Closed when the last provider detaches."""

    def __init__(self, max_connections: int, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.client = HTTPClient(transport or PooledTransport(max_connections))
        self.users = 0

    def attach(self) -> HTTPClient:
        self.users += 1
        return self.client

    async def detach(self) -> None:
        self.users -= 1
        if self.users == 0:
            await self.client.aclose()
