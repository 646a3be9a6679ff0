"""engine/providers/http11.py against h11 (the HTTP/1.1 state machine it replaced) as the
oracle: the same responses, however the bytes are cut into reads, give the same status,
headers, body and keep-alive verdict; what h11 refuses, it refuses; and the hostile cases
(a cut, an endless head, a header that would split the request) each fail with one clear error."""

import asyncio
import gzip
import zlib

import h11
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.providers import http11


def reads(data: bytes, cuts: list[int]):
    """A `read(n)` that hands out `data` in pieces ending at `cuts`, then b"" (closed)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], points, strict=False) if b > a]

    async def read(n: int) -> bytes:
        if not pieces:
            return b""
        piece = pieces.pop(0)
        if len(piece) > n:
            pieces.insert(0, piece[n:])
            piece = piece[:n]
        return piece

    read.pieces = pieces
    return read


def ours(data: bytes, cuts: list[int] = ()) -> http11.Response:
    """The response read 7 bytes at a time at most; bytes the server sent after it and not
    yet read make the connection unusable, as the pool finds it readable while idle."""
    read = reads(data, list(cuts))
    response = asyncio.run(http11.Reader(read, 7).response())
    response.reusable = response.reusable and not read.pieces
    return response


def oracle(data: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
    """h11's reading of a response to a POST: status, reason, headers (names lower-cased),
    body, and whether the connection can carry the next request."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(data)
    body, head, closed = b"", None, False
    while True:
        event = connection.next_event()
        if isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            break
        elif event is h11.NEED_DATA and not closed:
            connection.receive_data(b"")  # the server closes: a body without framing ends here
            closed = True
        elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("incomplete")
    reusable = not closed and connection.our_state is h11.DONE and connection.their_state is h11.DONE
    if reusable:
        connection.start_next_cycle()
        reusable = connection.their_state is h11.IDLE and not connection.trailing_data[0]
    return head.status_code, head.reason, list(head.headers), body, reusable


def comparable(name: bytes, value: bytes) -> bytes:
    """h11 keeps a Transfer-Encoding value lower-cased and a Content-Length as its one number."""
    if name == b"content-length":
        return {v.strip() for v in value.split(b",")}.pop()
    return value.lower() if name == b"transfer-encoding" else value


def compare(data: bytes, cuts: list[int]) -> None:
    try:
        expected = oracle(data)
    except h11.RemoteProtocolError:
        with pytest.raises(httpx.RemoteProtocolError):
            ours(data, cuts)
        return
    got = ours(data, cuts)
    status, reason, headers, body, reusable = expected
    assert (got.status, got.reason, got.body) == (status, reason, body)
    assert [(n.lower(), comparable(n.lower(), v)) for n, v in got.headers] == headers
    assert got.reusable == reusable


BODY = st.binary(max_size=300)
NAMES = st.sampled_from([b"Content-Type", b"Server", b"X-Request-Id", b"date", b"Retry-After", b"Set-Cookie"])
VALUES = st.binary(max_size=40).map(lambda v: bytes(b for b in v if b >= 0x20 and b != 0x7F).strip(b" \t"))


@st.composite
def responses(draw) -> bytes:
    status = draw(st.sampled_from([200, 200, 200, 201, 204, 304, 400, 401, 402, 429, 500, 503]))
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    body = draw(BODY)
    headers = [(draw(NAMES), draw(VALUES)) for _ in range(draw(st.integers(0, 4)))]
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if draw(st.booleans()):
        headers.append((b"Connection", draw(st.sampled_from([b"close", b"keep-alive", b"Keep-Alive, close"]))))
    if status in (204, 304):
        body, framing = b"", draw(st.sampled_from(["length", "none"]))
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
        wire = body
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        sizes = draw(st.lists(st.integers(1, 50), max_size=8))
        wire, at = b"", 0
        for size in sizes:
            piece = body[at : at + size]
            if piece:
                extension = draw(st.sampled_from([b"", b";name=value"]))
                wire += b"%x%s\r\n%s\r\n" % (len(piece), extension, piece)
                at += len(piece)
        body = body[:at]
        wire += b"0\r\n" + draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"])) + b"\r\n"
    else:
        wire = body if framing == "close" else b""
    informational = draw(
        st.sampled_from([b"", b"", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"])
    )
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))  # a bare LF, as some servers end lines
    if headers and draw(st.booleans()):  # an obsolete folded header: a line that continues the one before
        headers.insert(0, (b"X-Folded", b"first" + eol + b" \tsecond"))
    head = b"HTTP/%s %d %s" % (version, status, draw(st.sampled_from([b"OK", b"", b"Too Many Requests"])))
    lines = [head] + [n + b": " + v for n, v in headers]
    return informational + b"".join(line + eol for line in lines) + eol + wire


@settings(max_examples=400, deadline=None)
@given(responses(), st.lists(st.integers(0, 2000), max_size=6))
def test_generated_responses_read_as_h11_reads_them(data, cuts):
    compare(data, cuts)


@settings(max_examples=300, deadline=None)
@given(responses(), st.integers(0, 10_000), st.binary(min_size=1, max_size=3))
def test_damaged_responses_are_refused_as_h11_refuses_them_or_read_alike(data, at, junk):
    """A cut anywhere, or junk written over a few bytes."""
    compare(data[: at % (len(data) + 1)], [])
    at %= len(data)
    compare(data[:at] + junk + data[at + len(junk) :], [3, 40])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "Server disconnected without sending a response."),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "incomplete body"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "incomplete chunked read"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n", "response head longer than"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 9000, "chunk line longer than"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size line"),
        (b"HTTP/1.1 200 OK\r\n folded: no\r\n\r\n", "continuation line at the start"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", "bad header line"),
        (b"HTTP/2 200\r\n\r\n", "bad status line"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "switched protocols"),
    ],
)
def test_hostile_responses_fail_with_a_clear_error(data, message):
    with pytest.raises(httpx.RemoteProtocolError, match=message.replace("(", r"\(")):
        ours(data)


def test_a_head_that_never_ends_is_refused_before_memory_runs_out():
    async def endless(n: int) -> bytes:
        return b"X-Pad: aaaaaaaa\r\n" * 100

    async def read() -> None:
        reader = http11.Reader(endless, 64 * 1024)
        with pytest.raises(httpx.RemoteProtocolError, match="response head longer than"):
            await reader.response()
        assert len(reader.buffer) < 2 * http11.MAX_HEAD

    asyncio.run(read())


@pytest.mark.parametrize("bad", [b"sk-abc\r\nX-Injected: 1", b"sk\nabc", b"sk\x00abc"])
def test_a_header_that_would_split_the_request_is_refused(bad):
    with pytest.raises(httpx.LocalProtocolError):
        http11.request_bytes(b"POST", b"/v1", [(b"Authorization", b"Bearer " + bad)], b"{}")


@pytest.mark.parametrize("name", [b"X,Y", b"X Y", b"", b"X:", b"X\r\nY"])
def test_a_header_name_that_is_no_token_is_refused_wherever_it_stands(name):
    for at in range(3):
        headers = [(b"Host", b"h"), (b"Accept", b"*/*")]
        headers.insert(at, (name, b"v"))
        with pytest.raises(httpx.LocalProtocolError, match="illegal header"):
            http11.request_bytes(b"POST", b"/v1", headers, b"{}")


def test_headers_found_legal_are_remembered_but_never_a_bad_one_and_not_without_bound(monkeypatch):
    monkeypatch.setattr(http11, "_CHECKED", set())
    http11.request_bytes(b"POST", b"/v1", [(b"X-Title", b"good"), (b"Authorization", b"Bearer sk-good")], b"{}")
    assert http11._CHECKED == {(b"X-Title", b"good")}  # the key is not kept
    with pytest.raises(httpx.LocalProtocolError):  # same name, a value that would split the request
        http11.request_bytes(b"POST", b"/v1", [(b"X-Title", b"good\r\nX: 1")], b"{}")
    for length in range(3 * http11.MAX_CHECKED):
        http11.request_bytes(b"POST", b"/v1", [(b"Content-Length", b"%d" % length)], b"")
    assert len(http11._CHECKED) == http11.MAX_CHECKED
    with pytest.raises(httpx.LocalProtocolError):  # checked still, past the bound
        http11.request_bytes(b"POST", b"/v1", [(b"Content-Length", b"1\n2")], b"")


def test_a_request_without_headers_is_only_the_request_line():
    assert http11.request_bytes(b"GET", b"/", [], b"") == b"GET / HTTP/1.1\r\n\r\n"


def test_a_request_is_what_h11_would_send():
    headers = [(b"Host", b"127.0.0.1:8000"), (b"Content-Length", b"2"), (b"Authorization", b"Bearer sk-1")]
    sent = http11.request_bytes(b"POST", b"/v1/chat/completions", headers, b"{}")
    server = h11.Connection(h11.SERVER)
    server.receive_data(sent)
    request, data, end = server.next_event(), server.next_event(), server.next_event()
    assert request.method == b"POST" and request.target == b"/v1/chat/completions"
    assert list(request.headers) == [(n.lower(), v) for n, v in headers]
    assert data.data == b"{}" and isinstance(end, h11.EndOfMessage)


def compressed(body: bytes, encoding: bytes) -> http11.Response:
    return http11.Response(200, b"OK", [(b"Content-Encoding", encoding)], body, True)


@pytest.mark.parametrize(
    "encoding, pack",
    [
        (b"gzip", gzip.compress),
        (b"deflate", zlib.compress),
        (b"deflate", lambda d: zlib.compress(d)[2:-4]),  # raw deflate, as some servers send it
        (b"identity", lambda d: d),
    ],
)
def test_a_compressed_body_is_unpacked(encoding, pack):
    assert compressed(pack(b'{"a": 1}'), encoding).decoded().body == b'{"a": 1}'


def test_gzip_then_deflate_are_undone_in_turn():
    body = zlib.compress(gzip.compress(b"xyz"))
    assert compressed(body, b"gzip, deflate").decoded().body == b"xyz"


def test_a_damaged_or_bombing_body_is_refused():
    with pytest.raises(httpx.RemoteProtocolError, match="gzip body is damaged"):
        compressed(b"\x1f\x8b not gzip", b"gzip").decoded()
    bomb = gzip.compress(b"\0" * 5_000_000)  # 5 kB that would unpack to 5 MB
    with pytest.raises(httpx.RemoteProtocolError, match="larger than 1000000 bytes"):
        compressed(bomb, b"gzip").decoded(limit=1_000_000)
