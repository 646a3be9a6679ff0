"""Sweeps: the grid conditions x seeds, run as concurrent experiments (at most MAX_RUNNING
at a time) that share one rate limiter and one cost budget. The sweep directory holds one
normal experiment directory per cell and `sweep.json`: per condition, the mean and a seeded
bootstrap interval of every metric over seeds, and each condition's difference from the
first (reference) condition."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import anyio.to_thread
import msgspec

from engine.calls import Budget, now_iso
from engine.conditions import Condition, resolve_condition
from engine.config import Config, ConfigError, load_config, merge
from engine.control import RunControl
from engine.events import Event
from engine.limits import Limiter
from engine.models import AcausalIndicators, ExperimentResult, Status
from engine.providers.base import Provider
from engine.providers.factory import make_provider
from engine.rng import keyed_rng
from engine.runner import Experiment, utc_now, with_seed
from engine.stats import CONFIDENCE, RESAMPLES, Interval, bootstrap_mean
from engine.store import ExperimentStore, decoder, new_dated_dir, write_atomic

SWEEP_FILE = "sweep.json"
SWEEP_SCHEMA_VERSION = 1
# Every acausal indicator (overall_cooperation_rate among them), then in- vs out-group.
METRICS = (*AcausalIndicators.__struct_fields__, "in_group_cooperation_rate", "out_group_cooperation_rate")
MAX_SEEDS = 1000  # --seeds: a larger grid is a typo, not an experiment
# Experiments running at once: each keeps 3 files open (lock, call log, error log), so an
# unbounded sweep runs out of file descriptors. The shared Limiter still governs the calls.
MAX_RUNNING = 16
SWITCH_WORDS = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}


class SweepRun(msgspec.Struct, kw_only=True):
    """One cell of the grid: an experiment and the per-experiment values the statistics use."""

    condition: str  # the condition as given in --conditions
    seed: int
    directory: str  # the experiment directory, relative to the sweep directory
    status: Status | Literal["pending"] = "pending"
    message: str | None = None  # why it stopped early, as the experiment's result says
    rounds: int = 0  # rounds completed
    metrics: dict[str, float | None] = {}  # METRICS of the finished experiment
    cooperation_per_round: list[float] = []


class ConditionStats(msgspec.Struct, kw_only=True):
    condition: str
    metrics: dict[str, Interval]  # over the condition's completed experiments
    cooperation_per_round: list[Interval]  # index 0 = round 1


class Difference(msgspec.Struct, kw_only=True):
    """condition minus reference, as the mean of per-seed differences (paired by seed)."""

    condition: str
    reference: str
    metrics: dict[str, Interval]
    cooperation_per_round: list[Interval]


class Bootstrap(msgspec.Struct, kw_only=True):
    method: str = "percentile bootstrap of the mean over seeds; differences paired by seed"
    resamples: int
    confidence: float
    seed: int  # generators keyed by (seed, "bootstrap", condition[, reference], metric)


class SweepResult(msgspec.Struct, kw_only=True):
    sweep_id: str
    status: Status
    start_time: str
    end_time: str | None = None
    conditions: list[str]  # as given; the first is the reference for differences
    resolved_conditions: dict[str, Condition]
    seeds: list[int]
    config: Config  # the shared settings; condition, switches and seed vary per experiment
    bootstrap: Bootstrap
    experiments: list[SweepRun]
    summary: list[ConditionStats] = []
    differences: list[Difference] = []
    message: str | None = None
    shard: str | None = None  # "I/N" when this is one slice of a larger grid (engine/shard.py)
    schema_version: int = SWEEP_SCHEMA_VERSION


# -- planning -----------------------------------------------------------------------------


@dataclass
class SweepPlan:
    base: Config  # resolved, seed set: the first seed
    configs: dict[str, Config]  # condition label -> its resolved config (seed set per run)
    seeds: list[int]
    shard: tuple[int, int] | None = None  # (I, N): run only the I-th of N slices (engine/shard.py)

    def runs(self) -> list[tuple[SweepRun, Config]]:
        """The grid in order: conditions as given, seeds ascending within each; with a
        shard, only its slice: every N-th cell starting at the I-th."""
        grid = [
            (SweepRun(condition=label, seed=seed, directory=run_directory(label, seed)),
             msgspec.structs.replace(config, seed=seed))
            for label, config in self.configs.items()
            for seed in self.seeds
        ]
        if self.shard is None:
            return grid
        index, count = self.shard
        return grid[index - 1::count]


def parse_condition(label: str) -> tuple[str, dict[str, Any]]:
    """'identity+labels=shuffled+history=last:2' -> ('identity', {switch: value, ...})."""
    name, *pairs = label.split("+")
    switches: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conditions: {label}: expected switch=value after '+', got {pair!r}")
        value = value.strip()
        switches[key.strip()] = SWITCH_WORDS.get(value.lower(), value)
    return name.strip(), switches


def run_directory(label: str, seed: int) -> str:
    return f"exp_{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}_s{seed}"


def plan_sweep(
    config_path: str | None,
    overrides: dict[str, Any],
    conditions: str,
    seeds: int,
    env: dict[str, str] | None = None,
) -> SweepPlan:
    """Validate everything before anything is written: one ConfigError naming the field."""
    labels = [label.strip() for label in conditions.split(",")]
    if not all(labels):
        raise ConfigError(f"--conditions: empty condition name in {conditions!r}")
    if len(set(labels)) < len(labels):
        raise ConfigError(f"--conditions: a condition is listed twice in {conditions!r}")
    if len({run_directory(label, 0) for label in labels}) < len(labels):
        raise ConfigError(f"--conditions: two conditions give the same directory name in {conditions!r}")
    if seeds < 1:
        raise ConfigError(f"--seeds: must be at least 1 (got {seeds})")
    if seeds > MAX_SEEDS:
        raise ConfigError(f"--seeds: at most {MAX_SEEDS} (got {seeds})")
    base = with_seed(load_config(config_path, overrides, env))
    configs = {}
    for label in labels:
        name, switches = parse_condition(label)
        extra: dict[str, Any] = {"condition": name, "seed": base.seed}
        if switches:
            extra["switches"] = switches
        try:
            configs[label] = load_config(config_path, merge(overrides, extra), env)
        except ConfigError as exc:
            raise ConfigError(f"--conditions: {label}: {exc}") from None
    assert base.seed is not None
    return SweepPlan(base=base, configs=configs, seeds=[base.seed + i for i in range(seeds)])


def make_providers(plan: SweepPlan, **options: Any) -> list[Provider]:
    """One provider per experiment of `plan.runs()`, all on one HTTP client whose connection
    pool is sized to the sweep's shared concurrency limit. ConfigError as make_provider."""
    client = None
    if plan.base.provider.name != "simulated" and "transport" not in options:
        from engine.providers.openai_compat import SharedClient

        client = SharedClient(plan.base.provider.max_concurrency)
        options["client"] = client
    return [make_provider(config, **options) for _, config in plan.runs()]


def new_sweep_dir(results_dir: Path, now: datetime) -> Path:
    return new_dated_dir(results_dir, "sweep", now)


# -- one limiter, one budget -----------------------------------------------------------------


# -- control and events ------------------------------------------------------------------------


class SweepControl(RunControl):
    """Pause, resume and abort every experiment of a sweep at once."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[RunControl] = []
        self._paused = False

    def add(self, control: RunControl) -> None:
        self.controls.append(control)
        if self.aborted:
            control.abort(self.abort_reason or "aborted")
        elif self._paused:
            control.pause()

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = not self.aborted
        for control in self.controls:
            control.pause()

    def resume(self) -> None:
        self._paused = False
        for control in self.controls:
            control.resume()

    def abort(self, reason: str = "aborted by the user") -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
        self._paused = False
        for control in self.controls:
            control.abort(reason)


@dataclass(frozen=True, slots=True)
class SweepStarted:
    result: SweepResult
    directory: Path


@dataclass(frozen=True, slots=True)
class ExperimentEvent:
    """An event of one experiment of the sweep."""

    run: SweepRun
    event: Event


@dataclass(frozen=True, slots=True)
class ExperimentDone:
    run: SweepRun
    finished: int  # experiments finished so far, this one included
    total: int


@dataclass(frozen=True, slots=True)
class SweepFinished:
    result: SweepResult
    directory: Path


SweepEvent = SweepStarted | ExperimentEvent | ExperimentDone | SweepFinished


class SweepObserver(Protocol):
    def on_event(self, event: SweepEvent) -> None: ...


class _Forward:
    def __init__(self, observer: SweepObserver | None, run: SweepRun) -> None:
        self.observer = observer
        self.run = run

    def on_event(self, event: Event) -> None:
        if self.observer is not None:
            self.observer.on_event(ExperimentEvent(self.run, event))


# -- running --------------------------------------------------------------------------------


def experiment_values(result: ExperimentResult) -> tuple[dict[str, float | None], list[float]]:
    """The METRICS and the per-round cooperation of one experiment."""
    metrics: dict[str, float | None] = msgspec.structs.asdict(result.acausal_indicators)
    breakdown = result.cooperation_breakdown
    metrics["in_group_cooperation_rate"] = breakdown.in_group_cooperation_rate if breakdown else None
    metrics["out_group_cooperation_rate"] = breakdown.out_group_cooperation_rate if breakdown else None
    return metrics, [s.cooperation_rate for s in result.round_summaries]


def sweep_status(statuses: list[str]) -> Status:
    for status in ("aborted", "failed", "budget_exceeded"):
        if status in statuses:
            return status  # type: ignore[return-value]
    return "completed"


def encode_sweep(result: SweepResult) -> bytes:
    return msgspec.json.format(msgspec.json.encode(result), indent=2)


async def run_sweep(
    plan: SweepPlan,
    providers: Sequence[Provider],
    *,
    results_dir: Path | None = None,
    observer: SweepObserver | None = None,
    control: SweepControl | None = None,
    resamples: int = RESAMPLES,
    max_running: int = MAX_RUNNING,
) -> tuple[SweepResult, Path]:
    """Run the experiments of the plan concurrently, at most `max_running` at a time, in a
    new sweep directory under results_dir (default: the config's). `providers[i]` serves
    the i-th experiment of `plan.runs()` and is closed when that experiment ends. An
    experiment that cannot even start (its directory cannot be opened) ends `failed` with
    the reason as its message; the others go on."""
    control = control or SweepControl()
    base = plan.base
    grid = plan.runs()
    built = [(run, config, provider) for (run, config), provider in zip(grid, providers, strict=True)]
    directory = new_sweep_dir(results_dir or Path(base.results_dir), utc_now())
    limiter = Limiter(base.provider.rpm, base.provider.max_concurrency)
    budget = Budget(base.provider.max_cost_usd)
    running = anyio.CapacityLimiter(max_running)
    assert base.seed is not None
    result = SweepResult(
        sweep_id=directory.name,
        status="running",
        start_time=now_iso(),
        conditions=list(plan.configs),
        resolved_conditions={
            label: resolve_condition(config.condition, config.switches) for label, config in plan.configs.items()
        },
        seeds=plan.seeds,
        config=base,
        bootstrap=Bootstrap(resamples=resamples, confidence=CONFIDENCE, seed=base.seed),
        experiments=[run for run, _ in grid],
        shard=None if plan.shard is None else f"{plan.shard[0]}/{plan.shard[1]}",
    )
    saving = anyio.Lock()

    async def save() -> None:
        """sweep.json as it is now, written (with fsync) off the event loop, one write at a
        time so an older state never replaces a newer one. Shielded: once begun, it ends."""
        with anyio.CancelScope(shield=True):
            async with saving:
                data = encode_sweep(result)
                await anyio.to_thread.run_sync(write_atomic, directory / SWEEP_FILE, data)

    await save()
    if observer:
        observer.on_event(SweepStarted(result, directory))
    finished = 0

    async def one(run: SweepRun, config: Config, provider: Provider) -> None:
        nonlocal finished
        try:
            async with running:
                outcome = await start(run, config, provider)
        finally:
            with anyio.CancelScope(shield=True):
                await provider.aclose()
        if outcome is None:  # could not start
            run.status = "failed"
        else:
            run.status, run.message = outcome.status, outcome.message
            run.rounds = outcome.total_rounds
            run.metrics, run.cooperation_per_round = experiment_values(outcome)
        finished += 1
        done = finished  # other experiments may finish while sweep.json is saved
        await save()
        if observer:
            observer.on_event(ExperimentDone(run, done, len(grid)))

    async def start(run: SweepRun, config: Config, provider: Provider) -> ExperimentResult | None:
        experiment_control = RunControl()
        control.add(experiment_control)
        store: ExperimentStore | None = None
        started = False
        try:
            store = ExperimentStore(directory / run.directory)
            experiment = Experiment(
                config, store, provider, _Forward(observer, run), experiment_control,
                limiter=limiter, budget=budget,
            )
            started = True
            return await experiment.run()
        except Exception as exc:  # e.g. too many open files, or the lock taken: this one fails alone
            if not started:
                run.message = f"cannot start the experiment: {exc}"
            elif isinstance(exc, OSError):
                run.message = f"cannot write the results: {exc}"
            else:
                run.message = f"internal error: {type(exc).__name__}: {exc}"
            return None
        finally:
            if store is not None:
                store.close()

    try:
        async with anyio.create_task_group() as tg:
            for run, config, provider in built:
                tg.start_soon(one, run, config, provider)
    finally:
        for run in result.experiments:
            if run.status == "pending":  # cancelled from outside before it could report
                run.status = "aborted"
        result.status = sweep_status([run.status for run in result.experiments])
        result.end_time = now_iso()
        if control.aborted:
            result.message = control.abort_reason
        # Off the event loop: 10000 resamples per figure take seconds, and a UI shares the loop.
        with anyio.CancelScope(shield=True):
            result.summary, result.differences = await anyio.to_thread.run_sync(summarize, result, resamples)
        await save()
    if observer:
        observer.on_event(SweepFinished(result, directory))
    return result, directory


# -- statistics -----------------------------------------------------------------------------


def summarize(result: SweepResult, resamples: int = RESAMPLES) -> tuple[list[ConditionStats], list[Difference]]:
    """Means and intervals over the *completed* experiments of each condition; differences
    over the seeds where both the condition and the reference completed (and, per metric,
    where both have a value)."""
    seed = result.bootstrap.seed
    done: dict[str, dict[int, SweepRun]] = {label: {} for label in result.conditions}
    for run in result.experiments:
        if run.status == "completed":
            done[run.condition][run.seed] = run
    rounds = max((len(run.cooperation_per_round) for runs in done.values() for run in runs.values()), default=0)

    def interval(values: list[float | None], *key: object) -> Interval:
        present = [float(v) for v in values if v is not None]
        return bootstrap_mean(present, keyed_rng(seed, "bootstrap", *key), resamples)

    summary = []
    for label, runs in done.items():
        cells = list(runs.values())
        summary.append(ConditionStats(
            condition=label,
            metrics={m: interval([c.metrics.get(m) for c in cells], label, m) for m in METRICS},
            cooperation_per_round=[
                interval([round_rate(c, r) for c in cells], label, "round", r) for r in range(1, rounds + 1)
            ],
        ))
    reference = result.conditions[0]
    differences = []
    for label in result.conditions[1:]:
        pairs = [(done[label][s], done[reference][s]) for s in sorted(done[label]) if s in done[reference]]
        differences.append(Difference(
            condition=label,
            reference=reference,
            metrics={
                m: interval([minus(a.metrics.get(m), b.metrics.get(m)) for a, b in pairs], label, reference, m)
                for m in METRICS
            },
            cooperation_per_round=[
                interval([minus(round_rate(a, r), round_rate(b, r)) for a, b in pairs], label, reference, "round", r)
                for r in range(1, rounds + 1)
            ],
        ))
    return summary, differences


def round_rate(run: SweepRun, round: int) -> float | None:
    rates = run.cooperation_per_round
    return rates[round - 1] if round <= len(rates) else None


def minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


# -- loading --------------------------------------------------------------------------------


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
    so is one whose experiments' `directory` is not a plain name (e.g. `..` or an absolute
    path: the comparison view and export open it)."""
    try:
        result = decoder(SweepResult).decode((directory / SWEEP_FILE).read_bytes())
    except FileNotFoundError:
        return LoadedSweep(directory, problem=f"{SWEEP_FILE}: missing")
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        return LoadedSweep(directory, problem=f"{SWEEP_FILE}: {exc}")
    for i, run in enumerate(result.experiments):
        if not plain_name(run.directory):
            return LoadedSweep(directory, problem=(
                f"{SWEEP_FILE}: experiments[{i}].directory: {run.directory!r} is not a plain directory name"))
    return LoadedSweep(directory, result)


def list_sweeps(results_dir: Path) -> list[LoadedSweep]:
    """Every sweep directory under results_dir, newest first (by name)."""
    if not results_dir.is_dir():
        return []
    dirs = [p for p in results_dir.iterdir() if p.is_dir() and p.name.startswith("sweep_")]
    return [load_sweep(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]
