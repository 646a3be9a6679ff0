"""Headless simulated runs: wall time (interpreter start included), peak memory, and
microseconds per decision. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_engine.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = [(10, 10), (30, 30), (50, 20)]  # agents x rounds


def run(agents: int, rounds: int, results: Path) -> tuple[float, float, dict]:
    cmd = [
        sys.executable,
        "-m",
        "acausal_tui",
        "run",
        "--headless",
        "--seed",
        "1",
        "--agents",
        str(agents),
        "--rounds",
        str(rounds),
        "--max-concurrency",
        "64",
        "--results-dir",
        str(results),
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read().decode().strip() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"run {agents}x{rounds} failed with status {status}")
    result = json.loads((Path(out) / "experiment_results.json").read_bytes())
    return wall, usage.ru_maxrss / 1024, result


def main() -> None:
    print(f"{'agents x rounds':>16} {'wall s':>8} {'peak MiB':>9} {'decisions':>10} {'calls':>7} {'us/decision':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for agents, rounds in SIZES:
            wall, peak, result = run(agents, rounds, Path(tmp))
            decisions = 2 * result["total_games"]
            print(
                f"{agents:>7} x {rounds:<6} {wall:>8.2f} {peak:>9.1f} {decisions:>10} "
                f"{result['total_api_calls']:>7} {1e6 * wall / decisions:>12.1f}"
            )


if __name__ == "__main__":
    main()
