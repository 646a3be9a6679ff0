"""Helpers for tests that interrupt experiments: file validity, records to compare, and
subprocess runs of the command line."""

import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import msgspec

from engine.calls import CANCELLED
from engine.config import load_config
from engine.index import INDEX_FILE, IndexEntry
from engine.lock import LOCK_NAME
from engine.models import CallRecord, ExperimentResult, GameResult, Manifest, RoundSummary, StrategyRecord
from engine.providers.factory import make_provider
from engine.runner import run_experiment, with_seed
from engine.store import TEMP_PREFIX, read_json, read_jsonl
from tests.conftest import strip_times

ROOT = Path(__file__).resolve().parents[2]
ROUND_TYPES = {
    "strategies": list[StrategyRecord],
    "games": list[GameResult],
    "summary": RoundSummary,
}


def assert_files_valid(directory: Path) -> None:
    """Every result file decodes as its record type (or is absent); leftover temp files of
    an interrupted atomic write are not result files and are skipped."""
    for path in directory.rglob("*.json"):
        if path.name.startswith(TEMP_PREFIX):
            continue
        if path.name == "manifest.json":
            read_json(path, Manifest)
        elif path.name == "experiment_results.json":
            read_json(path, ExperimentResult)
        elif path.name == INDEX_FILE:
            read_json(path, IndexEntry)
        else:
            kind = path.stem.rsplit("_r", 1)[0]
            assert kind in ROUND_TYPES, path
            read_json(path, ROUND_TYPES[kind])


def records(directory: Path) -> dict[str, object]:
    """Every round file, without timestamps and durations."""
    return {
        path.name: strip_times(read_json(path, ROUND_TYPES[path.stem.rsplit("_r", 1)[0]]))
        for path in sorted((directory / "rounds").glob("*.json"))
        if not path.name.startswith(TEMP_PREFIX)
    }


def outcome(result: ExperimentResult, cancelled: int = 0) -> dict[str, object]:
    """What a resumed run must share with an uninterrupted one (ids and times aside, how often
    it was killed, and the `cancelled` attempts an abort cut off in flight: they were sent,
    so they count as calls)."""
    data = msgspec.to_builtins(result)
    for key in ("experiment_id", "start_time", "end_time", "config", "unclean_stops"):
        data.pop(key)
    data["total_api_calls"] -= cancelled
    return strip_times(data)


def cancelled_in_flight(directory: Path) -> int:
    """The attempts an abort cancelled in flight, as the call log records them."""
    calls, _ = read_jsonl(directory / "calls.jsonl", CallRecord)
    return sum(call.failures.count(CANCELLED) for call in calls)


def final_result(directory: Path) -> ExperimentResult:
    return read_json(directory / "experiment_results.json", ExperimentResult)


def write_config(
    path: Path,
    results_dir: Path,
    *,
    agents=4,
    rounds=4,
    seed=11,
    latency_ms=0,
    max_concurrency=4,
    base_url: str | None = None,
) -> Path:
    """A simulated run, or with `base_url` an OpenAI-compatible one (no key) against it."""
    provider = f'name = "openai"\nbase_url = "{base_url}"' if base_url else 'name = "simulated"'
    path.write_text(
        f'agents = {agents}\nrounds = {rounds}\nseed = {seed}\nresults_dir = "{results_dir}"\n'
        f"[provider]\n{provider}\nlatency_ms = {latency_ms}\nmax_concurrency = {max_concurrency}\n"
    )
    return path


# A child that runs the CLI with slow fsyncs, so that a kill can land inside an atomic save.
SLOW_SAVE_CHILD = (
    "import os, sys, time\n"
    "fsync = os.fsync\n"
    "def slow_fsync(fd):\n"
    "    time.sleep(float(os.environ.get('SLOW_FSYNC_S', '0')))\n"
    "    fsync(fd)\n"
    "os.fsync = slow_fsync\n"
    "from acausal_tui.cli import main\n"
    "sys.exit(main())\n"
)


def start_cli(*args: str, slow_fsync_s: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "SLOW_FSYNC_S": str(slow_fsync_s), "PYTHONPATH": str(ROOT)}
    env.pop("OPENROUTER_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE_CHILD, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 20.0) -> bool:
    """Poll `condition` every millisecond; False if the process ended (or time ran out) first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            return condition()
        time.sleep(0.001)
    raise AssertionError("timed out waiting for the experiment")


def only_experiment(results_dir: Path) -> Path | None:
    found = [p for p in results_dir.glob("exp_*") if p.is_dir()] if results_dir.is_dir() else []
    assert len(found) <= 1
    return found[0] if found else None


def reference(config_file: Path, results: Path) -> tuple[Path | None, ExperimentResult]:
    """The uninterrupted, zero-latency run of `config_file` into `results`: its directory and result."""
    config = with_seed(load_config(config_file, {"results_dir": str(results), "provider": {"latency_ms": 0}}, env={}))
    result = anyio.run(lambda: run_experiment(config, provider=make_provider(config, {})))
    return only_experiment(results), result


def call_keys(directory: Path) -> list[str]:
    calls, bad = read_jsonl(directory / "calls.jsonl", CallRecord)
    assert not bad  # kill -9 cannot tear a line: each is one write of a whole line
    return sorted(c.key for c in calls)


def assert_resumed_as_uninterrupted(directory: Path, config_file: Path, reference_results: Path) -> None:
    """A killed and resumed run in `directory` has the uninterrupted run's records, outcome
    and calls (each recorded exactly once), and no temp file or lock left behind."""
    ref_dir, ref_result = reference(config_file, reference_results)
    assert ref_dir is not None
    assert records(directory) == records(ref_dir)
    assert outcome(final_result(directory)) == outcome(ref_result)
    assert call_keys(directory) == call_keys(ref_dir)
    assert not list(directory.rglob(f"{TEMP_PREFIX}*")) and not (directory / LOCK_NAME).exists()
