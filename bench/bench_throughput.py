"""Issue 13 throughput figures against the local OpenAI-compatible stub (tests/support/
stub_server.py in its own process, real HTTP on 127.0.0.1), each as a ratio to its floor
measured in this one run. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_throughput.py [--only nocap,rpm3000,rpm600,sweep,original] [--trials N]

Cases (100 ms stub latency unless said):
  nocap     10 agents x 10 rounds, no rpm cap, --max-concurrency 128.
            floor = rounds x 2 waves x latency (a strategy, then a decision)   target <= 1.2
  rpm3000   the same with --rpm 3000. floor = calls / rate                     target <= 1.05
  rpm600    --rpm 600, 10 agents x 3 rounds (300 calls, 30 s floor; 10 rounds
            would be 100 s of waiting for the same ratio)                       target <= 1.02
  sweep     16 experiments of 10 agents x 3 rounds with 128 slots, as one sweep
            against the same 16 one after another                               target >= 6x
  original  the original system's schedule (engine-free re-implementation: strategies
            in parallel, then the 45 games one after another, the two moves of a game
            in parallel, behind the original's sliding-window limiter of 60 calls per
            60 s) against this app on 10 x 10. With the limiter the original takes
            ~1000 s, so that pair runs time-scaled by --scale (latency and window both
            divided by it; the ratio is what scales back); the limiter-free pair runs at
            full 100 ms.

CPUs (--cpus): `apart` (the default) runs the stub processes on the last CPU and this
client on the others, as a remote server would be; `shared` lets Linux place all of them,
which on a 2-core machine wakes the stub on the client's core after each loopback send so
the two queue for one core while the other idles (docs/performance.md); `both` runs every
trial both ways, the shared figures marked [shared CPUs].
"""

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import anyio
import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    ENV,
    Clock,
    StubProcess,
    engine_run,
    median_range,
    place,
    stub_overrides,
    stub_server_process,
)
from engine.config import Config, load_config  # noqa: E402
from engine.providers.base import ChatRequest, Message, Provider  # noqa: E402
from engine.providers.factory import make_provider  # noqa: E402
from engine.providers.openai_compat import OpenAICompatProvider  # noqa: E402, F401  (imported before any timing)
from engine.runner import with_seed  # noqa: E402
from engine.sweep import make_providers, plan_sweep, run_sweep  # noqa: E402

LATENCY_MS = 100.0
CASES = ("nocap", "rpm3000", "rpm600", "sweep", "original")


def config(server: str, results: str, agents: int, rounds: int, **provider: Any) -> Config:
    return with_seed(load_config(None, stub_overrides(server, results, agents, rounds, **provider), env=ENV))


RESULTS: dict[str, list[float]] = {}  # figure -> its value in each trial
MARK = [""]  # appended to the figures' names: " [shared CPUs]" while the CPUs are shared


def record(name: str, value: float) -> None:
    RESULTS.setdefault(name + MARK[0], []).append(value)


def row(name: str, wall: float, floor: float, target: str) -> None:
    print(f"{name:<44} {wall:>8.2f} s  floor {floor:>7.2f} s  ratio {wall / floor:>6.3f}  ({target})", flush=True)
    record(f"{name}: wall / floor ({target})", wall / floor)


# -- the original system ---------------------------------------------------------------------


class SlidingWindowLimiter:
    """The original's RateLimiter (seeds/000: `max_calls` per `window` seconds, a list of
    call times; when full, sleep until the oldest expires and try again)."""

    def __init__(self, max_calls: int = 60, window_s: float = 60.0) -> None:
        self.max_calls, self.window = max_calls, window_s
        self.calls: deque[float] = deque()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            while self.calls and now - self.calls[0] >= self.window:
                self.calls.popleft()
            if len(self.calls) < self.max_calls:
                self.calls.append(now)
                return
            await asyncio.sleep(self.calls[0] + self.window - now)


async def original_run(provider: Provider, agents: int, rounds: int, limiter: SlidingWindowLimiter | None) -> float:
    """The original's order of calls: per round, every strategy at once; then the games
    one after another, both moves of a game at once. The same HTTP client and stub."""

    async def call(key: str, text: str, max_tokens: int) -> None:
        if limiter is not None:
            await limiter.acquire()
        await provider.complete(
            ChatRequest(
                key=key,
                model="openai/gpt-4.1-nano",
                temperature=0.5,
                messages=[Message("user", text)],
                max_tokens=max_tokens,
            )
        )

    pairs = [(i, j) for i in range(agents) for j in range(i + 1, agents)]
    began = time.perf_counter()
    for r in range(1, rounds + 1):
        async with anyio.create_task_group() as tg:
            for a in range(agents):
                tg.start_soon(call, f"strategy/r{r}/a{a}", f"Round {r}: write a strategy, agent {a}.", 1000)
        for k, (i, j) in enumerate(pairs, start=1):
            async with anyio.create_task_group() as tg:
                for p, me in ((1, i), (2, j)):
                    text = f"Agent {me}, round {r}, game {k}.\n\nDecision (COOPERATE/DEFECT):"
                    tg.start_soon(call, f"decision/r{r}/g{k}/p{p}", text, 100)
    return time.perf_counter() - began


# -- the cases -------------------------------------------------------------------------------


async def nocap(stub: StubProcess, results: str) -> None:
    clock, stub_before = Clock(), stub.cpu()
    wall, calls = await engine_run(config(stub.url, results, 10, 10, max_concurrency=128))
    _, cpu = clock.read()
    row("10x10, no cap, 128 slots", wall, 10 * 2 * LATENCY_MS / 1000, "target <= 1.2")
    stub_cpu = (stub.cpu() or 0.0) - (stub_before or 0.0)
    print(
        f"    CPU per call: this process (engine + HTTP client) {1e6 * cpu / calls:.0f} us, "
        f"stub server {1e6 * stub_cpu / calls:.0f} us",
        flush=True,
    )
    record("10x10, no cap: client CPU per call, us", 1e6 * cpu / calls)
    record("10x10, no cap: stub server CPU per call, us", 1e6 * stub_cpu / calls)


async def rpm(server: str, results: str, rate: int, rounds: int, target: str) -> None:
    wall, calls = await engine_run(config(server, results, 10, rounds, rpm=rate, max_concurrency=128))
    row(f"10x{rounds}, --rpm {rate} ({calls} calls)", wall, calls / (rate / 60), target)


async def sweep(server: str, results: str) -> None:
    overrides = stub_overrides(server, results, 10, 3, max_concurrency=128)
    plan = plan_sweep(None, overrides, "baseline,identity", 8, env=ENV)
    clock = Clock()
    result, _ = await run_sweep(plan, make_providers([c for _, c in plan.runs()], env=ENV))
    together, cpu = clock.read()
    assert result.status == "completed", result.message
    apart = {}
    for slots in (128, 16):
        apart[slots] = 0.0
        for _, cfg in plan.runs():
            wall, _ = await engine_run(
                msgspec.structs.replace(cfg, provider=msgspec.structs.replace(cfg.provider, max_concurrency=slots))
            )
            apart[slots] += wall
    latency = LATENCY_MS / 1000
    floor = 3 * latency + 16 * 3 * 90 / 128 * latency  # strategy waves, then decisions in waves of 128
    alone = 16 * 3 * 2 * latency  # 16 experiments one after another at their own floors
    print(
        f"{'sweep 16 x (10x3), 128 slots':<44} {together:>8.2f} s  floor {floor:>7.2f} s  ratio "
        f"{together / floor:>6.3f}",
        flush=True,
    )
    calls = 16 * 3 * (10 + 90)
    print(
        f"    CPU per call in this process (engine + HTTP client): {1e6 * cpu / calls:.0f} us "
        f"({cpu:.2f} s in all, on one event loop)",
        flush=True,
    )
    record("sweep 16 x (10x3): wall / floor", together / floor)
    record("sweep: client CPU per call, us", 1e6 * cpu / calls)
    record("sweep: speed-up over one after another at 128 slots", apart[128] / together)
    record("sweep: speed-up over one after another at 16 slots (target >= 6x)", apart[16] / together)
    print(
        f"    one after another at 128 slots: {apart[128]:.2f} s -> sweep {apart[128] / together:.2f}x faster "
        f"(at the floors at most {alone / floor:.2f}x: 128 slots cap the sweep, not the single runs)",
        flush=True,
    )
    print(
        f"    one after another at 16 slots (the default): {apart[16]:.2f} s -> sweep "
        f"{apart[16] / together:.2f}x faster (target >= 6x)",
        flush=True,
    )


async def original(server: str, scaled_server: str, results: str, scale: float) -> None:
    base = config(server, results, 10, 10)
    provider = make_provider(base, ENV)
    try:
        plain = await original_run(provider, 10, 10, None)
    finally:
        await provider.aclose()
    app16, _ = await engine_run(base)
    app128, _ = await engine_run(config(server, results, 10, 10, max_concurrency=128))
    print(
        f"original schedule, no limiter, 100 ms: {plain:.2f} s; this app, 16 slots (default) "
        f"{app16:.2f} s = {plain / app16:.1f}x faster; 128 slots {app128:.2f} s = "
        f"{plain / app128:.1f}x faster",
        flush=True,
    )
    small = config(scaled_server, results, 10, 10)
    provider = make_provider(small, ENV)
    try:
        limited = await original_run(provider, 10, 10, SlidingWindowLimiter(60, 60.0 / scale))
    finally:
        await provider.aclose()
    paced, _ = await engine_run(config(scaled_server, results, 10, 10, rpm=round(60 * scale)))
    print(
        f"original schedule + its 60-per-60 s limiter, time-scaled {scale:g}x ({LATENCY_MS / scale:g} ms, "
        f"window {60 / scale:g} s): {limited:.2f} s (= {limited * scale:.0f} s unscaled); this app "
        f"--rpm 60 at the same scale: {paced:.2f} s; ratio {limited / paced:.2f}. Original + limiter "
        f"vs this app without a cap (128 slots): {limited * scale / app128:.0f}x",
        flush=True,
    )


async def bench(args: argparse.Namespace) -> None:
    cases = args.only.split(",") if args.only else CASES
    layouts = {"apart": [True], "shared": [False], "both": [True, False]}[args.cpus]
    with (
        stub_server_process(LATENCY_MS) as stub,
        stub_server_process(LATENCY_MS / args.scale) as scaled,
        tempfile.TemporaryDirectory() as results,
    ):
        server = stub.url
        print(
            f"stub latency {LATENCY_MS:g} ms on 127.0.0.1; every ratio measured in this run; load "
            f"average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for trial in range(1, args.trials + 1):
            for apart in layouts:
                MARK[0] = "" if apart else " [shared CPUs]"
                where = place([stub, scaled], apart)
                print(f"-- trial {trial}; {where}" if args.trials > 1 else f"-- {where}", flush=True)
                if "nocap" in cases:
                    await nocap(stub, results)
                if "rpm3000" in cases:
                    await rpm(server, results, 3000, 10, "target <= 1.05")
                if "rpm600" in cases:
                    await rpm(server, results, 600, 3, "target <= 1.02")
                if "sweep" in cases:
                    await sweep(server, results)
                if "original" in cases:
                    await original(server, scaled.url, results, args.scale)
        if args.trials > 1:
            print(f"-- {args.trials} trials, median (min-max); load average now {os.getloadavg()[0]:.1f}")
            for name, values in RESULTS.items():
                print(f"{name}: {median_range(values, digits=0 if 'us' in name else 3)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(CASES)}")
    parser.add_argument("--trials", type=int, default=1, help="run the cases this many times")
    parser.add_argument("--scale", type=float, default=20.0, help="time scale of the limited original run")
    parser.add_argument(
        "--cpus", choices=("apart", "shared", "both"), default="apart", help="where the stub runs (above)"
    )
    args = parser.parse_args()
    if math.isnan(args.scale) or args.scale <= 0:
        raise SystemExit("--scale: a positive number")
    anyio.run(bench, args)


if __name__ == "__main__":
    main()
