"""The command line: parse the subcommand and its flags, dispatch it, and turn every
user-facing failure (`engine.errors.AcausalError`) into one line and its exit code."""

import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from acausal_tui.cli import common, research
from acausal_tui.cli.common import (
    EXIT_ABORTED,
    EXIT_FAILED,
    Parser,
    UsageError,
    add_run_options,
    check_terminal,
    number,
    overrides_from,
)
from acausal_tui.cli.run import (
    app_exit_code,
    browse_app,
    prepare_run,
    resume,
    run_app,
    run_headless,
)
from engine.errors import AcausalError
from engine.textsafe import visible

# What other modules and tests use from `acausal_tui.cli`.
__all__ = ["UsageError", "app_exit_code", "build_parser", "check_terminal", "main", "overrides_from",
           "run_headless"]

COMMANDS = ("run", "browse", "resume", "sweep", "export", "audit")


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
    research.add_commands(sub)
    return parser


def package_version() -> str:
    try:
        return importlib.metadata.version("acausal-tui")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
                common.check_terminal()
                return run_app(config)
            code, directory = anyio.run(run_headless, config)
            print(directory)
            return code
        if args.command == "browse":
            common.check_terminal()
            return browse_app(Path(args.results_dir))
        if args.command == "resume":
            return resume(args)
        if args.command == "audit":
            return research.audit_command(Path(args.directory))
        if args.command in ("sweep", "export"):
            return research.sweep_command(args) if args.command == "sweep" else research.export_command(args)
        raise UsageError(f"{args.command}: not available yet")
    except AcausalError as exc:  # every user-facing failure: one line, its exit code
        print(visible(f"acausal-tui: error: {exc}", one_line=True), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # a Ctrl+C outside the run's own handling (before or after it)
        return EXIT_ABORTED


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [e for sub in group.exceptions
            for e in (leaves(sub) if isinstance(sub, BaseExceptionGroup) else [sub])]
