"""A local OpenRouter-shaped HTTP server for integration and fault tests.

Real HTTP/1.1 on 127.0.0.1 (port 0), served by a small asyncio server on its own thread,
so sync tests (the CLI's `anyio.run`) and async tests can both use it. It answers
`POST …/chat/completions` like OpenRouter: `usage.cost`, integer error codes with
`metadata`, `Retry-After`, the 402 in-flight budget, errors inside a 200 body. Faults are
scripted per request: a queue of `Reply`s (used first, in order), then an optional `rule`
deciding per request; anything else gets the normal answer. Every request is recorded,
and so is every dollar billed (`billed`: the sum of the finite, non-negative `usage.cost`
figures the server sent, whatever the rest of the reply was).

Normal answers: a decision prompt ("Decision (COOPERATE/DEFECT):") gets COOPERATE or
DEFECT, chosen by a hash of the prompt (so the same prompt always gets the same word);
any other prompt gets a short strategy ending in a "STRATEGY:" line."""

import asyncio
import gzip
import hashlib
import http
import json
import math
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Self
from urllib.parse import quote

from engine.config import Price
from engine.pricing import DEFAULT_PRICES

DECISION_MARKER = "Decision (COOPERATE/DEFECT):"
STRATEGY_REPLY = (
    "Reciprocity rewards cooperators and limits what a defector can take.\n\n"
    "STRATEGY: Cooperate the first time you meet an opponent; then copy its last move."
)


@dataclass
class Reply:
    """One scripted answer. Default: the normal completion after the server's latency."""

    status: int = 200
    json: Any = None  # the body as JSON; None: the normal completion (200) or an error body
    raw: bytes | None = None  # the body as is (e.g. invalid JSON)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # on top of the server's latency
    drop: bool = False  # close the connection without answering
    truncate: bool = False  # announce the whole body, send half of it, close
    close_after: bool = False  # answer in full (no "Connection: close"), then close the connection
    patch: "Patch | None" = None  # turns the normal answer into this reply's body
    trickle_s: float = 0.0  # send the body one byte at a time, this long apart
    encoding: str | None = None  # "gzip" or "deflate": the body compressed so (Content-Encoding)


Patch = Callable[["StubServer", dict[str, Any], Any], dict[str, Any]]  # (server, answer, request body)


@dataclass
class Seen:
    """A request the server received."""

    index: int  # 0-based, in arrival order
    time: float  # time.monotonic() on arrival
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any


# -- reply builders ------------------------------------------------------------------------


def error(
    status: int,
    message: str,
    *,
    metadata: dict[str, Any] | None = None,
    retry_after: str | None = None,
    in_body_200: bool = False,
) -> Reply:
    """OpenRouter's error shape `{"error": {"code", "message", "metadata"}}`; with
    `in_body_200` it comes inside an HTTP 200 (as OpenRouter does once a reply started)."""
    payload: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        payload["metadata"] = metadata
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status=200 if in_body_200 else status, json={"error": payload}, headers=headers)


def rate_limited(retry_after: str | None = "1") -> Reply:
    return error(429, "Rate limit exceeded", retry_after=retry_after)


def in_flight_402(retry_after: str = "1") -> Reply:
    return error(
        402,
        "Your in-flight requests already use your spending budget; retry shortly.",
        metadata={"limit_source": "openrouter_in_flight_budget"},
        retry_after=retry_after,
    )


def credits_402() -> Reply:
    return error(
        402,
        "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
        metadata={"limit_source": "openrouter_credits"},
    )


def completion(text: str | None, *, finish_reason: str = "stop", **extra: Any) -> Reply:
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish_reason, **extra}
    return Reply(json={"id": "gen-stub", "object": "chat.completion", "choices": [choice]})


EMPTY_CHOICES = Reply(json={"id": "gen-stub", "object": "chat.completion", "choices": []})
INVALID_JSON = Reply(raw=b'{"id": "gen-stub", "choices": [')
DROP = Reply(drop=True)
TRUNCATED = Reply(truncate=True)


def slow(delay_s: float) -> Reply:
    return Reply(delay_s=delay_s)


# -- money and network faults (billed but unusable replies, odd costs, trickles, key echoes) --

BILLED_EMPTY_SHAPES = ("empty", "null", "no_choices", "thinking")


def billed_empty(shape: str, cost: float | None = None) -> Reply:
    """A billed reply with nothing usable in it: content "" (`empty`), content null
    (`null`), `choices: []` (`no_choices`), or a reasoning model that spent max_tokens
    thinking (`thinking`: null content, finish `length`, reasoning text beside it). It is
    billed as max_tokens of output at the server's price (or `cost`), in `usage.cost`."""

    def patch(server: "StubServer", answer: dict[str, Any], body: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "" if shape == "empty" else None}
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": "stop"}
        if shape == "thinking":
            message["reasoning"] = "Let me weigh cooperation against defection at length..."
            choice["finish_reason"] = "length"
        answer["choices"] = [] if shape == "no_choices" else [choice]
        usage = answer["usage"]
        usage["completion_tokens"] = body.get("max_tokens", 100) if isinstance(body, dict) else 100
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["cost"] = (
            cost
            if cost is not None
            else server.price(answer["model"], usage["prompt_tokens"], usage["completion_tokens"])
        )
        return answer

    return Reply(patch=patch)


def odd_cost(value: float) -> Reply:
    """The normal answer with `usage.cost` replaced by `value` (NaN, Infinity, negative):
    written as the bare JSON tokens NaN / Infinity, as a lax server would."""

    def patch(server: "StubServer", answer: dict[str, Any], body: Any) -> dict[str, Any]:
        answer["usage"]["cost"] = value
        return answer

    return Reply(patch=patch)


def trickle(interval_s: float) -> Reply:
    """The normal answer, one byte every `interval_s` seconds (each read succeeds quickly,
    the whole reply takes len(body) x interval_s)."""
    return Reply(trickle_s=interval_s)


def rate_limited_past() -> Reply:
    """A 429 whose Retry-After is an HTTP date an hour in the past."""
    past = datetime.fromtimestamp(time.time() - 3600, UTC)
    return rate_limited(format_datetime(past, usegmt=True))


KEY_ECHO_FORMS = ("raw", "url", "suffix16", "every_byte")


def key_echo(key: str, form: str, status: int = 500) -> Reply:
    """An error body quoting the caller's key: as is (`raw`), URL-encoded (`url`), its last
    16 characters (`suffix16`), or percent-encoded byte by byte (`every_byte`)."""
    shown = {
        "raw": key,
        "url": quote(key, safe=""),
        "suffix16": key[-16:],
        "every_byte": "".join(f"%{b:02X}" for b in key.encode()),
    }[form]
    return error(status, f"upstream rejected credentials ...{shown} (echo)")


# -- rules -----------------------------------------------------------------------------------

Rule = Callable[[Seen], Reply | None]


def from_request(n: int, reply: Reply) -> Rule:
    """`reply` to request n (0-based) and every later one."""
    return lambda seen: reply if seen.index >= n else None


def first_attempt(reply: Reply) -> Rule:
    """`reply` the first time each distinct request body arrives; the repeat succeeds."""
    seen_bodies: set[str] = set()

    def rule(seen: Seen) -> Reply | None:
        digest = json.dumps(seen.body, sort_keys=True)
        if digest in seen_bodies:
            return None
        seen_bodies.add(digest)
        return reply

    return rule


def window(seconds: float, reply: Reply) -> Rule:
    """`reply` to every request arriving within `seconds` of the first one (a storm)."""
    start: list[float] = []

    def rule(seen: Seen) -> Reply | None:
        if not start:
            start.append(seen.time)
        return reply if seen.time - start[0] < seconds else None

    return rule


# -- the server ------------------------------------------------------------------------------


class ThreadedServer:
    """An asyncio server on 127.0.0.1 (a free port) in a thread and event loop of its own,
    serving each connection with `_serve`; `ssl` for a TLS one. `with` starts and stops it."""

    thread_name = "server"

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.port = 0
        self._ssl = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StubServer(ThreadedServer):
    thread_name = "stub-server"

    def __init__(self, *, latency_s: float = 0.0, prices: Mapping[str, Price] = DEFAULT_PRICES) -> None:
        self.latency_s = latency_s
        self.prices = dict(prices)
        self.script: deque[Reply] = deque()
        self.rule: Rule | None = None
        self.requests: list[Seen] = []
        self.billed = 0.0  # USD of every finite, non-negative usage.cost sent
        self._lock = threading.Lock()
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    # -- HTTP --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping; asyncio would report a cancelled handler as an error
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is to be closed."""
        line = await reader.readline()
        if not line.strip():
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        with self._lock:
            seen = Seen(len(self.requests), time.monotonic(), method, path, headers, body)
            self.requests.append(seen)
            reply = self.script.popleft() if self.script else None
            if reply is None and self.rule is not None:
                reply = self.rule(seen)
        if not (method == "POST" and path.endswith("/chat/completions")):
            reply = error(404, f"no route for {method} {path}")
        reply = reply or Reply()
        delay = self.latency_s + reply.delay_s
        if delay:
            await asyncio.sleep(delay)
        if reply.drop:
            return False
        if reply.raw is not None:
            data = reply.raw
        else:
            if reply.json is not None:
                payload = reply.json
            elif reply.status == 200:
                payload = self.answer(body)
                if reply.patch is not None:
                    payload = reply.patch(self, payload, body)
            else:
                payload = {"error": {"code": reply.status, "message": "stub error"}}
            self._bill(payload, reply)
            data = json.dumps(payload).encode()
        try:
            phrase = http.HTTPStatus(reply.status).phrase
        except ValueError:
            phrase = "Unknown"
        if reply.encoding is not None:
            data = gzip.compress(data) if reply.encoding == "gzip" else zlib.compress(data)
            reply.headers["Content-Encoding"] = reply.encoding
        head = [f"HTTP/1.1 {reply.status} {phrase}", "Content-Type: application/json", f"Content-Length: {len(data)}"]
        head += [f"{name}: {value}" for name, value in reply.headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if reply.trickle_s:
            for index in range(len(data)):
                writer.write(data[index : index + 1])
                await writer.drain()
                await asyncio.sleep(reply.trickle_s)
            return True
        writer.write(data[: len(data) // 2] if reply.truncate else data)
        await writer.drain()
        return not (reply.truncate or reply.close_after)

    def _bill(self, payload: Any, reply: Reply) -> None:
        """Count what this reply charges (a trickled or truncated one is charged too: the
        server did the work)."""
        usage = payload.get("usage") if isinstance(payload, dict) else None
        cost = usage.get("cost") if isinstance(usage, dict) else None
        if isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0:
            with self._lock:
                self.billed += cost

    def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        price = self.prices.get(model, Price(input=0.0, output=0.0))
        return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000

    def answer(self, body: Any) -> dict[str, Any]:
        """The normal completion for a chat request, with OpenRouter's usage and cost."""
        messages = body.get("messages", []) if isinstance(body, dict) else []
        model = body.get("model", "") if isinstance(body, dict) else ""
        prompt = messages[0].get("content", "") if messages else ""
        if DECISION_MARKER in prompt:
            digest = hashlib.blake2b(prompt.encode(), digest_size=2).digest()
            text = "DEFECT" if digest[0] % 4 == 0 else "COOPERATE"
        else:
            text = STRATEGY_REPLY
        prompt_tokens = sum(max(1, len(m.get("content", "")) // 4) for m in messages)
        completion_tokens = max(1, len(text) // 4)
        cost = self.price(model, prompt_tokens, completion_tokens)
        return {
            "id": "gen-stub",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "cost": cost,
            },
        }


def main() -> None:
    """Serve until stdin closes: `python -m tests.support.stub_server [latency_ms]`.
    Prints the base URL on the first line (the benchmark runs the server this way, in its
    own process, so its CPU time does not count against the client's)."""
    import sys

    latency_ms = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with StubServer(latency_s=latency_ms / 1000) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
