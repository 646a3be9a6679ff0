"""The command line: parse the subcommand and its flags, dispatch it, and turn every
user-facing failure (`engine.errors.AcausalError`) into one line and its exit code."""

import sys
from collections.abc import Sequence
from pathlib import Path

from acausal_tui.cli import common, research
from acausal_tui.cli.common import (
    COMMANDS,
    EXIT_ABORTED,
    EXIT_FAILED,
    UsageError,
    build_parser,
    check_terminal,
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
__all__ = ["UsageError", "app_exit_code", "build_parser", "check_terminal", "main", "overrides_from", "run_headless"]


def main(argv: Sequence[str] | None = None) -> int:
    code = EXIT_FAILED
    try:
        code = dispatch(argv)
    except* OSError as group:  # e.g. the disk filled up while the final files were written
        print(
            visible(f"acausal-tui: error: cannot write the results: {leaves(group)[0]}", one_line=True), file=sys.stderr
        )
    return code


def dispatch(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "run")
    argv = glue_shard(argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "run":
            config = prepare_run(args)
            return common.app_or_headless(args.headless, lambda: run_app(config), lambda: run_headless(config))
        if args.command == "browse":
            common.check_terminal()
            return browse_app(Path(args.results_dir))
        if args.command == "resume":
            return resume(args)
        if args.command == "audit":
            return research.audit_command(Path(args.directory))
        if args.command in ("sweep", "sweep-merge", "export"):
            command = {
                "sweep": research.sweep_command,
                "sweep-merge": research.merge_command,
                "export": research.export_command,
            }[args.command]
            return command(args)
        raise UsageError(f"{args.command}: not available yet")
    except AcausalError as exc:  # every user-facing failure: one line, its exit code
        print(visible(f"acausal-tui: error: {exc}", one_line=True), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # a Ctrl+C outside the run's own handling (before or after it)
        return EXIT_ABORTED


def glue_shard(argv: list[str]) -> list[str]:
    """`--shard -1/3` as `--shard=-1/3`: argparse takes a value that starts with "-" and is
    not a plain number for an option, and would say only "expected one argument"; glued,
    the value gets the shard check's own message."""
    glued: list[str] = []
    for arg in argv:
        option = glued[-1] if glued else ""
        # argparse takes "--sha" for "--shard" too (nothing else starts so)
        if option.startswith("--sh") and "--shard".startswith(option) and arg[:2] in {f"-{d}" for d in "0123456789"}:
            glued[-1] = f"{option}={arg}"
        else:
            glued.append(arg)
    return glued


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [e for sub in group.exceptions for e in (leaves(sub) if isinstance(sub, BaseExceptionGroup) else [sub])]
