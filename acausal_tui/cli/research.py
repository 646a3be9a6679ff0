"""The research subcommands: `sweep` (conditions x seeds, run concurrently), resuming a
sweep, `export` (CSV) and `audit`."""

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

import anyio

from acausal_tui.cli import common
from acausal_tui.cli.common import (
    EXIT_BY_STATUS,
    EXIT_OK,
    UsageError,
    abort_on_signals,
    overrides_from,
    say,
)
from engine.audit import audit_experiment
from engine.conditions import set_switches
from engine.errors import ExportError
from engine.events import ErrorLogged, RoundSummarised
from engine.export import export_csv
from engine.providers.base import Provider
from engine.providers.factory import api_key_for
from engine.records import check_budget
from engine.shard import merge_shards, parse_shard
from engine.stats import Interval
from engine.store import check_results_dir
from engine.sweep import (
    SWEEP_FILE,
    ExperimentDone,
    ExperimentEvent,
    SweepControl,
    SweepEvent,
    SweepFinished,
    SweepObserver,
    SweepPlan,
    SweepResult,
    SweepResume,
    SweepStarted,
    convergence_text,
    guessed_line,
    make_providers,
    plan_resume,
    plan_sweep,
    resume_sweep,
    run_sweep,
    unclean_line,
)
from engine.textsafe import visible


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def interval_text(interval: Interval, difference: bool = False) -> str:
    """'61.2% [95% CI 55.0, 67.1] (n=12)'; a difference in percentage points with a sign;
    the interval's note (too few seeds for one, or wide by nature) beside n."""
    if interval.mean is None:
        return "n/a (no valid completed experiment)"
    text = f"{100 * interval.mean:+.1f} points" if difference else f"{100 * interval.mean:.1f}%"
    note = f"n={interval.n}" + (f", {interval.note}" if interval.note else "")
    if interval.low is None or interval.high is None:
        return f"{text} (no interval: {note})"
    return f"{text} [95% CI {100 * interval.low:.1f}, {100 * interval.high:.1f}] ({note})"


def summary_lines(r: SweepResult) -> list[str]:
    """The sweep's findings, for the end of the headless output."""
    lines = []
    for stats in r.summary:
        lines.append(
            f"{stats.condition}: overall cooperation "
            f"{interval_text(stats.metrics['overall_cooperation_rate'])}; "
            f"strategies {convergence_text(stats.convergence)}"
        )
    for diff in r.differences:
        lines.append(
            f"{diff.condition} - {diff.reference}: overall cooperation "
            f"{interval_text(diff.metrics['overall_cooperation_rate'], difference=True)}, paired by seed"
        )
    for run in r.excluded:
        lines.append(
            f"left out of the intervals, INVALID: [{run.condition} s{run.seed}] {run.directory}: "
            f"{'; '.join(run.reasons) or 'no reason recorded'}"
        )
    if r.validity_not_recorded:
        lines.append(
            f"counted without a validity record (made by an older version): "
            f"{len(r.validity_not_recorded)} experiment(s), listed in {SWEEP_FILE}"
        )
    if (guessed := guessed_line(r)) is not None:
        lines.append(guessed)
    if (unclean := unclean_line(r)) is not None:
        lines.append(unclean)
    if r.intervals is not None:
        lines.append(f"intervals: {r.intervals.method}")
    return lines


class SweepPrinter:
    """Observer: progress lines on stderr, each tagged with its experiment's condition and
    seed, and every line of a simulated sweep with SIMULATED."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr  # looked up now: tests swap sys.stderr
        self.simulated = False

    def on_event(self, event: SweepEvent) -> None:
        if isinstance(event, SweepStarted):
            r = event.result
            self.simulated = r.simulated
            done = sum(run.status == "completed" for run in r.experiments)
            grid = f"{len(r.conditions)} conditions x {len(r.seeds)} seeds"
            cells = len(r.conditions) * len(r.seeds)
            size = f"{grid} = {cells} experiments"
            if r.shard is not None:
                size = f"shard {r.shard}: {len(r.experiments)} of {cells} experiments ({grid})"
            self.print(
                f"{r.sweep_id}: {size} ({', '.join(r.conditions)}; seeds "
                f"{r.seeds[0]}..{r.seeds[-1]}), provider {r.config.provider.name}"
                + (
                    f"; every condition with {shared}"
                    if (shared := set_switches(r.config.switches, r.resolved_conditions.values()))
                    else ""
                )
                + (f"; resumed, {done} already completed" if r.resumed else "")
            )
        elif isinstance(event, ExperimentEvent):
            tag = f"[{event.run.condition} s{event.run.seed}]"
            inner = event.event
            if isinstance(inner, RoundSummarised):
                s = inner.summary
                self.print(f"{tag} round {s.round}/{inner.total_rounds}  cooperation {percent(s.cooperation_rate)}")
            elif isinstance(inner, ErrorLogged) and inner.record.type in ("fatal", "internal"):
                self.print(f"{tag} error: {inner.record.message}")
        elif isinstance(event, ExperimentDone):
            run = event.run
            cooperation = percent(run.metrics.get("overall_cooperation_rate"))
            invalid = f" INVALID: {'; '.join(run.invalid_reasons)}" if run.valid is False else ""
            self.print(
                f"[{run.condition} s{run.seed}] {run.status}: {run.rounds} rounds, cooperation "
                f"{cooperation}{invalid} ({event.finished}/{event.total} experiments finished)"
                + (f" - {run.message}" if run.message else "")
            )
        elif isinstance(event, SweepFinished):
            r = event.result
            self.simulated = r.simulated  # also when the sweep's start was never seen (sweep-merge)
            for line in summary_lines(r):
                self.print(line)
            self.print(f"{r.status}: {event.directory / 'sweep.json'}" + (f" - {r.message}" if r.message else ""))

    def print(self, line: str) -> None:
        say(visible(("SIMULATED " if self.simulated else "") + line, one_line=True), self.stream)


async def run_sweep_headless(plan: SweepPlan) -> tuple[int, Path]:
    providers = make_providers([config for _, config in plan.runs()])  # a missing key: exit 2
    control = SweepControl()
    async with anyio.create_task_group() as tg:
        tg.start_soon(abort_on_signals, control, tg.cancel_scope)
        result, directory = await run_sweep(plan, providers, observer=SweepPrinter(), control=control)
        tg.cancel_scope.cancel()
    return EXIT_BY_STATUS[result.status], directory


def sweep_command(args: argparse.Namespace) -> int:
    if args.condition is not None:
        raise UsageError("--condition: a sweep takes --conditions A,B,...")
    plan = plan_sweep(args.config, overrides_from(args), args.conditions, args.seeds)
    if args.shard is not None:
        plan.shard = parse_shard(args.shard, len(plan.runs()))
    check_budget([config for _, config in plan.runs()])
    check_results_dir(Path(plan.base.results_dir))
    return common.app_or_headless(args.headless, lambda: sweep_app(plan), lambda: run_sweep_headless(plan))


async def resume_sweep_headless(plan: SweepResume, providers: list[Provider]) -> int:
    control = SweepControl()
    async with anyio.create_task_group() as tg:
        tg.start_soon(abort_on_signals, control, tg.cancel_scope)
        result = await resume_sweep(plan, providers, observer=SweepPrinter(), control=control)
        tg.cancel_scope.cancel()
    return EXIT_BY_STATUS[result.status]


def resume_sweep_command(directory: Path, headless: bool, max_cost_usd: float | None) -> int:
    """`acausal-tui resume SWEEP_DIR`: finish every unfinished experiment of the sweep (resume
    the interrupted, start the never-started) and rewrite sweep.json. Refusals exit 2 first."""
    if not headless:
        common.check_terminal()
    plan = plan_resume(directory, max_cost_usd)
    for _, config, _ in plan.todo:
        api_key_for(config)  # refuse before anything is touched
    if not plan.todo:
        print(f"acausal-tui: every experiment of {directory.name} is complete; sweep.json rewritten", file=sys.stderr)
    if headless:
        providers = make_providers([config for _, config, _ in plan.todo])
        code = anyio.run(resume_sweep_headless, plan, providers)
    else:
        code = resume_sweep_app(plan)
    say(str(directory), sys.stdout)
    return code


def resume_sweep_app(plan: SweepResume) -> int:
    from acausal_tui.app import AcausalApp

    providers = make_providers([config for _, config, _ in plan.todo])

    async def run(observer: SweepObserver, control: SweepControl) -> SweepResult:
        return await resume_sweep(plan, providers, observer=observer, control=control)

    app = AcausalApp(sweep=run, results_dir=plan.directory.parent)
    app.run()
    return EXIT_BY_STATUS.get(app.status or "", EXIT_OK)


def sweep_app(plan: SweepPlan) -> int:
    """The TUI on the sweep screen, the sweep started at once; exit code and printed directory
    as headless. The providers are made first, so a missing API key exits 2 before the app opens."""
    from acausal_tui.app import AcausalApp, sweep_runner

    warned: set[str] = set()

    def unknown_price(model: str) -> None:  # every experiment's provider would say it again
        if model not in warned:
            warned.add(model)
            app.warn(f"no price known for model {model!r}: its cost counts as 0 (set provider.prices)")

    providers = make_providers([config for _, config in plan.runs()], on_unknown_price=unknown_price)
    app = AcausalApp(sweep=sweep_runner(plan, providers), results_dir=Path(plan.base.results_dir))
    app.run()
    if app.directory is not None:
        print(app.directory)
    return EXIT_BY_STATUS.get(app.status or "", EXIT_OK)


def merge_command(args: argparse.Namespace) -> int:
    """Exit 0 when every experiment of the merged sweep completed, else as a sweep would."""
    result, directory = merge_shards(
        [Path(d) for d in args.directories], Path(args.results_dir) if args.results_dir else None
    )
    SweepPrinter().on_event(SweepFinished(result, directory))
    print(directory)
    return EXIT_BY_STATUS[result.status]


def export_command(args: argparse.Namespace) -> int:
    """Exit 0, or 1 when some file could not be read (the rest is still written)."""
    directory = Path(args.directory)
    out = Path(args.out) if args.out else directory / "export"
    try:
        _, warnings = export_csv(directory, out)
    except OSError as exc:
        raise ExportError(f"--out: cannot write {out}: {exc.strerror}") from None
    for warning in warnings:
        print(f"acausal-tui: warning: skipped {warning}", file=sys.stderr)
    print(out)
    return 1 if warnings else 0


def audit_command(directory: Path) -> int:
    """Print the audit of one experiment; exit 1 when a recorded move disagrees with the
    current rules or evidence is missing (the audit is incomplete), 2 (AuditError) when the
    directory is not an experiment."""
    audit = audit_experiment(directory)
    try:
        for line in audit.lines():
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:  # `audit … | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return audit.exit_code
