"""What every subcommand shares: the flag parser (also the new-experiment form's checker),
exit codes from results, signals that abort a run, and the terminal check (app or headless)."""

import argparse
import importlib.metadata
import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from engine.config import DEFAULT_MAIN_MODEL, DEFAULT_SUB_MODEL
from engine.control import RunControl
from engine.errors import (
    EXIT_ABORTED,
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    UsageError,
)
from engine.models import ExperimentResult
from engine.sweep import DEFAULT_SEEDS, MAX_SEEDS

EXIT_BY_STATUS = {"completed": EXIT_OK, "failed": EXIT_FAILED, "budget_exceeded": EXIT_BUDGET, "aborted": EXIT_ABORTED}


def exit_code(result: ExperimentResult) -> int:
    """SPEC §3: a completed run that the validity thresholds reject exits 4."""
    if result.status == "completed" and result.validity is not None and not result.validity.valid:
        return EXIT_INVALID
    return EXIT_BY_STATUS[result.status]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2, no usage dump
        raise UsageError(message)


def integer(text: str) -> int:
    """A whole number, any sign: the config's checks say which are allowed (one line)."""
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
    parser.add_argument("--agents", type=integer, metavar="N", help="number of agents (default 10)")
    parser.add_argument("--rounds", type=integer, metavar="R", help="number of rounds (default 10)")
    parser.add_argument(
        "--seed",
        type=integer,
        metavar="S",
        help="experiment seed (default: drawn at start, recorded in the manifest)",
    )
    parser.add_argument(
        "--provider",
        metavar="NAME",
        help="simulated | openrouter | openai (default: openrouter if OPENROUTER_API_KEY is set, else simulated)",
    )
    parser.add_argument("--base-url", metavar="URL", help="OpenAI-compatible endpoint (default: the provider's)")
    parser.add_argument(
        "--allow-insecure",
        action="store_true",
        default=None,
        help="allow sending the API key over plain http:// to a remote host",
    )
    parser.add_argument(
        "--main-model", metavar="ID", help=f"model that writes strategies (default {DEFAULT_MAIN_MODEL})"
    )
    parser.add_argument("--sub-model", metavar="ID", help=f"model that decides moves (default {DEFAULT_SUB_MODEL})")
    parser.add_argument(
        "--rpm", type=integer, metavar="N", help="requests per minute, all calls together (default: no cap)"
    )
    parser.add_argument("--max-concurrency", type=integer, metavar="N", help="calls in flight at once (default 16)")
    parser.add_argument(
        "--max-cost",
        type=number,
        metavar="USD",
        help="cost budget in USD (default 10); a call is sent only while spent + "
        "in-flight worst case + its worst case stays within it",
    )
    parser.add_argument(
        "--latency",
        type=number,
        metavar="MS",
        help="simulated provider only: milliseconds each call takes (default 0), to watch a run at a human pace",
    )
    parser.add_argument("--condition", metavar="NAME", help="named condition, e.g. identity (the default) or baseline")
    parser.add_argument("--results-dir", metavar="DIR", help="where results go (default results)")
    parser.add_argument(
        "--headless", action="store_true", help="no UI: progress on stderr, the result directory on stdout"
    )


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags that were given; they win over the config file."""
    mapping = {
        "agents": ("agents",),
        "rounds": ("rounds",),
        "seed": ("seed",),
        "condition": ("condition",),
        "results_dir": ("results_dir",),
        "provider": ("provider", "name"),
        "base_url": ("provider", "base_url"),
        "rpm": ("provider", "rpm"),
        "max_concurrency": ("provider", "max_concurrency"),
        "max_cost": ("provider", "max_cost_usd"),
        "latency": ("provider", "latency_ms"),
        "main_model": ("models", "main"),
        "sub_model": ("models", "sub"),
        "allow_insecure": ("provider", "allow_insecure"),
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


# SIGHUP too: a headless run over SSH gets it when the connection drops, and must then save
# and count what it sent, as for SIGTERM (it would otherwise die unsaved).
ABORTING_SIGNALS = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


async def abort_on_signals(control: RunControl, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM/SIGHUP: abort cleanly (partial results saved). Second: exit at
    once; every file on disk is still valid because each is replaced atomically. Cancelled
    as the run (or sweep) ends, its results saved: from then until the process exits these
    signals are ignored, so a late one cannot turn a finished run's exit code into a killed one's."""
    try:
        with anyio.open_signal_receiver(*ABORTING_SIGNALS) as signals:
            async for signum in signals:
                if control.aborted:
                    os._exit(EXIT_ABORTED)
                control.abort(f"aborted by {signal.Signals(signum).name}")  # first: the terminal may be gone
                say(
                    f"\n{signal.Signals(signum).name}: aborting, saving partial results "
                    "(press Ctrl+C again to exit at once)"
                )
    finally:
        for signum in ABORTING_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def say(line: str, stream: Any = None) -> None:
    """A progress line on stderr (or `stream`); nothing when it cannot be written: after a
    hang-up (a dropped SSH connection) stderr is a dead terminal, and the run must still
    save and count what it sent rather than fail on its report."""
    try:
        print(line, file=stream or sys.stderr, flush=True)
    except OSError:
        pass


def check_terminal() -> None:
    """The TUI needs a terminal on stdin and stdout; without one, say so before anything starts."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the TUI needs a terminal (stdin and stdout are not one); use --headless for a run without it")


def app_or_headless(
    headless: bool, app: Callable[[], int], headless_run: Callable[[], Awaitable[tuple[int, Path]]]
) -> int:
    """The TUI, once the terminal check has passed; or, with --headless, the run without it,
    then the directory it wrote printed. Either way, the command's exit code."""
    if not headless:
        check_terminal()
        return app()
    code, directory = anyio.run(headless_run)
    say(str(directory), sys.stdout)  # stdout too may be a terminal that hung up
    return code


COMMANDS = ("run", "browse", "resume", "sweep", "sweep-merge", "export", "audit")


def build_parser() -> Parser:
    parser = Parser(
        prog="acausal-tui",
        description="Run and browse acausal cooperation experiments. "
        "With no command: run (a new experiment in the TUI).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    add_run_options(sub.add_parser("run", help="start a new experiment (the default)"))
    browse = sub.add_parser("browse", help="open the experiment browser")
    browse.add_argument(
        "--results-dir", metavar="DIR", default="results", help="the results directory (default results)"
    )
    resume = sub.add_parser("resume", help="continue an interrupted experiment, or finish a sweep")
    resume.add_argument("directory", metavar="EXP_DIR|SWEEP_DIR", help="the experiment's or the sweep's directory")
    resume.add_argument(
        "--headless", action="store_true", help="no UI: progress on stderr, the result directory on stdout"
    )
    resume.add_argument(
        "--max-cost", type=number, metavar="USD", help="a new cost budget (the budget counts what was already spent)"
    )
    resume.add_argument(
        "--allow-insecure", action="store_true", help="allow sending the API key over plain http:// to a remote host"
    )
    audit = sub.add_parser("audit", help="re-read an experiment's decision replies with the current parsing rules")
    audit.add_argument("directory", metavar="EXP_DIR")
    add_research_commands(sub)
    return parser


def package_version() -> str:
    try:
        return importlib.metadata.version("acausal-tui")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def add_research_commands(sub: argparse._SubParsersAction) -> None:
    sweep = sub.add_parser("sweep", help="run every condition with K seeds, concurrently")
    add_run_options(sweep)
    sweep.add_argument(
        "--conditions",
        default="baseline,identity",
        metavar="A,B,...",
        help="conditions to compare, e.g. baseline,identity,identity+labels=shuffled",
    )
    sweep.add_argument(
        "--seeds",
        type=integer,
        default=DEFAULT_SEEDS,
        metavar="K",
        help=f"seeds per condition: S, S+1, ..., S+K-1 with S = --seed (at most {MAX_SEEDS})",
    )
    sweep.add_argument(
        "--shard", metavar="I/N", help="run only the I-th of N slices of the grid (merge them with sweep-merge)"
    )
    merge = sub.add_parser("sweep-merge", help="combine the finished shards of a sweep into one sweep")
    merge.add_argument("directories", nargs="+", metavar="DIR", help="the shards' sweep directories")
    merge.add_argument("--results-dir", metavar="DIR", help="where the merged sweep goes (default: beside the first)")
    export = sub.add_parser("export", help="write tidy CSV tables of an experiment or a sweep")
    export.add_argument("directory", metavar="DIR")
    export.add_argument("--format", choices=["csv"], default="csv")
    export.add_argument("--out", metavar="OUTDIR", help="default: DIR/export")
