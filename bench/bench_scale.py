"""Issue 13 scale figures on the simulated provider (0 ms latency, so the engine's own cost
is all there is), each run in a fresh child process. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_scale.py [--only memory,cost]

  memory  100 agents x 5 rounds, --max-concurrency 128, with the full history and with
          the last 2 rounds': resident memory (VmRSS) and the peak so far (VmHWM) after
          each round                                           target: peak <= 120 MiB, flat
  cost    engine CPU per decision (strategies, rendering, parsing, gateway, call log and
          round files included) at 100 agents x 2 rounds against 10 agents x 20 rounds
          (histories of similar length)                        target: ratio <= 1.3
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("memory", "cost")


def child(agents: int, rounds: int, results: str, history: str) -> None:
    """Run one experiment; print one JSON line per round and one at the end."""
    sys.path.insert(0, str(ROOT))
    import anyio

    from engine.config import load_config
    from engine.events import RoundSummarised
    from engine.providers.factory import make_provider
    from engine.runner import run_experiment, with_seed

    def memory() -> dict[str, float]:
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}

    class Rounds:
        def on_event(self, event: object) -> None:
            if isinstance(event, RoundSummarised):
                print(json.dumps({"round": event.summary.round, **memory()}), flush=True)

    config = with_seed(
        load_config(
            None,
            {
                "agents": agents,
                "rounds": rounds,
                "seed": 1,
                "results_dir": results,
                "provider": {"name": "simulated", "latency_ms": 0, "max_concurrency": 128},
                "switches": {"history": history},
            },
            env={},
        )
    )
    provider = make_provider(config, {})
    before = memory()
    cpu, wall = time.process_time(), time.perf_counter()
    result = anyio.run(lambda: run_experiment(config, provider=provider, observer=Rounds()))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        json.dumps(
            {"status": result.status, "decisions": 2 * result.total_games, "cpu": cpu, "wall": wall, "start": before}
        ),
        flush=True,
    )


def run_child(agents: int, rounds: int, history: str = "full") -> list[dict]:
    with tempfile.TemporaryDirectory() as results:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(agents), str(rounds), results, history],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return [json.loads(line) for line in out.splitlines()]


def memory_case() -> None:
    for history in ("full", "last:2"):
        lines = run_child(100, 5, history)
        *rounds, end = lines
        print(
            f"100 agents x 5 rounds, simulated 0 ms, history {history}: before the run "
            f"{end['start']['VmRSS']:.0f} MiB; {end['wall']:.1f} s"
        )
        for r in rounds:
            print(f"  after round {r['round']}: resident {r['VmRSS']:6.1f} MiB, peak so far {r['VmHWM']:6.1f} MiB")
        growth = (rounds[-1]["VmHWM"] - rounds[0]["VmHWM"]) / max(1, len(rounds) - 1)
        # from round 3 on, the summaries the strategy prompts show (the last 3) are all there
        late = (rounds[-1]["VmHWM"] - rounds[2]["VmHWM"]) / max(1, len(rounds) - 3)
        print(
            f"  peak {rounds[-1]['VmHWM']:.0f} MiB (target <= 120), growth {growth:+.1f} MiB per round "
            f"after the first, {late:+.1f} after the third (target: flat)"
        )


def cost_case() -> None:
    figures = {}
    for agents, rounds in ((10, 20), (100, 2)):
        end = run_child(agents, rounds)[-1]
        figures[agents] = end["cpu"] / end["decisions"]
        print(
            f"{agents:>3} agents x {rounds:>2} rounds: {end['decisions']:>6} decisions, CPU {end['cpu']:.2f} s, "
            f"{1e6 * figures[agents]:.0f} us per decision"
        )
    print(f"per-decision cost, 100 agents / 10 agents: {figures[100] / figures[10]:.2f} (target <= 1.3)")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(CASES)}")
    cases = (parser.parse_args().only or ",".join(CASES)).split(",")
    if "memory" in cases:
        memory_case()
    if "cost" in cases:
        cost_case()


if __name__ == "__main__":
    main()
