"""Sweeps: the grid conditions x seeds, run as concurrent experiments (at most MAX_RUNNING
at a time) that share one rate limiter and one cost budget, and resumed after an
interruption. The sweep directory holds one normal experiment directory per cell and
`sweep.json`: per condition, the mean and Student-t interval of every metric over the
valid completed seeds, each condition's paired difference from the first (reference)
condition, convergence as "k of n seeds", and the runs left out as invalid."""

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio
import anyio.to_thread
import msgspec

from engine.calls import Budget, now_iso
from engine.conditions import Condition, resolve_condition
from engine.config import Config, ConfigError, load_config, merge, validate
from engine.control import RunControl
from engine.events import Event
from engine.limits import Limiter
from engine.models import AcausalIndicators, ExperimentResult, Status
from engine.providers.base import Provider
from engine.providers.factory import make_provider
from engine.resume import ResumeError, check_code_matches, open_resume, read_manifest, restored
from engine.runner import Experiment, utc_now, with_seed
from engine.stats import CONFIDENCE, METHOD, MIN_SEEDS, WIDE_BELOW, Interval, median, t_interval
from engine.store import ExperimentStore, decoder, new_dated_dir, read_file, read_json, write_atomic

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
SHARE_METRICS = frozenset({
    "identity_reasoning_frequency", "cooperation_despite_asymmetry", "cooperation_when_symmetric",
    "surprise_at_defection", "overall_cooperation_rate", "overall_cooperation_rate_fresh",
    "fallback_rate", "in_group_cooperation_rate", "out_group_cooperation_rate",
})
MAX_SEEDS = 1000  # --seeds: a larger grid is a typo, not an experiment
DEFAULT_SEEDS = 10
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
    cooperation_per_round: list[float | None] = []  # None: a round without a counted move
    valid: bool | None = None  # the experiment's validity; None: not recorded (older version)
    invalid_reasons: list[str] = []


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


def make_providers(configs: Sequence[Config], **options: Any) -> list[Provider]:
    """One provider per config (the experiments of a sweep), all on one HTTP client whose
    connection pool is sized to the sweep's shared concurrency limit (the configs share
    their provider settings). ConfigError as make_provider."""
    settings = configs[0].provider if configs else None
    if settings is not None and settings.name != "simulated" and "transport" not in options:
        from engine.providers.openai_compat import SharedClient

        options["client"] = SharedClient(settings.max_concurrency)
    return [make_provider(config, **options) for config in configs]


def new_sweep_dir(results_dir: Path, now: datetime) -> Path:
    return new_dated_dir(results_dir, "sweep", now)


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
        self.started = False  # the experiment has said something: it did start

    def on_event(self, event: Event) -> None:
        self.started = True
        if self.observer is not None:
            self.observer.on_event(ExperimentEvent(self.run, event))


# -- running --------------------------------------------------------------------------------


def experiment_values(result: ExperimentResult) -> tuple[dict[str, float | None], list[float]]:
    """The indicators (and in- vs out-group cooperation) and the per-round cooperation of
    one experiment."""
    metrics: dict[str, float | None] = msgspec.structs.asdict(result.acausal_indicators)
    breakdown = result.cooperation_breakdown
    metrics["in_group_cooperation_rate"] = breakdown.in_group_cooperation_rate if breakdown else None
    metrics["out_group_cooperation_rate"] = breakdown.out_group_cooperation_rate if breakdown else None
    return metrics, [s.cooperation_rate for s in result.round_summaries]


def record_outcome(run: SweepRun, result: ExperimentResult) -> None:
    """Copy what the statistics use from a finished experiment into its grid cell."""
    run.status, run.message = result.status, result.message
    run.rounds = result.total_rounds
    run.metrics, run.cooperation_per_round = experiment_values(result)
    validity = result.validity
    run.valid = None if validity is None else validity.valid
    run.invalid_reasons = [] if validity is None or validity.valid else list(validity.reasons)


def sweep_status(statuses: list[str]) -> Status:
    for status in ("aborted", "failed", "budget_exceeded"):
        if status in statuses:
            return status  # type: ignore[return-value]
    return "completed"


def encode_sweep(result: SweepResult) -> bytes:
    return msgspec.json.format(msgspec.json.encode(result), indent=2)


# Runs one experiment of the grid, given the shared limiter and budget, its observer and control.
Start = Callable[[Limiter, Budget, "_Forward", RunControl], Awaitable[ExperimentResult]]


@dataclass
class Job:
    run: SweepRun
    start: Start
    provider: Provider


def fresh_start(directory: Path, config: Config, provider: Provider) -> Start:
    """A new experiment in `directory` (made if missing)."""

    async def start(limiter: Limiter, budget: Budget, observer: "_Forward", control: RunControl) -> ExperimentResult:
        store = ExperimentStore(directory)
        try:
            experiment = Experiment(config, store, provider, observer, control, limiter=limiter, budget=budget)
            return await experiment.run()
        finally:
            store.close()

    return start


def resumed_start(directory: Path, provider: Provider) -> Start:
    """The interrupted experiment in `directory`, continued after its last complete round."""

    async def start(limiter: Limiter, budget: Budget, observer: "_Forward", control: RunControl) -> ExperimentResult:
        resumable = open_resume(directory)
        try:  # the notes (torn log lines set aside) go to the experiment's error log
            experiment = Experiment(resumable.config, resumable.store, provider, observer, control,
                                    limiter=limiter, budget=budget, restored=restored(resumable))
            return await experiment.run()
        finally:
            resumable.store.close()

    return start


async def run_sweep(
    plan: SweepPlan,
    providers: Sequence[Provider],
    *,
    results_dir: Path | None = None,
    observer: SweepObserver | None = None,
    control: SweepControl | None = None,
    max_running: int = MAX_RUNNING,
) -> tuple[SweepResult, Path]:
    """Run the experiments of the plan concurrently, at most `max_running` at a time, in a
    new sweep directory under results_dir (default: the config's). `providers[i]` serves
    the i-th experiment of `plan.runs()` and is closed when that experiment ends. An
    experiment that cannot even start (its directory cannot be opened) ends `failed` with
    the reason as its message; the others go on."""
    base = plan.base
    grid = plan.runs()
    directory = new_sweep_dir(results_dir or Path(base.results_dir), utc_now())
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
        simulated=any(provider.simulated for provider in providers),
        intervals=IntervalMethod(),
        experiments=[run for run, _ in grid],
        shard=None if plan.shard is None else f"{plan.shard[0]}/{plan.shard[1]}",
    )
    jobs = [Job(run, fresh_start(directory / run.directory, config, provider), provider)
            for (run, config), provider in zip(grid, providers, strict=True)]
    budget = Budget(base.provider.max_cost_usd)
    await run_jobs(result, directory, jobs, budget, observer, control, max_running)
    return result, directory


async def run_jobs(
    result: SweepResult,
    directory: Path,
    jobs: list[Job],
    budget: Budget,
    observer: SweepObserver | None,
    control: SweepControl | None,
    max_running: int,
) -> None:
    """Run `jobs` concurrently (the grid cells not finished yet), saving sweep.json after
    each; then the statistics over every cell, and sweep.json once more."""
    control = control or SweepControl()
    base = result.config
    limiter = Limiter(base.provider.rpm, base.provider.max_concurrency)
    running = anyio.CapacityLimiter(max_running)
    saving = anyio.Lock()

    async def save() -> None:
        """sweep.json as it is now, written (with fsync) off the event loop, one write at a
        time so an older state never replaces a newer one. Shielded: once begun, it ends."""
        with anyio.CancelScope(shield=True):
            async with saving:
                data = encode_sweep(result)
                await anyio.to_thread.run_sync(write_atomic, directory / SWEEP_FILE, data)

    for job in jobs:
        job.run.status, job.run.message = "pending", None
    await save()
    if observer:
        observer.on_event(SweepStarted(result, directory))
    total = len(result.experiments)
    finished = total - len(jobs)

    async def one(job: Job) -> None:
        nonlocal finished
        run = job.run
        try:
            async with running:
                outcome = await start(job)
        finally:
            with anyio.CancelScope(shield=True):
                await job.provider.aclose()
        if outcome is None:  # could not start
            run.status = "failed"
        else:
            record_outcome(run, outcome)
        finished += 1
        done = finished  # other experiments may finish while sweep.json is saved
        await save()
        if observer:
            observer.on_event(ExperimentDone(run, done, total))

    async def start(job: Job) -> ExperimentResult | None:
        run = job.run
        experiment_control = RunControl()
        control.add(experiment_control)
        forward = _Forward(observer, run)
        try:
            return await job.start(limiter, budget, forward, experiment_control)
        except Exception as exc:  # e.g. too many open files, or the lock taken: this one fails alone
            if not forward.started:
                run.message = f"cannot start the experiment: {exc}"
            elif isinstance(exc, OSError):
                run.message = f"cannot write the results: {exc}"
            else:
                run.message = f"internal error: {type(exc).__name__}: {exc}"
            return None

    try:
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(one, job)
    finally:
        for run in result.experiments:
            if run.status == "pending":  # cancelled from outside before it could report
                run.status = "aborted"
        result.status = sweep_status([run.status for run in result.experiments])
        result.end_time = now_iso()
        result.message = control.abort_reason if control.aborted else None
        result.summary, result.differences = summarize(result)
        result.excluded = excluded(result)
        result.validity_not_recorded = [run.directory for run in result.experiments
                                        if counted(run) and run.valid is None]
        await save()
    if observer:
        observer.on_event(SweepFinished(result, directory))


# -- resuming -------------------------------------------------------------------------------


@dataclass
class SweepResume:
    """A sweep directory checked for resuming: the sweep as saved, with the finished cells
    brought up to date from their experiment directories, and what each unfinished cell
    needs (`resume`: continue its interrupted experiment; otherwise start it)."""

    directory: Path
    result: SweepResult
    todo: list[tuple[SweepRun, Config, bool]] = field(default_factory=list)  # run, config, resume
    spent: float = 0.0  # what the finished experiments cost


def is_sweep(directory: Path) -> bool:
    return (directory / SWEEP_FILE).is_file()


def plan_resume(directory: Path, max_cost_usd: float | None = None) -> SweepResume:
    """Raise ResumeError (exit 2, nothing written) when sweep.json cannot be read, a cell's
    condition is defined differently in this version, or an experiment cannot be resumed."""
    loaded = load_sweep(directory)
    if loaded.result is None:
        raise ResumeError(f"{directory}: {loaded.problem}")
    result = loaded.result
    if max_cost_usd is not None:
        provider = msgspec.structs.replace(result.config.provider, max_cost_usd=max_cost_usd)
        result.config = validate(msgspec.structs.replace(result.config, provider=provider))
    plan = SweepResume(directory, result)
    for run in result.experiments:
        path = directory / run.directory
        outcome = finished_result(path)
        if outcome is not None:
            record_outcome(run, outcome)
            plan.spent += outcome.total_cost
            continue
        if (path / "manifest.json").exists():
            manifest = read_manifest(path)  # refuses a newer schema or a broken manifest
            try:
                check_code_matches(manifest)  # and prompts or a condition changed since
            except ResumeError as exc:
                raise ResumeError(f"{run.directory}: {exc}") from None
            config = manifest.config
            if max_cost_usd is not None:
                config = msgspec.structs.replace(config, provider=result.config.provider)
            plan.todo.append((run, config, True))
        else:
            plan.todo.append((run, cell_config(result, run), False))
    return plan


def finished_result(path: Path) -> ExperimentResult | None:
    """The experiment's result when it completed (also after the sweep itself was killed)."""
    try:
        outcome = read_json(path / "experiment_results.json", ExperimentResult)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return outcome if outcome.status == "completed" else None


def cell_config(result: SweepResult, run: SweepRun) -> Config:
    """The config of a cell that never started, rebuilt from the sweep's shared settings as
    plan_sweep built it; refused if its condition now means something else."""
    name, switches = parse_condition(run.condition)
    extra: dict[str, Any] = {"condition": name, "seed": run.seed}
    if switches:
        extra["switches"] = switches
    try:
        config = validate(merge(msgspec.to_builtins(result.config), extra))
    except (ConfigError, msgspec.ValidationError) as exc:
        raise ResumeError(f"{SWEEP_FILE}: {run.condition}: {exc}") from None
    recorded = result.resolved_conditions.get(run.condition)
    if recorded is not None and resolve_condition(config.condition, config.switches) != recorded:
        raise ResumeError(f"{SWEEP_FILE}: condition {run.condition!r} is defined differently in this "
                          "version than when the sweep started")
    return config


async def resume_sweep(
    plan: SweepResume,
    providers: Sequence[Provider],
    *,
    observer: SweepObserver | None = None,
    control: SweepControl | None = None,
    max_running: int = MAX_RUNNING,
) -> SweepResult:
    """Finish every unfinished experiment of the sweep (`providers[i]` serves `plan.todo[i]`)
    and rewrite sweep.json. The shared budget counts what the finished experiments spent."""
    result = plan.result
    result.status, result.end_time, result.message = "running", None, None
    result.resumed += 1
    result.simulated = result.simulated or any(provider.simulated for provider in providers)
    jobs = [
        Job(run, resumed_start(plan.directory / run.directory, provider) if resume
            else fresh_start(plan.directory / run.directory, config, provider), provider)
        for (run, config, resume), provider in zip(plan.todo, providers, strict=True)
    ]
    limit = result.config.provider.max_cost_usd
    budget = Budget(None if limit is None else limit - plan.spent)
    await run_jobs(result, plan.directory, jobs, budget, observer, control, max_running)
    return result


# -- statistics -----------------------------------------------------------------------------


def counted(run: SweepRun) -> bool:
    """Completed and not invalid: what the intervals are over (validity not recorded counts,
    and sweep.json lists it in validity_not_recorded)."""
    return run.status == "completed" and run.valid is not False


def excluded(result: SweepResult) -> list[Excluded]:
    return [Excluded(condition=run.condition, seed=run.seed, directory=run.directory, reasons=run.invalid_reasons)
            for run in result.experiments if run.status == "completed" and run.valid is False]


def summarize(result: SweepResult) -> tuple[list[ConditionStats], list[Difference]]:
    """Means and t-intervals over the counted experiments of each condition; differences
    over the seeds where both the condition and the reference were counted (and, per
    metric, where both have a value)."""
    done: dict[str, dict[int, SweepRun]] = {label: {} for label in result.conditions}
    for run in result.experiments:
        if counted(run):
            done[run.condition][run.seed] = run
    # per-round entries for every round any completed experiment played, counted or not
    rounds = max((len(run.cooperation_per_round) for run in result.experiments if run.status == "completed"),
                 default=0)

    def interval(values: list[float | None], share: bool = True, difference: bool = False) -> Interval:
        iv = t_interval([float(v) for v in values if v is not None])
        if share and iv.low is not None and iv.high is not None:
            floor = -1.0 if difference else 0.0
            iv = msgspec.structs.replace(iv, low=max(iv.low, floor), high=min(iv.high, 1.0))
        return iv

    summary = []
    for label, runs in done.items():
        cells = list(runs.values())
        summary.append(ConditionStats(
            condition=label,
            metrics={m: interval([c.metrics.get(m) for c in cells], m in SHARE_METRICS)
                     for m in INTERVAL_METRICS},
            cooperation_per_round=[interval([round_rate(c, r) for c in cells]) for r in range(1, rounds + 1)],
            convergence=convergence(cells),
        ))
    reference = result.conditions[0]
    differences = []
    for label in result.conditions[1:]:
        pairs = [(done[label][s], done[reference][s]) for s in sorted(done[label]) if s in done[reference]]
        differences.append(Difference(
            condition=label,
            reference=reference,
            metrics={m: interval([minus(a.metrics.get(m), b.metrics.get(m)) for a, b in pairs],
                                 m in SHARE_METRICS, difference=True) for m in INTERVAL_METRICS},
            cooperation_per_round=[
                interval([minus(round_rate(a, r), round_rate(b, r)) for a, b in pairs], difference=True)
                for r in range(1, rounds + 1)
            ],
        ))
    return summary, differences


def convergence(runs: list[SweepRun]) -> Convergence:
    rounds = [float(v) for run in runs if (v := run.metrics.get(CONVERGENCE)) is not None]
    return Convergence(converged=len(rounds), n=len(runs), median_round=median(rounds))


def convergence_text(value: Convergence | None) -> str:
    """'converged in 3 of 10 seeds (median round 4)'."""
    if value is None:
        return "not recorded"
    text = f"converged in {value.converged} of {value.n} seeds"
    return text + (f" (median round {value.median_round:g})" if value.median_round is not None else "")


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
        result = decoder(SweepResult).decode(read_file(directory / SWEEP_FILE))
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
