"""Connections opened ahead (PooledTransport.prepare): while a round's strategies are being
written, the connections its decisions will need are opened, so their set-up is not in the
burst of decisions; never more than the pool keeps, never a request, never holding a round,
and given up for good once it fails or proves useless."""

import socket
import time

import anyio
import pytest

from engine.config import ProviderSettings
from engine.providers import httpclient
from engine.providers.base import ChatRequest, Message
from engine.providers.openai_compat import OpenAICompatProvider, SharedClient
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment
from tests.support import stub_server as stub

KEY = "sk-or-v1-warm-up-0123456789abcdef"
REQUEST = ChatRequest(key="k", model="m", messages=[Message("user", "hi")], temperature=0.3, max_tokens=5)


def provider(base_url: str, slots: int) -> OpenAICompatProvider:
    settings = ProviderSettings(name="openrouter", base_url=base_url, api_key_env="K", max_concurrency=slots)
    return OpenAICompatProvider(settings, api_key=KEY)


def count_connects(pool: httpclient.PooledTransport) -> list[float]:
    """The times at which `pool` finished opening each connection, from now on."""
    opened: list[float] = []
    connect = pool._connect

    async def counted(origin, timeout):
        connection = await connect(origin, timeout)
        opened.append(time.monotonic())
        return connection

    pool._connect = counted  # type: ignore[method-assign]
    return opened


async def test_prepare_opens_the_connections_that_the_burst_then_uses():
    with stub.StubServer(latency_s=0.05) as server:
        p = provider(server.base_url, 6)
        pool = p._client.transport
        opened = count_connects(pool)
        await p.prepare(6)
        assert pool.connections == 6 and len(opened) == 6
        assert server.count == 0  # opening a connection sends no request
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(p.complete, REQUEST)
        assert len(opened) == 6 and pool.connections == 6  # all six used, none opened anew
        await p.prepare(6)
        assert len(opened) == 6  # enough are open: nothing to do
        await p.aclose()
    assert server.count == 6


async def test_warm_ups_at_once_on_a_shared_pool_open_no_more_than_it_keeps():
    """The experiments of a sweep share one pool and start their rounds together: their
    warm-ups count each other's planned connections."""
    with stub.StubServer() as server:
        settings = ProviderSettings(name="openrouter", base_url=server.base_url, api_key_env="K", max_concurrency=24)
        shared = SharedClient(24)
        providers = [OpenAICompatProvider(settings, api_key=KEY, client=shared) for _ in range(4)]
        opened = count_connects(shared.client.transport)
        async with anyio.create_task_group() as tg:
            for p in providers:
                tg.start_soon(p.prepare, 24)
                await anyio.sleep(0.002)
        assert len(opened) == 24 and shared.client.transport.connections == 24
        for p in providers:
            await p.aclose()


async def test_prepare_never_opens_more_than_the_pool_keeps():
    with stub.StubServer() as server:
        p = provider(server.base_url, 3)
        await p.prepare(500)
        assert p._client.transport.connections == 3
        await p.aclose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_failed_warm_up_is_silent_and_not_tried_again():
    p = provider(f"http://127.0.0.1:{closed_port()}/v1", 4)
    pool = p._client.transport
    opened = count_connects(pool)
    await p.prepare(4)  # connection refused: no error, nothing open
    assert pool.connections == 0 and not pool.warming
    await p.prepare(4)
    assert opened == []
    await p.aclose()


async def test_an_unexpected_error_in_a_warm_up_never_reaches_the_round():
    p = provider("http://127.0.0.1:9/v1", 4)
    pool = p._client.transport

    async def broken(origin, timeout):
        raise ValueError("something no one expected")

    pool._connect = broken  # type: ignore[method-assign]
    await p.prepare(4)
    assert not pool.warming
    await p.aclose()


@pytest.mark.parametrize(("ahead", "warming_after"), [(2, False), (1, True)])
async def test_warm_ups_stop_once_a_connection_opened_ahead_expires_unused(monkeypatch, ahead, warming_after):
    """Two calls: the first takes a connection opened ahead, the second finds every idle
    connection expired. With 2 opened ahead one of them expired unused: no more warm-ups;
    with 1, the expired one had been used (an ordinary expiry): warm-ups go on."""
    with stub.StubServer() as server:
        p = provider(server.base_url, 2)
        pool = p._client.transport
        await p.prepare(ahead)
        await p.complete(REQUEST)
        monkeypatch.setattr(httpclient, "KEEPALIVE_EXPIRY_S", -1.0)
        await p.complete(REQUEST)  # opens its own
        assert pool.warming is warming_after
        monkeypatch.setattr(httpclient, "KEEPALIVE_EXPIRY_S", 5.0)
        opened = count_connects(pool)
        await p.prepare(2)
        assert len(opened) == (1 if warming_after else 0)
        await p.aclose()


@pytest.mark.parametrize("slots", [6, 64])
async def test_round_one_decisions_find_their_connections_open(make_config, slots):
    """Every connection of a 4-agent round is open before its first decision reaches the
    server (the strategies take 300 ms: the warm-up's time), and no more than it needs."""
    with stub.StubServer(latency_s=0.3) as server:
        config = make_config(
            agents=4,
            rounds=1,
            provider={"name": "openrouter", "base_url": server.base_url, "max_concurrency": slots},
        )
        p = provider(server.base_url, slots)
        opened = count_connects(p._client.transport)
        with anyio.fail_after(30):
            result = await run_experiment(config, provider=p)
        await p.aclose()
    assert result.status == "completed"
    decisions = [s.time for s in server.requests if stub.DECISION_MARKER in str(s.body)]
    assert len(decisions) == 12 and len(opened) == min(slots, 12)
    assert max(opened) < min(decisions)


class HangingWarmUp(SimulatedProvider):
    async def prepare(self, calls: int) -> None:
        await anyio.sleep_forever()


async def test_a_warm_up_that_never_ends_does_not_hold_the_round(make_config):
    config = make_config(agents=3, rounds=2)
    with anyio.fail_after(30):
        result = await run_experiment(config, provider=HangingWarmUp(seed=7, latency_ms=20))
    assert result.status == "completed" and result.total_api_calls > 0
