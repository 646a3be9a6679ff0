"""Sweeps split across machines: `--shard I/N` picks the I-th of N slices of the
(condition, seed) grid, and `merge_shards` combines the finished shards' sweep
directories into one sweep with the same numbers as an unsharded run.

A shard is an ordinary sweep directory (its sweep.json lists only its slice and says
`shard: "I/N"`), so a batch scheduler (a SLURM job array) can run each on its own
machine. The slice is every N-th cell of the grid starting at the I-th, so conditions
and seeds spread evenly over the shards."""

import re
import shutil
from pathlib import Path
from typing import Any

import msgspec

from engine.config import ConfigError
from engine.loading import load_experiment, round_file_problems
from engine.runner import utc_now
from engine.store import write_atomic
from engine.sweep_file import SWEEP_FILE, SweepResult, SweepRun, encode_sweep, load_sweep
from engine.sweep_plan import new_sweep_dir
from engine.sweep_summary import counted, excluded, record_outcome, summarize, sweep_status

# What may differ between the shards of one sweep; everything else must be equal.
PER_SHARD = (
    "sweep_id",
    "status",
    "start_time",
    "end_time",
    "experiments",
    "summary",
    "differences",
    "excluded",
    "validity_not_recorded",
    "message",
    "shard",
    "resumed",
)
# Settings that pace or bound the calls but not what a model is asked or how its replies come
# back: a shard may differ in them (one resumed with a larger --max-cost, one run at another
# --rpm). The merged sweep.json keeps shard 1's. Not the timeout: a shorter one means more
# timeouts, retries and fallback moves with a real provider.
PACING = ("rpm", "max_concurrency", "max_cost_usd", "latency_ms", "api_key_env", "allow_insecure")
UNFINISHED = ("pending", "running", "aborted")  # an experiment `acausal-tui resume` would go on with


def parse_shard(text: str, cells: int) -> tuple[int, int]:
    """'2/5' -> (2, 5); ConfigError (naming --shard) unless 1 <= I <= N <= cells."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ConfigError(f"--shard: expected I/N such as 2/5, got {text!r}") from None
    if not sep or n < 1 or not 1 <= i <= n:
        raise ConfigError(f"--shard: expected I/N with 1 <= I <= N, got {text!r}")
    if n > cells:
        raise ConfigError(f"--shard: {n} shards for a grid of {cells} experiments (at most {cells})")
    return i, n


def grid_order(result: SweepResult) -> list[tuple[str, int]]:
    """Every (condition, seed) of the whole grid, in the order an unsharded sweep runs them."""
    return [(label, seed) for label in result.conditions for seed in result.seeds]


def _shared_part(result: SweepResult) -> Any:
    """The shard's sweep.json without what differs per shard (results_dir and the pacing
    settings may too)."""
    data = msgspec.to_builtins(result)
    for key in PER_SHARD:
        data.pop(key, None)
    data["config"].pop("results_dir", None)
    for key in PACING:
        data["config"]["provider"].pop(key, None)
    return data


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two JSON-like values first differ: `config.rounds: 3 here, 2 there`."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            if (found := first_difference(x, y, f"{path}[{k}]")) is not None:
                return found
        return None
    if a == b:
        return None
    here, there = (_short(v) for v in (a, b))
    return f"{path or 'sweep.json'}: {here} here, {there} there"


def _short(value: Any) -> str:
    text = msgspec.json.encode(value).decode()
    return text if len(text) <= 60 else f"{text[:57]}..."


def check_shards(directories: list[Path]) -> list[tuple[Path, SweepResult]]:
    """The shards' results, ordered by shard index; ConfigError with one line naming the
    directory and the problem unless they are all N shards of one finished sweep."""
    if not directories:
        raise ConfigError("sweep-merge: give the shard directories to merge")
    shards: dict[int, tuple[Path, SweepResult]] = {}
    count = None
    for directory in directories:
        loaded = load_sweep(directory)
        if loaded.result is None:
            raise ConfigError(f"{directory}: {loaded.problem}")
        result = loaded.result
        if result.shard is None:
            raise ConfigError(f"{directory}: not a shard (sweep.json has no 'shard')")
        match = re.fullmatch(r"(\d{1,6})/(\d{1,6})", result.shard)
        if match is None or not 1 <= int(match[1]) <= int(match[2]):
            raise ConfigError(f"{directory}: sweep.json: shard {result.shard!r} is not I/N with 1 <= I <= N")
        index, count_here = int(match[1]), int(match[2])
        if count is None:
            count = count_here
        if count_here != count:
            raise ConfigError(f"{directory}: shard {result.shard}, but another shard is one of {count}")
        if index in shards:
            raise ConfigError(f"{directory}: shard {result.shard} is given twice (also {shards[index][0]})")
        unfinished = [r.directory for r in result.experiments if r.status in UNFINISHED]
        if result.status in UNFINISHED or unfinished:
            what = f" ({len(unfinished)} of its experiments)" if unfinished else ""
            raise ConfigError(
                f"{directory}: shard {result.shard} has not finished{what}: "
                f"`acausal-tui resume {directory}` finishes it, then merge"
            )
        shards[index] = (directory, result)
    assert count is not None
    missing = [str(i) for i in range(1, count + 1) if i not in shards]
    if missing:
        raise ConfigError(f"sweep-merge: shard {', '.join(missing)} of {count} missing")
    ordered = [shards[i] for i in range(1, count + 1)]
    first_dir, first = ordered[0]
    reference = _shared_part(first)
    grid = grid_order(first)
    for i, (directory, result) in enumerate(ordered, start=1):
        if (difference := first_difference(_shared_part(result), reference)) is not None:
            raise ConfigError(
                f"{directory}: not a shard of the same sweep as {first_dir} ({difference}); "
                "every shard needs the same --conditions, --seeds, --seed and settings"
            )
        cells = [(r.condition, r.seed) for r in result.experiments]
        if cells != grid[i - 1 :: count]:
            raise ConfigError(f"{directory}: its experiments are not slice {i}/{count} of the grid")
        for run in result.experiments:
            if problems := _damage(directory / run.directory, run):
                raise ConfigError(
                    f"{directory / run.directory}: {problems[0]}"
                    + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                    + "; copy the shard again from where it ran, or run it again"
                )
    return ordered


def _damage(directory: Path, run: SweepRun) -> list[str]:
    """Why an experiment directory cannot back what sweep.json says of it: missing, or — for
    a completed experiment, whose numbers the statistics use — a file that cannot be read
    (as the browser and export would find it), no result file, or a result file whose
    numbers are not the ones sweep.json has. A cell that gave no number (failed before it
    started, say) cannot contradict one."""
    if not directory.is_dir():
        return ["missing"]
    if run.status != "completed":
        return []
    loaded = load_experiment(directory)
    problems = loaded.problems + round_file_problems(loaded)
    if loaded.result is None:
        return problems or ["experiment_results.json: missing"]
    again = msgspec.structs.replace(run)
    record_outcome(again, loaded.result)
    if run.strategies_fresh is None:  # a sweep.json of an older version did not record them
        again.strategies_fresh = again.strategies_flagged = None
    if run.unclean_stops is None:
        again.unclean_stops = None
    if again != run:
        problems.append("experiment_results.json does not give the numbers sweep.json has for it")
    return problems


def merge_shards(directories: list[Path], results_dir: Path | None = None) -> tuple[SweepResult, Path]:
    """A new sweep directory (under results_dir, default: beside the first shard) holding a
    copy of every shard's experiment directories and one sweep.json with the statistics over
    all of them. The shards are left as they are."""
    shards = check_shards(directories)
    first = shards[0][1]
    order = {cell: k for k, cell in enumerate(grid_order(first))}
    runs = sorted(
        ((d, run) for d, s in shards for run in s.experiments),
        key=lambda item: order[(item[1].condition, item[1].seed)],
    )
    target = new_sweep_dir(results_dir or directories[0].resolve().parent, utc_now())
    try:
        for source, run in runs:
            shutil.copytree(source / run.directory, target / run.directory)
        merged = _merged(first, target.name, [s for _, s in shards], [run for _, run in runs])
        write_atomic(target / SWEEP_FILE, encode_sweep(merged))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # no half-made sweep left behind
        raise
    return merged, target


def _merged(first: SweepResult, sweep_id: str, shards: list[SweepResult], runs: list[SweepRun]) -> SweepResult:
    """The one sweep.json of the shards' `runs` (in grid order)."""
    ends = [s.end_time for s in shards if s.end_time]
    merged = msgspec.structs.replace(
        first,
        sweep_id=sweep_id,
        status=sweep_status([run.status for run in runs]),
        start_time=min(s.start_time for s in shards),
        end_time=max(ends) if ends else None,
        experiments=runs,
        message="; ".join(f"shard {s.shard}: {s.message}" for s in shards if s.message) or None,
        shard=None,
        resumed=sum(s.resumed for s in shards),
    )
    merged.summary, merged.differences = summarize(merged)
    merged.excluded = excluded(merged)
    merged.validity_not_recorded = [run.directory for run in merged.experiments if counted(run) and run.valid is None]
    return merged
