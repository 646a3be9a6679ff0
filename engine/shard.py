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
from engine.runner import utc_now
from engine.store import write_atomic
from engine.sweep_file import SWEEP_FILE, SweepResult, encode_sweep, load_sweep
from engine.sweep_plan import new_sweep_dir
from engine.sweep_summary import counted, excluded, summarize, sweep_status

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
    """The shard's sweep.json without what differs per shard (results_dir may too)."""
    data = msgspec.to_builtins(result)
    for key in PER_SHARD:
        data.pop(key, None)
    data["config"].pop("results_dir", None)
    return data


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
        if result.status == "running" or any(r.status == "pending" for r in result.experiments):
            raise ConfigError(f"{directory}: shard {result.shard} has not finished")
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
        if _shared_part(result) != reference:
            raise ConfigError(
                f"{directory}: not a shard of the same sweep as {first_dir} (conditions, seeds or settings differ)"
            )
        cells = [(r.condition, r.seed) for r in result.experiments]
        if cells != grid[i - 1 :: count]:
            raise ConfigError(f"{directory}: its experiments are not slice {i}/{count} of the grid")
    return ordered


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
    for source, run in runs:
        shutil.copytree(source / run.directory, target / run.directory)
    ends = [s.end_time for _, s in shards if s.end_time]
    merged = msgspec.structs.replace(
        first,
        sweep_id=target.name,
        status=sweep_status([run.status for _, run in runs]),
        start_time=min(s.start_time for _, s in shards),
        end_time=max(ends) if ends else None,
        experiments=[run for _, run in runs],
        message="; ".join(f"shard {s.shard}: {s.message}" for _, s in shards if s.message) or None,
        shard=None,
    )
    merged.summary, merged.differences = summarize(merged)
    merged.excluded = excluded(merged)
    merged.validity_not_recorded = [run.directory for run in merged.experiments if counted(run) and run.valid is None]
    write_atomic(target / SWEEP_FILE, encode_sweep(merged))
    return merged, target
