"""Shared pieces of the bench scripts: the stub server in its own process, experiment
configs aimed at it, and one engine run timed."""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "BENCH_KEY"
ENV = {KEY_ENV: "sk-bench-not-a-real-key"}


@contextmanager
def stub_process(latency_ms: float) -> Iterator[str]:
    """tests/support/stub_server.py in its own process (as a real server would be), so its
    CPU time is not taken from the client's; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.stub_server", str(latency_ms)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(10)


def stub_overrides(server: str, results: str, agents: int, rounds: int, **provider: Any) -> dict[str, Any]:
    """Config overrides for an OpenRouter-shaped run against the stub at `server`."""
    return {
        "agents": agents,
        "rounds": rounds,
        "seed": 1,
        "results_dir": results,
        "provider": {"name": "openrouter", "base_url": server, "api_key_env": KEY_ENV,
                     "max_cost_usd": None, **provider},
    }


class Clock:
    """Wall and CPU seconds since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


async def engine_run(cfg: Any) -> tuple[float, int]:
    """Wall seconds and API calls of one whole experiment through the real provider."""
    from engine.providers.factory import make_provider
    from engine.runner import run_experiment

    provider = make_provider(cfg, ENV)
    began = time.perf_counter()
    try:
        result = await run_experiment(cfg, provider=provider)
    finally:
        await provider.aclose()
    assert result.status == "completed", result.message
    return time.perf_counter() - began, result.total_api_calls
