"""The HTTP client the OpenAI-compatible providers send on: HTTP/1.1 (engine.providers.http11)
over asyncio's own transports (engine.providers.aionet), keep-alive connections reused last
in, first out, one client shared by every experiment of a sweep."""

import asyncio
import ssl
import time
from collections import defaultdict

import anyio
import httpcore
import httpx

from engine.providers import http11
from engine.providers.aionet import AsyncioBackend, AsyncioStream

KEEPALIVE_EXPIRY_S = 5.0  # as httpx's default: an idle connection older than this is closed
READ_SIZE = 64 * 1024
WARM_PARALLEL = 8  # connections opened ahead at once (PooledTransport.prepare)

# errors of the network layer as the httpx ones the provider classifies
_ERRORS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
}

Origin = tuple[bytes, bytes, int]


class Connection:
    """One HTTP/1.1 connection over an aionet stream, one request at a time (engine.providers.
    http11), reusable when the last response left it so."""

    def __init__(self, stream: AsyncioStream) -> None:
        self.stream = stream
        self.idle_since = time.monotonic()
        self.open = True  # False once a response left it unusable
        self.warmed = False  # opened ahead (PooledTransport.prepare) and not used yet

    def expired(self) -> bool:
        """Idle too long, or readable while idle: the server closed it (or sent junk)."""
        return time.monotonic() - self.idle_since > KEEPALIVE_EXPIRY_S or self.stream.get_extra_info("is_readable")

    async def exchange(self, request: http11.Request) -> http11.Response:
        """Send `request`; the whole response."""
        timeouts = request.timeouts
        self.open = False  # until the response is read whole and says the connection stays
        data = http11.request_bytes(request.method, request.target, request.headers, request.body)
        await self.stream.write(data, request.wait_at_most(timeouts.get("write")))
        read = timeouts.get("read")
        response = await http11.Reader(lambda n: self.stream.read(n, request.wait_at_most(read)), READ_SIZE).response()
        self.open = response.reusable
        self.idle_since = time.monotonic()
        return response

    async def aclose(self) -> None:
        await self.stream.aclose()


class PooledTransport:
    """Sends each request on an idle keep-alive connection to its origin (the one used
    last, so the fewest stay open) or on a new one (TCP, then TLS for https, verified by
    the SSL context), reads the whole body and undoes its Content-Encoding (gzip, deflate:
    what the client says it accepts), and keeps the connection for the next request:
    at most `max_idle` idle per origin, none idle for longer than KEEPALIVE_EXPIRY_S, none
    the server has closed.

    Why not httpcore's pool and connections: the pool does work quadratic in its number of
    connections on every request (encode/httpcore#1035), and every request there takes
    locks and cancel-shielded sections that each cost an event-loop turn. How many requests
    are in flight is the limiter's business (engine.limits), and a connection here serves
    one request at a time, so neither is needed: taking an idle connection or making one
    is O(1)."""

    def __init__(self, max_idle: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.max_idle = max_idle
        self._tls = ssl_context  # made at the first https connection: plain HTTP needs none
        self._backend = AsyncioBackend()
        self._idle: defaultdict[Origin, list[Connection]] = defaultdict(list)
        self._open: set[Connection] = set()
        self.warming = True  # False once opening connections ahead proved useless
        self._connecting = 0  # connections being opened now
        self._planned = 0  # connections warm-ups have yet to start opening

    async def prepare(self, origin: Origin, wanted: int, timeout: float | None) -> None:
        """Open connections to `origin` ahead of a burst of requests until `wanted` (at most
        max_idle) are open or planned, WARM_PARALLEL at a time (a burst of connections at
        once makes a server accept them all before it reads any request), so that their TCP
        and TLS set-ups happen while the loop would idle rather than in the burst. Best
        effort, and given up for good when it fails once or a connection opened ahead
        expires unused (requests come later than the keep-alive lasts: opening ahead would
        only waste set-ups); a request that finds no idle connection opens one, as ever.
        Warm-ups at once (the experiments of a sweep share this pool) count each other's
        planned connections, so together they never open more than the pool keeps."""
        missing = min(wanted, self.max_idle) - len(self._open) - self._connecting - self._planned
        if not self.warming or missing <= 0:
            return
        self._planned += missing

        async def opener() -> None:
            nonlocal missing
            while self.warming and missing > 0 and len(self._idle[origin]) < self.max_idle:
                missing -= 1
                self._planned -= 1  # now counted in _connecting
                try:
                    connection = await self._connect(origin, timeout)
                except Exception:  # never into the round: the request itself will meet and report it
                    self.warming = False
                    return
                idle = self._idle[origin]
                if len(idle) < self.max_idle:
                    connection.warmed = True
                    idle.append(connection)
                else:
                    self._drop(connection)

        try:
            async with anyio.create_task_group() as group:
                for _ in range(min(WARM_PARALLEL, missing)):
                    group.start_soon(opener)
        finally:
            self._planned -= missing  # planned, never started (given up or cancelled)

    @property
    def connections(self) -> int:
        """Connections open now (in use or idle)."""
        return len(self._open)

    async def send(self, request: http11.Request) -> http11.Response:
        origin = request.origin
        if origin[0] not in (b"http", b"https"):
            raise httpx.UnsupportedProtocol(f"unsupported protocol '{origin[0].decode('latin-1')}://'")
        connection = None
        try:
            connection = self._idle_one(origin) or await self._connect(
                origin, request.wait_at_most(request.timeouts.get("connect"))
            )
            response = await connection.exchange(request)
            response.decoded()
        except BaseException as exc:
            if connection is not None:
                self._drop(connection)
            mapped = next((_ERRORS[k] for k in type(exc).__mro__ if k in _ERRORS), None)
            if mapped is None:
                raise
            raise mapped(str(exc)) from exc
        idle = self._idle[origin]
        if connection.open and len(idle) < self.max_idle:
            idle.append(connection)
        else:
            self._drop(connection)
        return response

    def _idle_one(self, origin: Origin) -> Connection | None:
        idle = self._idle[origin]
        while idle:
            connection = idle.pop()
            if not connection.expired():
                connection.warmed = False
                return connection
            self.warming &= not connection.warmed
            self._drop(connection)
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> Connection:
        host = origin[1].decode("ascii")
        self._connecting += 1
        try:
            stream = await self._backend.connect_tcp(host, origin[2], timeout=timeout)
            if origin[0] == b"https":
                if self._tls is None:
                    self._tls = httpx.create_ssl_context()  # certifi, or SSL_CERT_FILE / SSL_CERT_DIR
                self._tls.set_alpn_protocols(["http/1.1"])
                stream = await stream.start_tls(self._tls, server_hostname=host, timeout=timeout)
        finally:
            self._connecting -= 1
        connection = Connection(stream)  # type: ignore[arg-type]
        self._open.add(connection)
        return connection

    def _drop(self, connection: Connection) -> None:
        self._open.discard(connection)
        connection.stream.close()

    async def aclose(self) -> None:
        self._idle.clear()
        while self._open:
            self._drop(next(iter(self._open)))
        await asyncio.sleep(0)  # a closed connection's socket is released in a loop callback


class HttpxTransport:
    """Any httpx transport (tests use httpx.MockTransport) in place of the network: each
    request made an `httpx.Request`, the reply read whole (httpx undoes its encoding)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def send(self, request: http11.Request) -> http11.Response:
        scheme, host, port = request.origin
        url = httpx.URL(scheme=scheme.decode(), host=host.decode(), port=port, raw_path=request.target)
        sent = httpx.Request(
            request.method.decode(),
            url,
            headers=[(n, v) for n, v in request.headers if n.lower() not in (b"host", b"content-length")],
            content=request.body,
            extensions={"timeout": dict(request.timeouts)},
        )
        with anyio.fail_after(max(0.0, request.deadline - time.monotonic())):
            response = await self.transport.handle_async_request(sent)
            body = await response.aread()
        headers = [(n, v) for n, v in response.headers.raw if n.lower() != b"content-encoding"]
        return http11.Response(response.status_code, response.reason_phrase.encode(), headers, body, True)

    async def aclose(self) -> None:
        await self.transport.aclose()


class HTTPClient:
    """Sends prepared requests on a transport, nothing more: no cookies kept between
    requests, no redirects followed, no auth flow (headers travel with each request)."""

    def __init__(self, transport: "PooledTransport | HttpxTransport") -> None:
        self.transport = transport
        self.is_closed = False

    async def send(self, request: http11.Request) -> http11.Response:
        if self.is_closed:
            raise RuntimeError("the HTTP client is closed")
        return await self.transport.send(request)

    async def aclose(self) -> None:
        if not self.is_closed:
            self.is_closed = True
            await self.transport.aclose()


class SharedClient:
    """One HTTPClient (keep-alive pool of up to `max_connections` per origin) for every
    provider attached to it: one pool, one TLS context, connections reused across the
    experiments of a sweep. Closed when the last provider detaches."""

    def __init__(
        self, max_connections: int, transport: "PooledTransport | httpx.AsyncBaseTransport | None" = None
    ) -> None:
        if transport is None:
            transport = PooledTransport(max_connections)
        elif not isinstance(transport, PooledTransport):
            transport = HttpxTransport(transport)
        self.client = HTTPClient(transport)
        self.users = 0

    def attach(self) -> HTTPClient:
        self.users += 1
        return self.client

    async def detach(self) -> None:
        self.users -= 1
        if self.users == 0:
            await self.client.aclose()
