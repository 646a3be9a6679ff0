"""Where the time of a 10 x 10 no-cap run goes between rounds: each round broken into its
strategy wave, its decision wave, the time from the last decision reply to the round's
files on disk, and from there to the next round's first call (the stub of
tests/support/stub_server.py in its own process, 100 ms, 128 slots). Prints figures;
asserts nothing.

    .venv/bin/python bench/bench_round_gap.py [--trials N] [--rounds R]

The provider's `complete` and the store's `write_round` are wrapped to take times; the
engine itself is not changed."""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ENV, place, stub_overrides, stub_server_process  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.providers.factory import make_provider  # noqa: E402
from engine.runner import run_experiment, with_seed  # noqa: E402
from engine.store import ExperimentStore  # noqa: E402

LATENCY_MS = 100.0


class Times:
    """Call starts and ends by round and kind, and when each round's files were saved."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, float, float]] = []  # round, kind, start, end
        self.saved: dict[int, tuple[float, float]] = {}  # round -> write_round start, end

    def rounds(self) -> list[dict[str, float]]:
        rows = []
        for r in sorted(self.saved):
            strategy = [(s, e) for rr, kind, s, e in self.calls if rr == r and kind == "strategy"]
            decision = [(s, e) for rr, kind, s, e in self.calls if rr == r and kind == "decision"]
            last_reply = max(e for _, e in decision)
            save_start, save_end = self.saved[r]
            following = [s for rr, _, s, _ in self.calls if rr == r + 1]
            rows.append(
                {
                    "strategy wave": max(e for _, e in strategy) - min(s for s, _ in strategy),
                    "decision wave": max(e for _, e in decision) - min(s for s, _ in decision),
                    "strategies in -> first decision": min(s for s, _ in decision) - max(e for _, e in strategy),
                    "decision starts spread (first -> last)": max(s for s, _ in decision) - min(s for s, _ in decision),
                    "decision call, median start -> reply": statistics.median(e - s for s, e in decision),
                    "last strategy reply -> last decision reply": last_reply - max(e for _, e in strategy),
                    "last reply -> save starts": save_start - last_reply,
                    "save (write_round)": save_end - save_start,
                    "last reply -> next round's first call": (min(following) - last_reply)
                    if following
                    else float("nan"),
                    "saved -> next round's first call": (min(following) - save_end) if following else float("nan"),
                }
            )
        return rows


def instrument(current: list[Times]) -> None:
    """Wrap the provider's `complete` and the store's `write_round` to take times into
    `current[0]`."""
    from engine.providers import openai_compat

    complete = openai_compat.OpenAICompatProvider.complete

    async def timed_complete(self: Any, request: Any) -> Any:
        began = time.perf_counter()
        try:
            return await complete(self, request)
        finally:
            kind, round_ = request.key.split("/")[:2]
            current[0].calls.append((int(round_[1:]), kind, began, time.perf_counter()))

    write_round = ExperimentStore.write_round

    def timed_write_round(self: Any, round: int, *args: Any) -> None:
        began = time.perf_counter()
        write_round(self, round, *args)
        current[0].saved[round] = (began, time.perf_counter())

    openai_compat.OpenAICompatProvider.complete = timed_complete  # type: ignore[method-assign]
    ExperimentStore.write_round = timed_write_round  # type: ignore[method-assign]


async def one_run(url: str, results: str, rounds: int, times: Times) -> tuple[float, float, float]:
    """Wall seconds; from the run's start to its first call; from the last reply to its end."""
    overrides = stub_overrides(url, results, 10, rounds, max_concurrency=128)
    config = with_seed(load_config(None, overrides, env=ENV))
    provider = make_provider(config, ENV)
    began = time.perf_counter()
    try:
        result = await run_experiment(config, provider=provider)
    finally:
        await provider.aclose()
    assert result.status == "completed", result.message
    end = time.perf_counter()
    return end - began, min(s for _, _, s, _ in times.calls) - began, end - max(e for _, _, _, e in times.calls)


async def bench(args: argparse.Namespace) -> None:
    walls: list[float] = []
    ends: list[tuple[float, float]] = []
    rows: list[dict[str, float]] = []
    with stub_server_process(LATENCY_MS) as stub, tempfile.TemporaryDirectory() as results:
        print(place([stub], args.cpus == "apart"))
        current = [Times()]
        instrument(current)
        for _ in range(args.trials):
            times = current[0] = Times()
            wall, first, last = await one_run(stub.url, results, args.rounds, times)
            walls.append(wall)
            ends.append((first, last))
            rows += times.rounds()
    floor = args.rounds * 2 * LATENCY_MS / 1000
    print(
        f"10x{args.rounds}, no cap, 128 slots, {args.trials} trial(s): wall median "
        f"{statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}), floor {floor:.1f} s, "
        f"ratio {statistics.median(walls) / floor:.2f}"
    )
    print(
        f"run start -> first call, ms: {statistics.median(1000 * f for f, _ in ends):.1f}; "
        f"last reply -> run returns: {statistics.median(1000 * t for _, t in ends):.1f}"
    )
    print(f"per round, ms: median (min-max) over {len(rows)} rounds")
    for name in rows[0]:
        values = [1000 * row[name] for row in rows if row[name] == row[name]]
        print(f"  {name:<40} {statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cpus", choices=("apart", "shared"), default="apart", help="as bench_throughput.py's --cpus")
    anyio.run(bench, parser.parse_args())


if __name__ == "__main__":
    main()
