"""Command line: parse flags into config overrides, then run headless or open the app."""

import argparse
import importlib.metadata
import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from engine.config import DEFAULT_MAIN_MODEL, DEFAULT_SUB_MODEL, Config, ConfigError, load_config
from engine.control import RunControl
from engine.events import ErrorLogged, Event, RoundSummarised, RunFinished, RunStarted
from engine.lock import LockError
from engine.models import ExperimentResult
from engine.providers.factory import api_key_for, make_provider
from engine.resume import (
    Resumable,
    ResumeError,
    Runner,
    allow_insecure_config,
    open_resume,
    read_manifest,
    resume_runner,
)
from engine.runner import run_experiment, utc_now, with_seed
from engine.store import ExperimentStore, check_results_dir, new_experiment_dir
from engine.textsafe import visible
from engine.validity import validity_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUDGET, EXIT_INVALID, EXIT_ABORTED = 0, 1, 2, 3, 4, 130
EXIT_BY_STATUS = {"completed": EXIT_OK, "failed": EXIT_FAILED, "budget_exceeded": EXIT_BUDGET,
                  "aborted": EXIT_ABORTED}


def exit_code(result: ExperimentResult) -> int:
    """SPEC §3: a completed run that the validity thresholds reject exits 4."""
    if result.status == "completed" and result.validity is not None and not result.validity.valid:
        return EXIT_INVALID
    return EXIT_BY_STATUS[result.status]


COMMANDS = ("run", "browse", "resume", "sweep", "sweep-merge", "export", "audit")


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2, no usage dump
        raise UsageError(message)


def positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file; flags win over it")
    parser.add_argument("--agents", type=positive_int, metavar="N", help="number of agents (default 10)")
    parser.add_argument("--rounds", type=positive_int, metavar="R", help="number of rounds (default 10)")
    parser.add_argument("--seed", type=positive_int, metavar="S",
                        help="experiment seed (default: drawn at start, recorded in the manifest)")
    parser.add_argument("--provider", metavar="NAME",
                        help="simulated | openrouter | openai (default: openrouter if "
                             "OPENROUTER_API_KEY is set, else simulated)")
    parser.add_argument("--base-url", metavar="URL",
                        help="OpenAI-compatible endpoint (default: the provider's)")
    parser.add_argument("--allow-insecure", action="store_true", default=None,
                        help="allow sending the API key over plain http:// to a remote host")
    parser.add_argument("--main-model", metavar="ID",
                        help=f"model that writes strategies (default {DEFAULT_MAIN_MODEL})")
    parser.add_argument("--sub-model", metavar="ID",
                        help=f"model that decides moves (default {DEFAULT_SUB_MODEL})")
    parser.add_argument("--rpm", type=positive_int, metavar="N",
                        help="requests per minute, all calls together (default: no cap)")
    parser.add_argument("--max-concurrency", type=positive_int, metavar="N",
                        help="calls in flight at once (default 16)")
    parser.add_argument("--max-cost", type=number, metavar="USD",
                        help="cost budget in USD (default 10); a call is sent only while spent + "
                             "in-flight worst case + its worst case stays within it")
    parser.add_argument("--condition", metavar="NAME",
                        help="named condition, e.g. identity (the default) or baseline")
    parser.add_argument("--results-dir", metavar="DIR", help="where results go (default results)")
    parser.add_argument("--headless", action="store_true",
                        help="no UI: progress on stderr, the result directory on stdout")


def build_parser() -> Parser:
    parser = Parser(prog="acausal-tui", description="Run and browse acausal cooperation experiments. "
                    "With no command: run (a new experiment in the TUI).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_run_options(sub.add_parser("run", help="start a new experiment (the default)"))
    browse = sub.add_parser("browse", help="open the experiment browser")
    browse.add_argument("--results-dir", metavar="DIR", default="results",
                        help="the results directory (default results)")
    resume = sub.add_parser("resume", help="continue an interrupted experiment, or finish a sweep")
    resume.add_argument("directory", metavar="EXP_DIR|SWEEP_DIR",
                        help="the experiment's or the sweep's directory")
    resume.add_argument("--headless", action="store_true",
                        help="no UI: progress on stderr, the result directory on stdout")
    resume.add_argument("--max-cost", type=number, metavar="USD",
                        help="a new cost budget (the budget counts what was already spent)")
    resume.add_argument("--allow-insecure", action="store_true",
                        help="allow sending the API key over plain http:// to a remote host")
    audit = sub.add_parser("audit", help="re-read an experiment's decision replies with the current parsing rules")
    audit.add_argument("directory", metavar="EXP_DIR")
    from acausal_tui import research  # imports this module: import it late

    research.add_commands(sub)
    return parser


def package_version() -> str:
    try:
        return importlib.metadata.version("acausal-tui")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags that were given; they win over the config file."""
    mapping = {
        "agents": ("agents",), "rounds": ("rounds",), "seed": ("seed",),
        "condition": ("condition",), "results_dir": ("results_dir",),
        "provider": ("provider", "name"), "base_url": ("provider", "base_url"),
        "rpm": ("provider", "rpm"), "max_concurrency": ("provider", "max_concurrency"),
        "max_cost": ("provider", "max_cost_usd"), "main_model": ("models", "main"),
        "sub_model": ("models", "sub"), "allow_insecure": ("provider", "allow_insecure"),
    }
    out: dict[str, Any] = {}
    for attr, path in mapping.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return out


class HeadlessPrinter:
    """Observer: one progress line per round on stderr; outside text in a line (server
    errors, model ids, paths) is shown with its control characters visible, never obeyed."""

    def __init__(self, stream=None) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.durations: list[float] = []
        self.tag = ""  # "SIMULATED " before every line with a number from a simulated run

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            m = event.manifest
            self.tag = "SIMULATED " if m.simulated else ""
            tag = " (SIMULATED)" if m.simulated else ""
            self.print(f"{m.experiment_id}: {len(m.agents)} agents x {m.config.rounds} rounds, "
                       f"condition {m.condition.name}, provider {m.provider}{tag}, seed {m.seed}")
            for warning in m.warnings:
                self.print(f"warning: {warning}")
            if event.first_round > 1:
                self.print(f"resuming at round {event.first_round}")
        elif isinstance(event, RoundSummarised):
            s = event.summary
            total = event.total_rounds
            self.durations.append(s.duration_s)
            recent = self.durations[-3:]
            eta = sum(recent) / len(recent) * (total - s.round)
            fallbacks = f"  fallbacks {s.fallback_decisions}" if s.fallback_decisions else ""
            self.print(f"{self.tag}round {s.round}/{total}  cooperation {rate(s.cooperation_rate)}{fallbacks}  "
                       f"avg score {s.average_score:.2f}  elapsed {time.monotonic() - self.started:.1f}s  "
                       f"ETA {eta:.1f}s")
        elif isinstance(event, ErrorLogged) and event.record.type in ("fatal", "internal"):
            self.print(f"error: {event.record.message}")
        elif isinstance(event, RunFinished):
            r = event.result
            line = f"{self.tag}{r.status}: {r.total_rounds} rounds, {r.total_games} games, {r.total_api_calls} calls"
            if r.message:
                line += f" - {r.message}"
            self.print(line)
            indicators = r.acausal_indicators
            self.print(f"{'SIMULATED ' if r.simulated else ''}cooperation {rate(indicators.overall_cooperation_rate)} "
                       f"of the moves models decided; fallback_rate {rate(indicators.fallback_rate)}")
            self.print(validity_line(r.validity, r.simulated))

    def print(self, line: str) -> None:
        print(visible(line, one_line=True), file=self.stream or sys.stderr, flush=True)


def rate(fraction: float | None) -> str:
    """A share as a percentage; "n/a" when there was nothing to count (never 0)."""
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def prepare_run(args: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    """Everything that can fail on bad input, before anything is written."""
    config = with_seed(load_config(args.config, overrides_from(args), env))
    check_results_dir(Path(config.results_dir))
    return config


async def run_headless(config: Config, env: dict[str, str] | None = None) -> tuple[int, Path]:
    provider = make_provider(config, env)
    control = RunControl()
    store = ExperimentStore(new_experiment_dir(Path(config.results_dir), utc_now()))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(abort_on_signals, control, tg.cancel_scope)
            result = await run_experiment(config, provider=provider, observer=HeadlessPrinter(),
                                          control=control, store=store)
            tg.cancel_scope.cancel()
    finally:
        await provider.aclose()
    return exit_code(result), store.directory


async def resume_headless(run: Runner) -> int:
    control = RunControl()
    async with anyio.create_task_group() as tg:
        tg.start_soon(abort_on_signals, control, tg.cancel_scope)
        result = await run(HeadlessPrinter(), control)
        tg.cancel_scope.cancel()
    return exit_code(result)


def resume(args: argparse.Namespace) -> int:
    """Refusals (not resumable, locked, unwritable, no API key) exit 2 before any call."""
    from engine.sweep import is_sweep

    if is_sweep(Path(args.directory)):
        from acausal_tui import research

        return research.resume_sweep_command(Path(args.directory), args.headless, args.max_cost)
    config = read_manifest(Path(args.directory)).config
    if args.allow_insecure:
        config = allow_insecure_config(config)
    api_key_for(config)  # refuse before anything is touched
    if not args.headless:
        check_terminal()
    resumable = open_resume(Path(args.directory), args.max_cost, allow_insecure=args.allow_insecure)
    directory = resumable.store.directory
    try:
        for note in resumable.notes:
            print(visible(f"acausal-tui: {note}", one_line=True), file=sys.stderr)
        if args.headless:
            provider = make_provider(resumable.config)
            code = anyio.run(resume_headless, resume_runner(resumable, provider))
        else:
            code = resume_app(resumable)
    finally:
        resumable.store.close()
    if is_sweep(directory.parent):  # its sweep.json still holds the state before this resume
        print(f"acausal-tui: this experiment belongs to a sweep: `acausal-tui resume {directory.parent}` "
              "finishes the sweep and updates its sweep.json", file=sys.stderr)
    print(directory)
    return code


def resume_app(resumable: Resumable) -> int:
    """The TUI on the run screen, continuing the experiment at once."""
    from acausal_tui.app import AcausalApp

    provider = make_provider(resumable.config, on_unknown_price=lambda model: app.warn(
        f"no price known for model {model!r}: its cost counts as 0 (set provider.prices)"))
    app = AcausalApp(run=resume_runner(resumable, provider),
                     results_dir=resumable.store.directory.parent)
    app.run()
    return app_exit_code(app)


def app_exit_code(app: Any) -> int:
    """The TUI's exit code, as headless: from the run's result when it has one."""
    live = app.live_screen
    result = getattr(getattr(live, "view", None), "result", None)
    if isinstance(result, ExperimentResult):
        return exit_code(result)
    return EXIT_BY_STATUS.get(app.status or "", EXIT_OK)


async def abort_on_signals(control: RunControl, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: abort cleanly (partial results saved). Second: exit at once;
    every file on disk is still valid because each is replaced atomically."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if control.aborted:
                os._exit(EXIT_ABORTED)
            print(f"\n{signal.Signals(signum).name}: aborting, saving partial results "
                  "(press Ctrl+C again to exit at once)", file=sys.stderr, flush=True)
            control.abort(f"aborted by {signal.Signals(signum).name}")


def run_app(config: Config) -> int:
    """The TUI on the run screen, the experiment started at once; exit codes as headless.
    The provider is made first, so a missing API key exits 2 before the app opens."""
    from acausal_tui.app import AcausalApp, experiment_runner

    provider = make_provider(config, on_unknown_price=lambda model: app.warn(
        f"no price known for model {model!r}: its cost counts as 0 (set provider.prices)"))
    app = AcausalApp(run=experiment_runner(config, provider), results_dir=Path(config.results_dir))
    app.run()
    if app.directory is not None:
        print(app.directory)
    return app_exit_code(app)


def browse_app(results_dir: Path) -> int:
    from acausal_tui.app import AcausalApp

    results_dir = Path(os.path.expanduser(results_dir))
    if not results_dir.is_dir():
        raise UsageError(f"--results-dir: {results_dir} is not a directory (no experiments there)")
    app = AcausalApp(results_dir=results_dir)
    app.run()
    return EXIT_ABORTED if app.signalled else EXIT_OK


def check_terminal() -> None:
    """The TUI needs a terminal on stdin and stdout; without one, say so before anything starts."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the TUI needs a terminal (stdin and stdout are not one); "
                         "use --headless for a run without it")


def main(argv: Sequence[str] | None = None) -> int:
    code = EXIT_FAILED
    try:
        code = dispatch(argv)
    except* OSError as group:  # e.g. the disk filled up while the final files were written
        print(visible(f"acausal-tui: error: cannot write the results: {leaves(group)[0]}", one_line=True),
              file=sys.stderr)
    return code


def dispatch(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "run")
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            config = prepare_run(args)
            if not args.headless:
                check_terminal()
                return run_app(config)
            code, directory = anyio.run(run_headless, config)
            print(directory)
            return code
        if args.command == "browse":
            check_terminal()
            return browse_app(Path(args.results_dir))
        if args.command == "resume":
            return resume(args)
        if args.command == "audit":
            return audit_command(Path(args.directory))
        if args.command in ("sweep", "sweep-merge", "export"):
            from acausal_tui import research

            command = {"sweep": research.sweep_command, "sweep-merge": research.merge_command,
                       "export": research.export_command}[args.command]
            return command(args)
        raise UsageError(f"{args.command}: not available yet")
    except (UsageError, ConfigError, ResumeError, LockError) as exc:
        print(visible(f"acausal-tui: error: {exc}", one_line=True), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a Ctrl+C outside the run's own handling (before or after it)
        return EXIT_ABORTED


def audit_command(directory: Path) -> int:
    """Print the audit of one experiment; exit 1 when a recorded move disagrees with the
    current rules, 2 when the directory is not an experiment."""
    from engine.audit import AuditError, audit_experiment

    try:
        audit = audit_experiment(directory)
    except AuditError as exc:
        raise UsageError(str(exc)) from exc
    try:
        for line in audit.lines():
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:  # `audit … | head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return audit.exit_code


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [e for sub in group.exceptions
            for e in (leaves(sub) if isinstance(sub, BaseExceptionGroup) else [sub])]
