"""sweep.json: its schema (the grid's cells, the per-condition statistics), writing it, and
reading it back checked, so every reader (the CLI, resume, export, merge, the comparison
view) refuses the same bad files with the same one-line reason."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from engine.conditions import Condition
from engine.config import Config
from engine.models import AcausalIndicators, Status
from engine.stats import CONFIDENCE, METHOD, MIN_SEEDS, WIDE_BELOW, Interval
from engine.store import decoder, read_file

SWEEP_FILE = "sweep.json"
SWEEP_SCHEMA_VERSION = 2
CONVERGENCE = "rounds_to_convergence"  # reported as "converged in k of n seeds", never a mean
# Every acausal indicator (overall_cooperation_rate among them), then in- vs out-group.
METRICS = (*AcausalIndicators.__struct_fields__, "in_group_cooperation_rate", "out_group_cooperation_rate")
# Those with a mean and interval over seeds: all but convergence (reported as k of n).
INTERVAL_METRICS = tuple(m for m in METRICS if m != CONVERGENCE)
# Metrics that are shares of moves or strategies (0..1): their intervals are clipped to
# [0, 1] (differences to [-1, 1]). The truth lies in that range, so clipping never makes an
# interval miss it: coverage is unchanged, and no "131%" is ever shown.
SHARE_METRICS = frozenset(
    {
        "identity_reasoning_frequency",
        "cooperation_despite_asymmetry",
        "cooperation_when_symmetric",
        "surprise_at_defection",
        "overall_cooperation_rate",
        "overall_cooperation_rate_fresh",
        "fallback_rate",
        "in_group_cooperation_rate",
        "out_group_cooperation_rate",
    }
)


class SweepRun(msgspec.Struct, kw_only=True):
    """One cell of the grid: an experiment and the per-experiment values the statistics use."""

    condition: str  # the condition as given in --conditions
    seed: int
    directory: str  # the experiment directory, relative to the sweep directory
    status: Status | Literal["pending"] = "pending"
    message: str | None = None  # why it stopped early, as the experiment's result says
    rounds: int = 0  # rounds completed
    metrics: dict[str, float | None] = {}  # METRICS of the finished experiment
    cooperation_per_round: list[float | None] = []  # None: a round without a counted move
    valid: bool | None = None  # the experiment's validity; None: not recorded (older version)
    invalid_reasons: list[str] = []
    # fresh LLM strategies, and those whose rule was guessed (validity); None: not recorded
    strategies_fresh: int | None = None
    strategies_flagged: int | None = None
    unclean_stops: int | None = None  # the result's (resumes after a kill or crash); None: not recorded


class Convergence(msgspec.Struct, kw_only=True):
    """rounds_to_convergence over a condition's counted seeds: `converged` of `n` seeds
    converged, with the median round over those only (None when none did)."""

    converged: int
    n: int
    median_round: float | None


class ConditionStats(msgspec.Struct, kw_only=True):
    condition: str
    metrics: dict[str, Interval]  # over the condition's counted experiments (see `counted`)
    cooperation_per_round: list[Interval]  # index 0 = round 1
    convergence: Convergence | None = None  # None in sweep.json files of older versions


class Difference(msgspec.Struct, kw_only=True):
    """condition minus reference: paired t over the seeds where both were counted."""

    condition: str
    reference: str
    metrics: dict[str, Interval]
    cooperation_per_round: list[Interval]


class IntervalMethod(msgspec.Struct, kw_only=True):
    method: str = METHOD
    confidence: float = CONFIDENCE
    min_seeds: int = MIN_SEEDS  # fewer: no interval ("n too small")
    wide_below: int = WIDE_BELOW  # fewer: the interval carries a note that it is wide by nature


class Excluded(msgspec.Struct, kw_only=True):
    """A completed experiment left out of every interval because it is invalid."""

    condition: str
    seed: int
    directory: str
    reasons: list[str]


class SweepResult(msgspec.Struct, kw_only=True):
    sweep_id: str
    status: Status
    start_time: str
    end_time: str | None = None
    conditions: list[str]  # as given; the first is the reference for differences
    resolved_conditions: dict[str, Condition]
    seeds: list[int]
    config: Config  # the shared settings; condition, switches and seed vary per experiment
    experiments: list[SweepRun]
    simulated: bool = False  # some experiment ran on the simulated provider: its numbers are not findings
    intervals: IntervalMethod | None = None  # None: an older sweep.json (bootstrap intervals)
    summary: list[ConditionStats] = []
    differences: list[Difference] = []
    excluded: list[Excluded] = []  # invalid experiments, not counted
    validity_not_recorded: list[str] = []  # counted experiments whose validity is unknown
    message: str | None = None
    shard: str | None = None  # "I/N" when this is one slice of a larger grid (engine/shard.py)
    resumed: int = 0  # how many times `acausal-tui resume` continued the sweep
    schema_version: int = SWEEP_SCHEMA_VERSION


def encode_sweep(result: SweepResult) -> bytes:
    return msgspec.json.format(msgspec.json.encode(result), indent=2)


def is_sweep(directory: Path) -> bool:
    return (directory / SWEEP_FILE).is_file()


@dataclass
class LoadedSweep:
    directory: Path
    result: SweepResult | None = None
    problem: str | None = None  # why sweep.json could not be read


def plain_name(name: str) -> bool:
    """A directory name inside the sweep directory: no path separators, not `.` or `..`."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\\0")


def load_sweep(directory: Path) -> LoadedSweep:
    """Never raises for bad content: an unreadable sweep.json is reported in `problem`, and
    so is one that makes no sense (`sweep_problem`: e.g. an experiment's `directory` of `..`
    or an absolute path, which the comparison view and export would open)."""
    try:
        result = decoder(SweepResult).decode(read_file(directory / SWEEP_FILE))
    except FileNotFoundError:
        return LoadedSweep(directory, problem=f"{SWEEP_FILE}: missing")
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        return LoadedSweep(directory, problem=f"{SWEEP_FILE}: {exc}")
    problem = sweep_problem(result)
    return LoadedSweep(directory, result) if problem is None else LoadedSweep(directory, problem=problem)


def sweep_problem(result: SweepResult) -> str | None:
    """Why a sweep.json that decodes makes no sense (None: it does): an experiment's
    directory that is not a plain name; a per-condition entry or difference without every
    metric; per-round lists of different lengths."""
    for i, run in enumerate(result.experiments):
        if not plain_name(run.directory):
            return f"{SWEEP_FILE}: experiments[{i}].directory: {run.directory!r} is not a plain directory name"
    entries = [*result.summary, *result.differences]
    for entry in entries:
        missing = [metric for metric in INTERVAL_METRICS if metric not in entry.metrics]
        if missing:
            return f"{SWEEP_FILE}: {entry.condition}: no {', '.join(missing)}"
    lengths = {len(entry.cooperation_per_round) for entry in entries}
    if len(lengths) > 1:
        return (
            f"{SWEEP_FILE}: cooperation_per_round lists of different lengths "
            f"({', '.join(str(n) for n in sorted(lengths))})"
        )
    return None


def list_sweeps(results_dir: Path) -> list[LoadedSweep]:
    """Every sweep directory under results_dir, newest first (by name)."""
    if not results_dir.is_dir():
        return []
    dirs = [p for p in results_dir.iterdir() if p.is_dir() and p.name.startswith("sweep_")]
    return [load_sweep(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]
