"""The user-facing failures: one base, `AcausalError`, whose subclasses carry their exit code.

Each is reported as one line (`acausal-tui: error: <message>`), never a traceback; the
command line turns any of them into its `exit_code` in one place (`acausal_tui.cli`).
The gateway's own exceptions (engine/calls.py) end a run with a status instead.
"""

# Exit codes (SPEC §3).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # bad usage or configuration: nothing written
EXIT_BUDGET = 3
EXIT_INVALID = 4  # completed, but the validity thresholds reject it
EXIT_ABORTED = 130


class AcausalError(Exception):
    """A failure the user can fix; the message is one line naming what and where."""

    exit_code = EXIT_USAGE


class UsageError(AcausalError):
    """Bad command-line usage (the flag parser's messages, a missing terminal, …)."""


class ConfigError(AcausalError):
    """Bad configuration: one line naming the field and the problem."""


class ResumeError(AcausalError):
    """The experiment cannot be resumed; the message says why (nothing was written)."""


class LockError(AcausalError):
    """Another live process is writing this experiment."""


class ExportError(AcausalError):
    """DIR is not something that can be exported: one line naming it and the problem."""


class AuditError(AcausalError):
    """The directory cannot be audited (one clear line)."""
