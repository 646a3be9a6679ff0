"""The HTTPS path end to end: the stub server behind a real TLS front on 127.0.0.1
(tests/support/tls_stub.py) with a certificate from a throwaway authority made here
(trustme). Successful calls and whole runs, server errors and their retries, the whole-call
deadline, connections cut mid-reply, large replies and prompts, and certificate
verification: on by default, so an untrusted or wrong-host certificate stops the run with
one clear line."""

import json
import socket
import ssl
import time

import anyio
import msgspec
import pytest
import trustme

from acausal_tui.cli import main
from engine import limits
from engine.calls import CallGateway, FatalCallError
from engine.config import ProviderSettings
from engine.control import RunControl
from engine.limits import Limiter
from engine.models import CallRecord
from engine.providers.base import ChatRequest, Message, ProviderError
from engine.providers.openai_compat import OpenAICompatProvider
from tests.support import stub_server as stub
from tests.support.tls_stub import TLSStub

KEY = "sk-or-v1-tls-tests-0123456789abcdef"
DECISION = "Your strategy:\nCooperate.\n\nDecision (COOPERATE/DEFECT):"


def request(text: str = DECISION, key: str = "decision/r1/g1/p1/t0") -> ChatRequest:
    return ChatRequest(
        key=key, model="openai/gpt-4.1-nano", messages=[Message("user", text)], temperature=0.3, max_tokens=100
    )


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def serving(authority: trustme.CA, hostname: str = "127.0.0.1") -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(hostname).configure_cert(context)
    return context


@pytest.fixture
def server():
    with stub.StubServer() as running:
        yield running


@pytest.fixture
def front(server, authority):
    with TLSStub(server, serving(authority)) as running:
        yield running


@pytest.fixture
def trusted(authority, tmp_path, monkeypatch):
    """The authority trusted the way a user trusts a private one: SSL_CERT_FILE."""
    pem = tmp_path / "authority.pem"
    authority.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(limits, "BACKOFF_BASE_S", 0.01)


def provider(front: TLSStub, timeout_s: float = 5.0, slots: int = 8) -> OpenAICompatProvider:
    settings = ProviderSettings(
        name="openrouter", base_url=front.base_url, api_key_env="TEST_KEY", timeout_s=timeout_s, max_concurrency=slots
    )
    return OpenAICompatProvider(settings, api_key=KEY)


async def test_calls_over_tls_succeed_on_reused_connections(front, server, trusted):
    p = provider(front, slots=4)
    replies = []

    async def one() -> None:
        replies.append(await p.complete(request()))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(one)
    for _ in range(4):
        await one()
    pool = p._client.transport  # type: ignore[attr-defined]
    assert pool.connections <= 4
    await p.aclose()
    assert len(replies) == 8 and all(r.text in ("COOPERATE", "DEFECT") and r.cost > 0 for r in replies)
    assert server.count == 8 and all(s.headers["authorization"] == f"Bearer {KEY}" for s in server.requests)


def test_a_whole_run_over_tls(front, server, trusted, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    config = tmp_path / "config.toml"
    config.write_text(f'[provider]\nname = "openrouter"\nbase_url = "{front.base_url}"\n')
    results = tmp_path / "results"
    code = main(
        [
            "run",
            "--headless",
            "--config",
            str(config),
            "--results-dir",
            str(results),
            "--agents",
            "3",
            "--rounds",
            "2",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    (directory,) = results.glob("exp_*")
    decoder = msgspec.json.Decoder(CallRecord)
    calls = [decoder.decode(line) for line in (directory / "calls.jsonl").read_bytes().splitlines()]
    assert len(calls) == server.count == 2 * (3 + 6) and all(c.reply for c in calls)


async def test_server_errors_are_retried_over_tls(front, server, trusted):
    server.queue(stub.error(503, "No instances available"), stub.rate_limited("0"), stub.TRUNCATED)
    p = provider(front)
    records: list[CallRecord] = []
    gateway = CallGateway(p, RunControl(), seed=1, limiter=Limiter(None, 4), log_call=records.append)
    completion = await gateway.call(request())
    await p.aclose()
    assert completion.text in ("COOPERATE", "DEFECT")
    assert server.count == 4 and records[0].attempts == 4 and records[0].reply == completion.text


@pytest.mark.parametrize("reply", [stub.slow(3.0), stub.trickle(0.05)], ids=["silent", "trickle"])
async def test_the_whole_call_deadline_holds_over_tls(front, server, trusted, reply):
    server.queue(reply)
    p = provider(front, timeout_s=0.4)
    began = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    elapsed = time.monotonic() - began
    assert caught.value.kind == "timeout" and caught.value.retryable and elapsed < 2.0
    assert (await p.complete(request())).text  # the pool goes on with a fresh connection
    await p.aclose()


@pytest.mark.parametrize("reply", [stub.TRUNCATED, stub.DROP], ids=["cut-mid-body", "no-reply"])
async def test_a_connection_cut_mid_reply_is_a_retryable_connection_error(front, server, trusted, reply):
    server.queue(reply)
    p = provider(front)
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    assert caught.value.kind == "connection" and caught.value.retryable and not caught.value.fatal
    assert (await p.complete(request())).text
    await p.aclose()


async def test_large_prompts_and_replies_cross_intact(front, server, trusted):
    """Both bigger than the stream's buffers: the writer waits for room, the reader pauses."""
    big = "x" * 3_000_000
    server.queue(stub.completion(big))
    p = provider(front)
    completion = await p.complete(request(DECISION + "y" * 2_000_000))
    await p.aclose()
    assert completion.text == big
    assert len(server.requests[0].body["messages"][0]["content"]) == len(DECISION) + 2_000_000


async def test_an_untrusted_certificate_stops_the_run_with_one_clear_line(front, server, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    p = provider(front)
    with pytest.raises(ProviderError) as caught:
        await p.complete(request())
    error = caught.value
    assert error.fatal and error.kind == "tls" and not error.retryable
    assert "TLS certificate of 127.0.0.1 could not be verified" in error.message
    assert "SSL_CERT_FILE" in error.message and "\n" not in error.message
    gateway = CallGateway(p, RunControl(), seed=1, limiter=Limiter(None, 4))
    with pytest.raises(FatalCallError):
        await gateway.call(request())
    await p.aclose()
    assert server.count == 0  # nothing was sent over the unverified connection


async def test_a_certificate_for_another_host_is_refused(server, authority, trusted):
    with TLSStub(server, serving(authority, "api.example.test")) as wrong:
        p = provider(wrong)
        with pytest.raises(ProviderError) as caught:
            await p.complete(request())
        await p.aclose()
    assert caught.value.kind == "tls" and "127.0.0.1" in caught.value.message
    assert server.count == 0


def test_the_tls_front_passes_bytes_unchanged(front, server, authority):
    """The front itself, with a plain blocking client and no engine: the stub receives
    what was sent, and its reply comes back."""
    context = ssl.create_default_context()
    authority.configure_trust(context)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": DECISION}]}).encode()
    with (
        socket.create_connection(("127.0.0.1", front.port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        head = tls.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert server.requests[0].body["messages"][0]["content"] == DECISION
