"""The network streams under the HTTP client (engine/providers/aionet.py), against small
raw servers on 127.0.0.1: each way a connection ends or stalls becomes the error the
HTTP layer expects (a timeout, a read error, or the end of the stream)."""

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import httpcore
import pytest

from engine.providers.aionet import AsyncioBackend

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_silent_server_is_a_read_timeout():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server, port = await serve(silent)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
    with pytest.raises(httpcore.ReadTimeout):
        await stream.read(1024, timeout=0.1)
    await stream.aclose()
    server.close()


async def test_writes_of_one_tick_arrive_and_the_reply_is_read():
    received: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(10))
        writer.write(b"pong")
        await writer.drain()

    server, port = await serve(echo)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
    await stream.write(b"head ", timeout=1)
    await stream.write(b"body!", timeout=1)
    assert await stream.read(1024, timeout=2) == b"pong"
    assert received == [b"head body!"]
    await stream.aclose()
    server.close()


async def test_a_server_that_closed_an_idle_connection_makes_it_readable_then_ended():
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server, port = await serve(close_at_once)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
    for _ in range(100):
        if stream.get_extra_info("is_readable"):
            break
        await asyncio.sleep(0.01)
    assert stream.get_extra_info("is_readable")  # the pool would not reuse it
    assert await stream.read(1024, timeout=1) == b""
    await stream.aclose()
    server.close()


async def test_a_connection_reset_mid_reply_is_a_read_error():
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(3)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: the peer gets a RST, not a FIN

    server, port = await serve(reset)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
    await stream.write(b"GET", timeout=1)
    assert (await stream.read(1024, timeout=2)).endswith(b"partial")
    with pytest.raises(httpcore.ReadError):
        await stream.read(1024, timeout=2)
    await stream.aclose()
    server.close()


async def test_a_server_that_does_not_read_is_a_write_timeout():
    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server, port = await serve(deaf)
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
    with pytest.raises(httpcore.WriteTimeout):
        await stream.write(b"x" * 64_000_000, timeout=0.2)  # more than the socket buffers hold
    await stream.aclose()
    server.close()


async def test_nothing_listening_is_a_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(httpcore.ConnectError):
        await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
