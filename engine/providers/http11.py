"""HTTP/1.1 messages for a client that sends one request at a time (RFC 9112): the request
written whole, the response read by its framing. It replaces h11's state machine, which
cost ~190 µs of CPU per call (header regexes, one event object per step) where this costs
~25; tests/test_http11.py checks it against h11 on generated and hostile responses.

Framing of a response: none for 1xx (skipped), 204 and 304; `Transfer-Encoding: chunked`;
`Content-Length`; else the body runs to the end of the connection. The connection is kept
for the next request only after an HTTP/1.1 response that did not say `Connection: close`,
was framed by length or chunks, and had nothing after it."""

import math
import re
import time
import zlib
from collections.abc import Awaitable, Callable

import httpx

MAX_HEAD = 64 * 1024  # status line and headers, as one block (h11 allows 16 KiB)
MAX_LINE = 8 * 1024  # one chunk-size or trailer line
MAX_DECODED = 256 * 1024 * 1024  # a compressed reply's body once decompressed

# The grammar of RFC 9112 with h11's leniencies (servers in the wild need them): a line may
# end in LF alone, the reason phrase may be missing, a header value is any bytes but NUL,
# CR, LF and other whitespace save space and tab between words.
_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|[^\x00\s])*))?")
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FIELD = re.compile(rb"([-!#$%&'*+.^_`|~0-9A-Za-z]+):[ \t]*((?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?)[ \t]*")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")  # what would end a request header early
_CHUNK = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_DIGITS = re.compile(rb"[0-9]+")
_FOLD = re.compile(rb"[ \t]+")

Headers = list[tuple[bytes, bytes]]


_CHECKED: set[tuple[bytes, bytes]] = set()  # headers found legal (the same few, request after request)
MAX_CHECKED = 256


def request_bytes(method: bytes, target: bytes, headers: Headers, body: bytes) -> bytes:
    """The whole request. A header that could end the head early (a CR, LF or NUL, say in
    an API key) is refused here rather than sent."""
    lines = [b"%s %s HTTP/1.1" % (method, target)]
    for header in headers:
        name, value = header
        if header not in _CHECKED:
            if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                raise httpx.LocalProtocolError(f"illegal header {name!r} (or its value) in the request")
            if len(_CHECKED) < MAX_CHECKED and name.lower() != b"authorization":  # no key kept
                _CHECKED.add(header)
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Request:
    """A request to send: `origin` is (scheme, host, port); `timeouts` has the connect, read
    and write timeouts in seconds (None: no limit); `deadline` (time.monotonic()) bounds
    the whole exchange, every wait included."""

    __slots__ = ("method", "origin", "target", "headers", "body", "timeouts", "deadline")

    def __init__(
        self,
        method: bytes,
        origin: tuple[bytes, bytes, int],
        target: bytes,
        headers: Headers,
        body: bytes,
        timeouts: dict[str, float | None],
        deadline: float = math.inf,
    ) -> None:
        self.method, self.origin, self.target, self.headers = method, origin, target, headers
        self.body, self.timeouts, self.deadline = body, timeouts, deadline

    def wait_at_most(self, timeout: float | None) -> float:
        """`timeout` (seconds, None: none) cut to what is left before the deadline."""
        left = self.deadline - time.monotonic()
        return left if timeout is None else min(timeout, left)


class Response:
    def __init__(self, status: int, reason: bytes, headers: Headers, body: bytes, reusable: bool) -> None:
        self.status, self.reason, self.headers, self.body, self.reusable = status, reason, headers, body, reusable

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        return next((value for n, value in self.headers if n.lower() == name), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def decoded(self, limit: int = MAX_DECODED) -> "Response":
        """The body with its Content-Encoding (gzip, deflate, or both in turn) undone, at most
        `limit` bytes of it; an encoding the client never asks for is left as it is."""
        body = self.body
        for coding in reversed(_values(self.headers, b"content-encoding")):
            try:
                if coding in (b"gzip", b"x-gzip"):
                    body = _inflate(body, zlib.MAX_WBITS | 16, limit)
                elif coding == b"deflate":  # zlib-wrapped as the RFC says, or raw as some servers send
                    try:
                        body = _inflate(body, zlib.MAX_WBITS, limit)
                    except zlib.error:
                        body = _inflate(body, -zlib.MAX_WBITS, limit)
                elif coding != b"identity":
                    break
            except zlib.error as exc:
                raise httpx.RemoteProtocolError(
                    f"the reply's {coding.decode('latin-1')} body is damaged ({exc})"
                ) from None
        self.body = body
        return self


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit)
    if inflater.unconsumed_tail:
        raise httpx.RemoteProtocolError(f"reply larger than {limit} bytes once decompressed")
    return out


class Reader:
    """Reads one response from `read(n)` (b"" at the end of the connection)."""

    def __init__(self, read: Callable[[int], Awaitable[bytes]], size: int = 64 * 1024) -> None:
        self._read, self._size = read, size
        self.buffer = bytearray()
        self.ended = False

    async def _more(self, what: str) -> None:
        data = b"" if self.ended else await self._read(self._size)
        if not data:
            self.ended = True
            raise httpx.RemoteProtocolError(f"peer closed connection without sending complete message body: {what}")
        self.buffer += data

    async def _until(self, find: Callable[[bytearray, int], tuple[int, int] | None], limit: int, what: str) -> bytes:
        """The bytes before what `find` finds (from an offset on), at most `limit` of them;
        taken off the buffer with what was found."""
        searched = 0
        while (found := find(self.buffer, searched)) is None:
            if len(self.buffer) > limit:
                raise httpx.RemoteProtocolError(f"{what} longer than {limit} bytes")
            searched = max(0, len(self.buffer) - 3)  # a mark may straddle two reads
            await self._more(what)
        start, end = found
        if start > limit:
            raise httpx.RemoteProtocolError(f"{what} longer than {limit} bytes")
        data = bytes(self.buffer[:start])
        del self.buffer[:end]
        return data

    async def _head(self) -> bytes:
        """The status line and headers, up to the blank line."""
        return await self._until(_blank_line, MAX_HEAD, "response head")

    async def _line(self) -> bytes:
        """One CRLF-ended line of the chunked framing, without its CRLF."""
        return await self._until(_crlf, MAX_LINE, "chunk line")

    async def _exactly(self, n: int, what: str) -> bytes:
        while len(self.buffer) < n:
            await self._more(what)
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    async def response(self) -> Response:
        while True:  # informational (1xx) responses are skipped
            if not self.buffer:
                data = await self._read(self._size)
                if not data:
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
                self.buffer += data
            version, status, reason, headers = parse_head(await self._head())
            if status == 101:
                raise httpx.RemoteProtocolError("the server switched protocols")
            if status >= 200:
                break
        length, chunked = _framing(headers)
        reusable = version >= b"1.1" and b"close" not in _values(headers, b"connection")
        if status in (204, 304):
            body = b""
        elif chunked:
            body = await self._chunked()
        elif length is not None:
            body = await self._exactly(length, "incomplete body")
        else:  # no framing: the body is whatever comes until the server closes
            while not self.ended:
                data = await self._read(self._size)
                self.buffer += data
                self.ended = not data
            body, reusable = bytes(self.buffer), False
            self.buffer.clear()
        return Response(status, reason, headers, body, reusable and not self.buffer)

    async def _chunked(self) -> bytes:
        chunks = []
        while True:
            line = await self._line()
            match = _CHUNK.fullmatch(line)
            if match is None:
                raise httpx.RemoteProtocolError(f"bad chunk size line {line[:40]!r}")
            size = int(match[1], 16)
            if size == 0:
                break
            chunks.append(await self._exactly(size, "incomplete chunked read"))
            if await self._exactly(2, "incomplete chunked read") != b"\r\n":
                raise httpx.RemoteProtocolError("chunk not followed by CRLF")
        while len(self.buffer) < 2 and self.buffer != b"\n":  # the trailers' first bytes
            await self._more("incomplete chunked read")
        if self.buffer.startswith((b"\r\n", b"\n")):  # no trailers
            del self.buffer[: 2 if self.buffer[0] == 13 else 1]
        else:
            _fields(_lines(await self._head()))  # trailers: checked as headers are, then ignored
        return b"".join(chunks)


def _blank_line(buffer: bytearray, start: int) -> tuple[int, int] | None:
    match = _HEAD_END.search(buffer, start)
    return None if match is None else match.span()


def _crlf(buffer: bytearray, start: int) -> tuple[int, int] | None:
    at = buffer.find(b"\r\n", start)
    return None if at < 0 else (at, at + 2)


def parse_head(block: bytes) -> tuple[bytes, int, bytes, Headers]:
    """(HTTP version, status, reason, headers) of a response head without its blank line."""
    lines = _lines(block)
    match = _STATUS.fullmatch(lines[0])
    if match is None:
        raise httpx.RemoteProtocolError(f"bad status line {lines[0][:80]!r}")
    return match[1], int(match[2]), match[3] or b"", _fields(lines[1:])


def _lines(block: bytes) -> list[bytes]:
    """A head's lines: each ends in LF, or CR LF (one CR dropped)."""
    return [line[:-1] if line.endswith(b"\r") else line for line in block.split(b"\n")]


def _fields(lines: list[bytes]) -> Headers:
    """Header lines as (name, value); a line that starts with a space or tab continues the
    one before (obsolete folding, joined with a space)."""
    joined: list[bytes] = []
    for line in lines:
        fold = _FOLD.match(line)
        if fold is None:
            joined.append(line)
        elif joined:
            joined[-1] += b" " + line[fold.end() :]
        else:
            raise httpx.RemoteProtocolError("continuation line at the start of the headers")
    headers: Headers = []
    for line in joined:
        match = _FIELD.fullmatch(line)
        if match is None:
            raise httpx.RemoteProtocolError(f"bad header line {line[:80]!r}")
        headers.append((match[1], match[2]))
    return headers


def _framing(headers: Headers) -> tuple[int | None, bool]:
    """(Content-Length, chunked?): one Content-Length however often repeated, at most one
    Transfer-Encoding and only `chunked`; chunked wins over a length."""
    length: bytes | None = None
    chunked = False
    for name, value in headers:
        name = name.lower()
        if name == b"content-length":
            values = {v.strip() for v in value.split(b",")}
            if len(values) != 1 or (length is not None and length not in values):
                raise httpx.RemoteProtocolError("conflicting Content-Length headers")
            length = values.pop()
            if not _DIGITS.fullmatch(length) or len(length) > 20:
                raise httpx.RemoteProtocolError(f"bad Content-Length {length[:40]!r}")
        elif name == b"transfer-encoding":
            if chunked:
                raise httpx.RemoteProtocolError("multiple Transfer-Encoding headers")
            if value.lower() != b"chunked":
                raise httpx.RemoteProtocolError(f"unsupported Transfer-Encoding {value[:40]!r} (only chunked is)")
            chunked = True
    return (None if length is None else int(length)), chunked


def _values(headers: Headers, name: bytes) -> list[bytes]:
    """A header's comma-separated values over all its lines, lower-cased and stripped."""
    return [
        v.strip(b" \t").lower() for n, value in headers if n.lower() == name for v in value.split(b",") if v.strip()
    ]
