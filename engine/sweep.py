"""Running a sweep: the experiments of the grid run concurrently (at most MAX_RUNNING at a
time) sharing one rate limiter and one cost budget, sweep.json saved as each ends, and an
interrupted sweep finished by `resume_sweep`. The sweep directory holds one normal
experiment directory per cell and sweep.json (engine/sweep_file.py).

This module is also the door to the sweep's parts: the UI and the CLI import every sweep
name from here. Planning is in engine/sweep_plan.py, the events and the control in
engine/sweep_events.py, the statistics in engine/sweep_summary.py, the resume check in
engine/sweep_resume.py."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from engine.calls import Budget, now_iso
from engine.conditions import resolve_condition
from engine.config import Config
from engine.control import RunControl
from engine.limits import Limiter
from engine.models import ExperimentResult
from engine.providers.base import Provider
from engine.resume import continued, open_resume
from engine.runner import Experiment, utc_now
from engine.store import ExperimentStore, write_atomic
from engine.sweep_events import (
    ExperimentDone,
    ExperimentEvent,
    Forward,
    SweepControl,
    SweepEvent,
    SweepFinished,
    SweepObserver,
    SweepStarted,
)
from engine.sweep_file import (
    CONVERGENCE,
    INTERVAL_METRICS,
    METRICS,
    SHARE_METRICS,
    SWEEP_FILE,
    ConditionStats,
    Convergence,
    Difference,
    Excluded,
    IntervalMethod,
    LoadedSweep,
    SweepResult,
    SweepRun,
    encode_sweep,
    is_sweep,
    list_sweeps,
    load_sweep,
)
from engine.sweep_plan import (
    DEFAULT_SEEDS,
    MAX_SEEDS,
    SweepPlan,
    make_providers,
    new_sweep_dir,
    parse_condition,
    plan_sweep,
)
from engine.sweep_resume import SweepResume, plan_resume, read_logs
from engine.sweep_summary import (
    convergence_text,
    counted,
    excluded,
    experiment_values,
    guessed_line,
    record_outcome,
    summarize,
    sweep_status,
    unclean_line,
)

# fmt: off
__all__ = [
    "CONVERGENCE", "DEFAULT_SEEDS", "INTERVAL_METRICS", "MAX_RUNNING", "MAX_SEEDS", "METRICS",
    "SHARE_METRICS", "SWEEP_FILE", "ConditionStats", "Convergence", "Difference", "Excluded",
    "ExperimentDone", "ExperimentEvent", "IntervalMethod", "LoadedSweep", "SweepControl",
    "SweepEvent", "SweepFinished", "SweepObserver", "SweepPlan", "SweepResult", "SweepResume",
    "SweepRun", "SweepStarted", "convergence_text", "counted", "encode_sweep", "excluded",
    "experiment_values", "guessed_line", "is_sweep", "list_sweeps", "load_sweep", "make_providers",
    "new_sweep_dir", "parse_condition", "plan_resume", "plan_sweep", "resume_sweep",
    "run_sweep", "summarize", "sweep_status", "unclean_line",
]
# fmt: on

# Experiments running at once: each keeps 3 files open (lock, call log, error log), so an
# unbounded sweep runs out of file descriptors. The shared Limiter still governs the calls.
MAX_RUNNING = 16


# Runs one experiment of the grid, given the shared limiter and budget, its observer and control.
Start = Callable[[Limiter, Budget, Forward, RunControl], Awaitable[ExperimentResult]]


@dataclass
class Job:
    run: SweepRun
    start: Start
    provider: Provider


def fresh_start(directory: Path, config: Config, provider: Provider) -> Start:
    """A new experiment in `directory` (made if missing)."""

    async def start(limiter: Limiter, budget: Budget, observer: Forward, control: RunControl) -> ExperimentResult:
        store = ExperimentStore(directory)
        try:
            experiment = Experiment(config, store, provider, observer, control, limiter=limiter, budget=budget)
            return await experiment.run()
        finally:
            store.close()

    return start


FINISHED = "(finished experiments)"  # the budget's pending spend of the experiments not run again


def resumed_start(directory: Path, provider: Provider, max_cost_usd: float | None = None) -> Start:
    """The interrupted experiment in `directory`, continued after its last complete round
    (one the budget stopped goes on when `max_cost_usd`, a new budget, is larger)."""

    async def start(limiter: Limiter, budget: Budget, observer: Forward, control: RunControl) -> ExperimentResult:
        resumable = open_resume(directory, max_cost_usd)
        budget.pending.pop(directory.name, None)  # its gateway, made next, carries what it spent
        try:  # the notes (torn log lines set aside) go to the experiment's error log
            return await continued(resumable, provider, observer, control, limiter=limiter, budget=budget).run()
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
    jobs = [
        Job(run, fresh_start(directory / run.directory, config, provider), provider)
        for (run, config), provider in zip(grid, providers, strict=True)
    ]
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
        forward = Forward(observer, run)
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
        result.validity_not_recorded = [
            run.directory for run in result.experiments if counted(run) and run.valid is None
        ]
        await save()
    if observer:
        observer.on_event(SweepFinished(result, directory))


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
        Job(
            run,
            resumed_start(plan.directory / run.directory, provider, plan.max_cost_usd)
            if resume
            else fresh_start(plan.directory / run.directory, config, provider),
            provider,
        )
        for (run, config, resume), provider in zip(plan.todo, providers, strict=True)
    ]
    budget = Budget(result.config.provider.max_cost_usd)
    budget.exceeded = plan.budget_reached  # stopped by the budget, resumed without a larger one
    budget.pending = await anyio.to_thread.run_sync(read_logs, plan, providers)
    budget.pending[FINISHED] = plan.spent  # so the budget and what was spent show whole in its messages
    await run_jobs(result, plan.directory, jobs, budget, observer, control, max_running)
    return result
