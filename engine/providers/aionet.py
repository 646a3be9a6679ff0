"""The network streams every HTTP connection (plain or TLS) reads and writes through, on
asyncio's own transports (httpcore's AsyncNetworkStream / AsyncNetworkBackend interface).

Why not httpcore's default (anyio streams): every read and write there enters an anyio
cancel scope, every idle-connection check polls the socket through a dict of typed
attributes, and TLS runs through anyio's MemoryBIO wrapper. Here a read is one future on
the connection's asyncio protocol with one timer for its timeout, "is the idle connection
readable" is two attribute reads, the writes made in one event-loop tick leave in one
send (a request's head and body are one packet), and TLS is asyncio's own `start_tls`
with the caller's `ssl.SSLContext` (certificate verification as the context says).
The provider's whole-call deadline reaches each wait as its timeout (what is left of the
call); a cancellation (an aborted run) cancels the awaited future; either way the caller
then closes the connection."""

import asyncio
import select
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import anyio
import httpcore

FLUSH_AT = 64 * 1024  # pending write bytes sent at once rather than at the end of the tick
READ_HIGH_WATER = 256 * 1024  # received bytes buffered before the socket stops being read


class _Connection(asyncio.Protocol):
    """One connection's received bytes, its end, and who waits for them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None  # why the connection was lost, if not cleanly
        self.lost = False
        self.waiter: asyncio.Future[bool] | None = None  # a read waiting for data
        self.drain: asyncio.Future[bool] | None = None  # a write waiting for room
        self.writing_paused = False
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_HIGH_WATER and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake("waiter")

    def eof_received(self) -> None:
        self.eof = True
        self._wake("waiter")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.eof = True
        self.error = exc
        self._wake("waiter")
        self._wake("drain")

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake("drain")

    def _wake(self, which: str) -> None:
        future = getattr(self, which)
        if future is not None and not future.done():
            future.set_result(True)

    async def wait(self, which: str, timeout: float | None) -> bool:
        """Wait for data (`waiter`) or room to write (`drain`); False if `timeout` passed."""
        future: asyncio.Future[bool] = self.loop.create_future()
        setattr(self, which, future)
        timer = None if timeout is None else self.loop.call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            setattr(self, which, None)
            if timer is not None:
                timer.cancel()

    def take(self, max_bytes: int) -> bytes:
        data = self.chunks.popleft()
        if len(data) > max_bytes:
            self.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        self.buffered -= len(data)
        if self.reading_paused and self.buffered <= READ_HIGH_WATER // 2 and self.transport:
            self.reading_paused = False
            self.transport.resume_reading()
        return data


def _expire(future: "asyncio.Future[bool]") -> None:
    if not future.done():
        future.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, connection: _Connection) -> None:
        self._transport = transport
        self._connection = connection
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._flush()
        connection = self._connection
        if not connection.chunks and not connection.eof:
            if not await connection.wait("waiter", timeout):
                raise httpcore.ReadTimeout("timed out waiting for the server")
        if connection.chunks:
            return connection.take(max_bytes)
        if connection.error is not None:
            raise httpcore.ReadError(str(connection.error) or type(connection.error).__name__)
        return b""  # the server closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        connection = self._connection
        if connection.lost or self._transport.is_closing():
            raise httpcore.WriteError(str(connection.error or "the connection is closed"))
        if not self._pending:
            connection.loop.call_soon(self._flush)
        self._pending.append(buffer)
        self._pending_size += len(buffer)
        if self._pending_size >= FLUSH_AT:
            self._flush()
        while connection.writing_paused and not connection.lost:
            if not await connection.wait("drain", timeout):
                raise httpcore.WriteTimeout("timed out sending to the server")
        if connection.lost and connection.error is not None:
            raise httpcore.WriteError(str(connection.error))

    def _flush(self) -> None:
        """Hand the writes made so far to the transport, as one send."""
        if self._pending:
            data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            if not self._transport.is_closing():
                self._transport.write(data)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        self._pending.clear()
        self._transport.abort()  # as httpcore's default: no TLS close_notify, no lingering

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self._flush()
        connection = self._connection
        try:
            with anyio.fail_after(timeout):
                transport = await connection.loop.start_tls(
                    self._transport, connection, ssl_context, server_hostname=server_hostname
                )
        except BaseException as exc:
            self._transport.abort()
            if isinstance(exc, TimeoutError):
                raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
            if isinstance(exc, (OSError, EOFError)):  # a failed verification is an ssl.SSLError
                raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
            raise
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the server closed the connection during the TLS handshake")
        connection.transport = transport  # type: ignore[assignment]  # flow control through TLS
        return AsyncioStream(transport, connection)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # idle yet readable: the server closed it (or sent junk)
            connection = self._connection
            return bool(connection.chunks) or connection.eof or connection.lost or _socket_readable(self._transport)
        name = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }.get(info)
        return self._transport.get_extra_info(name) if name else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    HAPPY_EYEBALLS_DELAY_S = 0.25  # as anyio's connect_tcp: IPv6 and IPv4 raced

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        connection = _Connection(loop)
        try:
            with anyio.fail_after(timeout):
                transport, _ = await loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    local_addr=(local_address, 0) if local_address else None,
                    happy_eyeballs_delay=self.HAPPY_EYEBALLS_DELAY_S,
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, connection)  # type: ignore[arg-type]

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _socket_readable(transport: asyncio.BaseTransport) -> bool:
    """Whether the connection's socket has something to read right now — on an idle
    connection, the server's FIN (or junk) that the event loop has not handled yet: a
    server that closes a kept-alive connection just after its response is seen before the
    next request is sent on it, not after."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0:
        return True
    poll = select.poll()  # not select(): it fails on descriptors past 1023
    poll.register(sock.fileno(), select.POLLIN)
    try:
        return bool(poll.poll(0))
    except OSError:
        return True
