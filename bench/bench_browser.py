"""Benchmark: the experiment browser over 500 experiments of 30 agents x 10 rounds.

    .venv/bin/python bench/bench_browser.py [--experiments 500] [--keep DIR]

One simulated 30 x 10 experiment is run, then copied (hard links) to fill a temporary
results directory with N experiments (conditions and providers varied in their manifests
and results, so filters have something to find). Each measurement runs in a fresh
process, so its peak RSS (ru_maxrss) is its own:

- `full`: what the browser did before index.json: load every experiment's manifest,
  summaries and full result (engine.store.list_experiments);
- `cold`: the app opened on the directory with no index.json yet: every index built
  (and written) on this first open, the whole table drawn;
- `warm`: the app opened again: indexes read, the whole table drawn;
- `empty`: the app opened on an empty results directory: the start-up cost of the app
  itself, which `cold` and `warm` include (warm - empty = the table's own cost).

The time is from the app's start until the table holds every row and has been painted
(headless `App.run_test` at 160x48). Targets (warm): < 0.5 s and < 150 MB."""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONDITIONS = ("identity", "baseline")
PROVIDERS = ("simulated", "openrouter", "openai")


def make_results(results: Path, count: int) -> None:
    import anyio

    from engine.config import load_config
    from engine.providers.simulated import SimulatedProvider
    from engine.runner import run_experiment, utc_now
    from engine.store import ExperimentStore, new_experiment_dir

    source_root = results.parent / "source"
    config = load_config(
        None,
        {"agents": 30, "rounds": 10, "seed": 1, "results_dir": str(source_root), "provider": {"name": "simulated"}},
        env={},
    )
    store = ExperimentStore(new_experiment_dir(source_root, utc_now()))
    try:
        anyio.run(lambda: run_experiment(config, provider=SimulatedProvider(seed=1), store=store))
    finally:
        store.close()
    source = store.directory
    (source / "index.json").unlink()
    manifest = json.loads((source / "manifest.json").read_text())
    result = json.loads((source / "experiment_results.json").read_text())
    results.mkdir(parents=True)
    for n in range(count):
        target = results / f"exp_20250101_{n:06d}"
        shutil.copytree(
            source,
            target,
            copy_function=os.link,
            ignore=shutil.ignore_patterns("manifest.json", "experiment_results.json", "*.lock"),
        )
        condition, provider = CONDITIONS[n % 2], PROVIDERS[n % 3]
        manifest["condition"]["name"] = result["condition"]["name"] = condition
        manifest["provider"] = provider
        manifest["simulated"] = result["simulated"] = provider == "simulated"
        (target / "manifest.json").write_text(json.dumps(manifest))
        (target / "experiment_results.json").write_text(json.dumps(result))
    shutil.rmtree(source_root)


def measure(mode: str, results: Path) -> dict[str, float]:
    """Runs in the child process."""
    started = time.perf_counter()
    if mode == "full":
        from engine.store import list_experiments

        rows = len(list_experiments(results))
    else:
        import asyncio

        from textual.widgets import DataTable

        from acausal_tui.app import AcausalApp

        async def drive() -> int:
            app = AcausalApp(results_dir=results)
            async with app.run_test(size=(160, 48)) as pilot:
                table = app.screen.query_one(DataTable)
                while table.row_count < expected:
                    await pilot.pause(0.005)
                await pilot.pause()  # one paint with every row in
                return table.row_count

        expected = sum(1 for p in results.iterdir() if p.name.startswith("exp_")) if results.is_dir() else 0
        rows = asyncio.run(drive())
    return {
        "seconds": time.perf_counter() - started,
        "rows": rows,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--keep", metavar="DIR", help="build the results here and keep them")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], Path(args.child[1]))))
        return
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-browser-"))
    results = base / "results"
    try:
        began = time.perf_counter()
        make_results(results, args.experiments)
        print(
            f"{args.experiments} experiments of 30 agents x 10 rounds in {results} "
            f"(made in {time.perf_counter() - began:.1f}s)"
        )
        for mode in ("full", "cold", "warm", "empty"):
            where = base / "nothing" if mode == "empty" else results
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(where)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{mode:>5}: {figures['rows']:>4} rows  {figures['seconds']:.2f} s  peak RSS {figures['rss_mb']:.0f} MB"
            )
        print("targets (warm): < 0.5 s, < 150 MB")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
