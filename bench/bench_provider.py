"""Throughput benchmark of the real-provider path (prints figures; not a timed test).

Runs a 10 x 10 experiment through the OpenRouter-shaped local stub server (real HTTP on
127.0.0.1, 100 ms per reply) with the real provider, gateway, limiter and runner:

  (a) --rpm 1200:                      wall / ideal (calls / rate)            target <= 1.05
  (b) no rpm cap, --max-concurrency 64: wall / critical path                  target <= 1.5
      (critical path = rounds x 2 x latency: one strategy call, then one decision)
  (c) the original system's schedule on the same gateway and provider: strategies of
      a round together, then the games one after another, the two moves of a game in
      parallel.                         (c) / (b)                             target >= 10

    .venv/bin/python bench/bench_provider.py [--latency-ms 100] [--agents 10] [--rounds 10]
"""

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ENV, KEY_ENV, engine_run, stub_process  # noqa: E402
from engine.calls import CallGateway  # noqa: E402
from engine.config import Config, load_config  # noqa: E402
from engine.control import RunControl  # noqa: E402
from engine.limits import Limiter  # noqa: E402
from engine.providers.base import ChatRequest, Message  # noqa: E402
from engine.providers.factory import make_provider  # noqa: E402


def config(server: str, results: str, args: argparse.Namespace, **provider: Any) -> Config:
    overrides = {
        "agents": args.agents,
        "rounds": args.rounds,
        "seed": 1,
        "results_dir": results,
        "provider": {"name": "openrouter", "base_url": server, "api_key_env": KEY_ENV, **provider},
    }
    return load_config(None, overrides, env=ENV)


async def original_schedule(cfg: Config) -> tuple[float, int]:
    """The seed system's order of calls, on the same gateway and provider."""
    provider = make_provider(cfg, ENV)
    control = RunControl()
    gateway = CallGateway(
        provider,
        control,
        seed=1,
        limiter=Limiter(cfg.provider.rpm, cfg.provider.max_concurrency),
        budget_usd=cfg.provider.max_cost_usd,
    )
    n = cfg.agents or 0

    def request(key: str, model: str, text: str, max_tokens: int) -> ChatRequest:
        return ChatRequest(
            key=key, model=model, messages=[Message("user", text)], temperature=0.5, max_tokens=max_tokens
        )

    began = time.perf_counter()
    try:
        for r in range(1, cfg.rounds + 1):
            async with anyio.create_task_group() as tg:
                for a in range(n):
                    tg.start_soon(
                        gateway.call,
                        request(f"strategy/r{r}/a{a}", cfg.models.main, f"Write a strategy, agent {a}.", 1000),
                    )
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
            for k, (i, j) in enumerate(pairs, start=1):
                async with anyio.create_task_group() as tg:
                    for p, me in ((1, i), (2, j)):
                        text = f"Agent {me}, round {r}, game {k}.\n\nDecision (COOPERATE/DEFECT):"
                        tg.start_soon(gateway.call, request(f"decision/r{r}/g{k}/p{p}", cfg.models.sub, text, 100))
    finally:
        await provider.aclose()
    return time.perf_counter() - began, control.stats.calls


async def bench(args: argparse.Namespace) -> None:
    latency = args.latency_ms / 1000
    games = args.agents * (args.agents - 1) // 2
    with stub_process(args.latency_ms) as server, tempfile.TemporaryDirectory() as results:
        print(
            f"{args.agents} agents x {args.rounds} rounds, stub latency {args.latency_ms:g} ms, "
            f"{args.agents + 2 * games} calls a round"
        )

        wall, calls = await engine_run(config(server, results, args, rpm=1200))
        ideal = calls / (1200 / 60)
        print(
            f"(a) rpm 1200: {calls} calls in {wall:.2f} s; ideal {ideal:.2f} s; "
            f"ratio {wall / ideal:.3f} (target <= 1.05)"
        )

        fast = config(server, results, args, max_concurrency=64)
        wall_b, calls = await engine_run(fast)
        critical = args.rounds * 2 * latency
        waves = 1 + math.ceil(2 * games / 64)
        floor = args.rounds * waves * latency
        print(
            f"(b) no rpm cap, max-concurrency 64: {calls} calls in {wall_b:.2f} s; critical path "
            f"{critical:.2f} s; ratio {wall_b / critical:.3f} (target <= 1.5)"
        )
        print(
            f"    with 64 slots the {2 * games} decisions of a round need {waves - 1} waves: floor "
            f"{floor:.2f} s, ratio to the floor {wall_b / floor:.3f}"
        )
        wide = config(server, results, args, max_concurrency=max(64, 2 * games))
        wall_w, _ = await engine_run(wide)
        print(f"    max-concurrency {max(64, 2 * games)} (one wave): {wall_w:.2f} s; ratio {wall_w / critical:.3f}")

        wall_c, calls = await original_schedule(fast)
        print(
            f"(c) original schedule: {calls} calls in {wall_c:.2f} s; engine (b) {wall_b:.2f} s; "
            f"engine {wall_c / wall_b:.1f}x faster (target >= 10)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    anyio.run(bench, parser.parse_args())


if __name__ == "__main__":
    main()
