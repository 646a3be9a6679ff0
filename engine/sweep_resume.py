"""Checking a sweep directory for resuming: sweep.json read back, the finished cells brought
up to date from their experiment directories, and what each unfinished cell needs."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from engine.conditions import resolve_condition
from engine.config import Config, ConfigError, merge, validate
from engine.models import CallRecord, ExperimentResult
from engine.providers.base import Provider
from engine.resume import ResumeError, bill_of, check_code_matches, read_manifest
from engine.store import iter_jsonl, read_json
from engine.sweep_file import SWEEP_FILE, SweepResult, SweepRun, load_sweep
from engine.sweep_plan import parse_condition
from engine.sweep_summary import record_outcome


@dataclass
class SweepResume:
    """A sweep directory checked for resuming: the sweep as saved, with the finished cells
    brought up to date from their experiment directories, and what each unfinished cell
    needs (`resume`: continue its interrupted experiment; otherwise start it)."""

    directory: Path
    result: SweepResult
    todo: list[tuple[SweepRun, Config, bool]] = field(default_factory=list)  # run, config, resume
    spent: float = 0.0  # what the finished experiments cost
    max_cost_usd: float | None = None  # a new sweep-wide budget given on resume
    budget_reached: bool = False  # the sweep was stopped by its budget and no larger one is given


def plan_resume(directory: Path, max_cost_usd: float | None = None) -> SweepResume:
    """Raise ResumeError (exit 2, nothing written) when sweep.json cannot be read, a cell's
    condition is defined differently in this version, or an experiment cannot be resumed."""
    loaded = load_sweep(directory)
    if loaded.result is None:
        raise ResumeError(f"{directory}: {loaded.problem}")
    result = loaded.result
    limit = result.config.provider.max_cost_usd
    budget_reached = result.status == "budget_exceeded" and (
        max_cost_usd is None or (limit is not None and max_cost_usd <= limit)
    )
    if max_cost_usd is not None:
        provider = msgspec.structs.replace(result.config.provider, max_cost_usd=max_cost_usd)
        result.config = validate(msgspec.structs.replace(result.config, provider=provider))
    plan = SweepResume(directory, result, max_cost_usd=max_cost_usd, budget_reached=budget_reached)
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
        raise ResumeError(
            f"{SWEEP_FILE}: condition {run.condition!r} is defined differently in this "
            "version than when the sweep started"
        )
    return config


def money(usd: float) -> float:
    """A logged cost as the budget counts it: not a finite, non-negative figure counts 0 (a
    damaged or edited log must not switch the budget off)."""
    return usd if math.isfinite(usd) and usd >= 0 else 0.0


def read_logs(plan: SweepResume, providers: Sequence[Provider]) -> dict[str, float]:
    """One pass over every experiment's calls.jsonl, a line at a time (a log may hold
    gigabytes; run it off the event loop): the markup over list price its bills showed,
    learnt by the sweep's providers (they share it) before any experiment starts — one with
    no bill of its own would reserve its first calls at list price — and what each
    experiment to resume already spent, by its directory: the shared budget counts it
    before that experiment starts again, or the sweep could pass its budget while it waits."""
    learn = getattr(providers[0], "learn_markup", None) if providers else None
    unfinished = {run.directory for run, _, resume in plan.todo if resume}
    spent: dict[str, float] = {}
    for run in plan.result.experiments:
        path = plan.directory / run.directory / "calls.jsonl"
        if (learn is None and run.directory not in unfinished) or not path.is_file():
            continue
        cost = 0.0
        try:
            for call in iter_jsonl(path, CallRecord):
                cost += money(call.cost)
                if learn is not None and (bill := bill_of(call)) is not None:
                    learn([bill])
        except OSError:
            continue  # the experiment's own resume says what is wrong with it
        if run.directory in unfinished:
            spent[run.directory] = cost
    return spent
