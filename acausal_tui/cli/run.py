"""The `run`, `resume` and `browse` subcommands: a new or resumed experiment, headless
(progress lines on stderr) or in the app, and the browser."""

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from acausal_tui.cli import common
from acausal_tui.cli.common import (
    EXIT_ABORTED,
    EXIT_BY_STATUS,
    EXIT_OK,
    UsageError,
    abort_on_signals,
    exit_code,
    overrides_from,
    say,
)
from acausal_tui.screens.run_view import RoundClock, plural, validity_words
from engine.budget import dollars
from engine.config import Config, load_config
from engine.control import RunControl
from engine.events import ErrorLogged, Event, RoundSummarised, RunFinished, RunStarted
from engine.models import ExperimentResult, RoundSummary
from engine.providers.base import Provider
from engine.providers.factory import api_key_for, make_provider
from engine.records import check_budget, unclean_note
from engine.resume import (
    Resumable,
    Runner,
    allow_insecure_config,
    open_resume,
    read_manifest,
    resume_runner,
)
from engine.runner import run_experiment, utc_now, with_seed
from engine.store import ExperimentStore, check_results_dir, new_experiment_dir
from engine.textsafe import visible
from engine.validity import guessed_note


class HeadlessPrinter:
    """Observer: one progress line per round on stderr; outside text in a line (server
    errors, model ids, paths) is shown with its control characters visible, never obeyed."""

    def __init__(self, stream=None, done: list[RoundSummary] | None = None) -> None:
        """`done`: a resumed run's summaries of the rounds before the resume (for the ETA)."""
        self.stream = stream
        self.started = time.monotonic()
        self.clock = RoundClock()
        self.clock.before(done or [])
        self.tag = ""  # "SIMULATED " before every line with a number from a simulated run

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            m = event.manifest
            self.tag = "SIMULATED " if m.simulated else ""
            tag = " (SIMULATED)" if m.simulated else ""
            self.print(
                f"{m.experiment_id}: {len(m.agents)} agents x {m.config.rounds} rounds, "
                f"condition {m.condition.name}, provider {m.provider}{tag}, seed {m.seed}"
            )
            for warning in m.warnings:
                self.print(f"warning: {warning}")
            self.clock.started(event.first_round)
            if event.first_round > 1:
                self.print(f"resuming at round {event.first_round}")
        elif isinstance(event, RoundSummarised):
            s = event.summary
            total = event.total_rounds
            self.clock.ended(s)
            eta = self.clock.eta(total - s.round)
            fallbacks = f"  fallbacks {s.fallback_decisions}" if s.fallback_decisions else ""
            self.print(
                f"{self.tag}round {s.round}/{total}  cooperation {rate(s.cooperation_rate)}{fallbacks}  "
                f"avg score {s.average_score:.2f}  elapsed {time.monotonic() - self.started:.1f}s  "
                f"ETA {'n/a' if eta is None else f'{eta:.1f}s'}"
            )
        elif isinstance(event, ErrorLogged) and event.record.type in ("fatal", "internal"):
            self.print(f"error: {event.record.message}")
        elif isinstance(event, RunFinished):
            r = event.result
            estimate = " (estimate)" if r.cost_is_estimate else ""
            line = (
                f"{self.tag}{r.status}: {plural(r.total_rounds, 'round')}, {plural(r.total_games, 'game')}, "
                f"{plural(r.total_api_calls, 'call')}, cost {dollars(r.total_cost)}{estimate}"
            )
            if r.message:
                line += f" - {r.message}"
            self.print(line)
            if (unclean := unclean_note(r.unclean_stops)) is not None:
                self.print(f"{self.tag}{unclean}")
            indicators = r.acausal_indicators
            self.print(
                f"{'SIMULATED ' if r.simulated else ''}cooperation {rate(indicators.overall_cooperation_rate)} "
                f"of the moves decided (by a model or a scripted rule; fallbacks left out); fallback_rate {rate(indicators.fallback_rate)}"
            )
            self.print(validity_words(r.validity, r.simulated))
            if (note := guessed_note(r.validity)) is not None:
                self.print(f"{self.tag}{note}")

    def print(self, line: str) -> None:
        say(visible(line, one_line=True), self.stream)


def rate(fraction: float | None) -> str:
    """A share as a percentage; "n/a" when there was nothing to count (never 0)."""
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def prepare_run(args: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    """Everything that can fail on bad input, before anything is written."""
    config = with_seed(load_config(args.config, overrides_from(args), env))
    check_budget([config])
    check_results_dir(Path(config.results_dir))
    return config


async def run_headless(config: Config, env: dict[str, str] | None = None) -> tuple[int, Path]:
    provider = make_provider(config, env)
    control = RunControl()
    store = ExperimentStore(new_experiment_dir(Path(config.results_dir), utc_now()))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(abort_on_signals, control, tg.cancel_scope)
            result = await run_experiment(
                config, provider=provider, observer=HeadlessPrinter(), control=control, store=store
            )
            tg.cancel_scope.cancel()
    finally:
        await provider.aclose()
    return exit_code(result), store.directory


async def resume_headless(run: Runner, done: list[RoundSummary] | None = None) -> int:
    control = RunControl()
    async with anyio.create_task_group() as tg:
        tg.start_soon(abort_on_signals, control, tg.cancel_scope)
        result = await run(HeadlessPrinter(done=done), control)
        tg.cancel_scope.cancel()
    return exit_code(result)


def resume(args: argparse.Namespace) -> int:
    """Refusals (not resumable, locked, unwritable, no API key) exit 2 before any call."""
    from engine.sweep import is_sweep

    if is_sweep(Path(args.directory)):
        from acausal_tui.cli import research

        return research.resume_sweep_command(Path(args.directory), args.headless, args.max_cost)
    config = read_manifest(Path(args.directory)).config
    if args.allow_insecure:
        config = allow_insecure_config(config)
    api_key_for(config)  # refuse before anything is touched
    if not args.headless:
        common.check_terminal()
    resumable = open_resume(Path(args.directory), args.max_cost, allow_insecure=args.allow_insecure)
    directory = resumable.store.directory
    try:
        for note in resumable.notes:
            print(visible(f"acausal-tui: {note}", one_line=True), file=sys.stderr)
        if args.headless:
            provider = make_provider(resumable.config)
            done = [saved.summary for saved in resumable.rounds]
            code = anyio.run(resume_headless, resume_runner(resumable, provider), done)
        else:
            code = resume_app(resumable)
    finally:
        resumable.store.close()
    if is_sweep(directory.parent):  # its sweep.json still holds the state before this resume
        print(
            f"acausal-tui: this experiment belongs to a sweep: `acausal-tui resume {directory.parent}` "
            "finishes the sweep and updates its sweep.json",
            file=sys.stderr,
        )
    print(directory)
    return code


def resume_app(resumable: Resumable) -> int:
    """The TUI on the run screen, continuing the experiment at once (`resume` prints the
    directory)."""
    from acausal_tui.app import AcausalApp

    provider = app_provider(resumable.config, lambda: app)
    app = AcausalApp(run=resume_runner(resumable, provider), results_dir=resumable.store.directory.parent)
    app.run()
    return app_exit_code(app)


def app_provider(config: Config, app: Callable[[], Any]) -> Provider:
    """The provider of a run shown in `app()`: a model with no known price is a warning there."""
    return make_provider(
        config,
        on_unknown_price=lambda model: app().warn(
            f"no price known for model {model!r}: its cost counts as 0 (set provider.prices)"
        ),
    )


def app_exit_code(app: Any) -> int:
    """The TUI's exit code, as headless: from the latest run's result when it has one; 130
    when a signal closed the app."""
    live = app.live_screen
    result = getattr(getattr(live, "view", None), "result", None)
    if isinstance(result, ExperimentResult):
        return exit_code(result)
    if app.signalled and app.status is None:
        return EXIT_ABORTED
    return EXIT_BY_STATUS.get(app.status or "", EXIT_OK)


def close_app(app: Any) -> int:
    """After the app closed (opened on a run, or the browser): the directory of the latest
    run it started on stdout, and the exit code of that run."""
    if app.directory is not None:
        print(app.directory)
    return app_exit_code(app)


def run_app(config: Config) -> int:
    """The TUI on the run screen, the experiment started at once; exit codes as headless.
    The provider is made first, so a missing API key exits 2 before the app opens."""
    from acausal_tui.app import AcausalApp, experiment_runner

    provider = app_provider(config, lambda: app)
    app = AcausalApp(run=experiment_runner(config, provider), results_dir=Path(config.results_dir))
    app.run()
    return close_app(app)


def browse_app(results_dir: Path) -> int:
    from acausal_tui.app import AcausalApp

    results_dir = Path(os.path.expanduser(results_dir))
    if not results_dir.is_dir():
        raise UsageError(f"--results-dir: {results_dir} is not a directory (no experiments there)")
    app = AcausalApp(results_dir=results_dir)
    app.run()
    return close_app(app)
