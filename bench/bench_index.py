"""Benchmark: the index.json update after a round, at round 10 and at round 100.

    .venv/bin/python bench/bench_index.py [--agents 10] [--repeat 20]

One simulated experiment of 100 rounds is run into a temporary directory. Then, for the
10th and the 100th round, the update the store makes after writing that round is timed
with only the rounds up to it on disk:

- `add_round`: the previous index plus this round (what the store does now);
- `rebuild`: the whole experiment read again (what it did before, every round).

The rebuild grows with the round number (over a run: quadratic); add_round stays flat.
Figures are printed, never asserted (the median of --repeat trials)."""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 100
AT = (10, 100)


def run_experiment_into(results: Path, agents: int) -> Path:
    import anyio

    from engine.config import load_config
    from engine.providers.simulated import SimulatedProvider
    from engine.runner import run_experiment, utc_now
    from engine.store import ExperimentStore, new_experiment_dir

    config = load_config(
        None,
        {"agents": agents, "rounds": ROUNDS, "seed": 1, "results_dir": str(results), "provider": {"name": "simulated"}},
        env={},
    )
    store = ExperimentStore(new_experiment_dir(results, utc_now()))
    try:
        anyio.run(lambda: run_experiment(config, provider=SimulatedProvider(seed=1, latency_ms=0), store=store))
    finally:
        store.close()
    return store.directory


def truncated(source: Path, target: Path, rounds: int) -> Path:
    """A copy of the experiment as it was just after round `rounds` was written: no result
    file yet, the manifest still running, and the index as after round `rounds - 1`."""
    import msgspec

    from engine.index import INDEX_FILE, entry_from, update_index
    from engine.loading import load_experiment
    from engine.models import Manifest
    from engine.store import read_json, write_json

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock", "experiment_results.json"))
    manifest = read_json(target / "manifest.json", Manifest)
    write_json(target / "manifest.json", msgspec.structs.replace(manifest, status="running"))
    for path in (target / "rounds").iterdir():
        number = int(path.stem.rsplit("_r", 1)[1])
        if number > rounds:
            path.unlink()
        elif number == rounds:  # hidden while the index of the round before is built
            path.rename(path.with_name("." + path.name))
    update_index(target)
    assert entry_from(load_experiment(target)).rounds_done == rounds - 1
    for path in (target / "rounds").glob(".*"):
        path.rename(path.with_name(path.name[1:]))
    return target / INDEX_FILE


def timed(repeat: int, prepare: Callable[[], object], action: Callable[[], object]) -> tuple[float, float]:
    """Median wall and CPU seconds of `action` (each trial after `prepare`)."""
    walls, cpus = [], []
    for _ in range(repeat):
        prepare()
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    from engine.index import add_round, update_index
    from engine.loading import load_experiment

    with tempfile.TemporaryDirectory() as temp:
        source = run_experiment_into(Path(temp) / "results", args.agents)
        print(
            f"index.json update after one round, {args.agents} agents (median of {args.repeat};"
            " wall includes the fsyncs of the atomic write):"
        )
        print(f"{'round':>6} {'add_round wall/cpu ms':>22} {'rebuild wall/cpu ms':>20} {'cpu ratio':>10}")
        for rounds in AT:
            target = Path(temp) / f"at_{rounds}"
            index_file = truncated(source, target, rounds)
            reset = partial(index_file.write_bytes, index_file.read_bytes())
            summary = load_experiment(target).summaries[rounds]
            add = timed(args.repeat, reset, partial(add_round, target, rounds, summary))
            full = timed(args.repeat, reset, partial(update_index, target))
            print(
                f"{rounds:>6} {add[0] * 1000:>11.2f} / {add[1] * 1000:>6.2f}"
                f" {full[0] * 1000:>10.2f} / {full[1] * 1000:>6.2f} {full[1] / add[1]:>10.1f}"
            )


if __name__ == "__main__":
    main()
