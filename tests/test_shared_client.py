"""One HTTP client per sweep: every experiment's provider sends on the same
HTTP client (headers per request), and it is closed when the last one is done."""

import anyio
import httpx

from engine.config import ProviderSettings
from engine.providers.base import ChatRequest, Message
from engine.providers.httpclient import HTTPClient
from engine.providers.openai_compat import OpenAICompatProvider, SharedClient
from engine.sweep import make_providers, plan_sweep, run_sweep

KEY = "sk-or-v1-shared-client-0123456789abcdef"
REQUEST = ChatRequest(key="k", model="m", messages=[Message("user", "hi")], temperature=0.3, max_tokens=5)


async def test_a_shared_client_closes_with_its_last_provider():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "COOPERATE"}}]})

    shared = SharedClient(4, httpx.MockTransport(handler))
    a = OpenAICompatProvider(
        ProviderSettings(name="openrouter", base_url="http://x/v1"), api_key="key-a", client=shared
    )
    b = OpenAICompatProvider(ProviderSettings(name="openai", base_url="http://y/v1"), api_key=None, client=shared)
    await a.complete(REQUEST)
    await b.complete(REQUEST)
    assert seen[0].headers["authorization"] == "Bearer key-a" and "x-title" in seen[0].headers
    assert "authorization" not in seen[1].headers and "x-title" not in seen[1].headers
    await a.aclose()
    assert not shared.client.is_closed  # b still uses it
    await b.complete(REQUEST)
    await b.aclose()
    assert shared.client.is_closed


def test_every_experiment_of_a_sweep_uses_one_client(tmp_path, monkeypatch, server):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    made: list[HTTPClient] = []
    make = HTTPClient.__init__

    def counted(self: HTTPClient, *args, **kwargs) -> None:
        made.append(self)
        make(self, *args, **kwargs)

    monkeypatch.setattr(HTTPClient, "__init__", counted)
    overrides = {
        "agents": 3,
        "rounds": 1,
        "seed": 5,
        "results_dir": str(tmp_path),
        "provider": {"name": "openrouter", "base_url": server.base_url, "max_concurrency": 8},
    }
    plan = plan_sweep(None, overrides, "baseline,identity", 2)
    providers = make_providers([c for _, c in plan.runs()])
    assert len(providers) == 4 and len(made) == 1
    result, _ = anyio.run(lambda: run_sweep(plan, providers))
    assert result.status == "completed" and len(made) == 1
    assert server.count == 4 * (3 + 2 * 3)  # 3 strategies, 3 games of 2 moves
    assert all(s.headers["authorization"] == f"Bearer {KEY}" for s in server.requests)
    assert made[0].is_closed


def test_a_simulated_sweep_needs_no_client(tmp_path):
    plan = plan_sweep(
        None,
        {"agents": 2, "rounds": 1, "seed": 1, "results_dir": str(tmp_path), "provider": {"name": "simulated"}},
        "baseline",
        2,
        env={},
    )
    assert all(p.simulated for p in make_providers([c for _, c in plan.runs()]))
