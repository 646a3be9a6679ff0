"""Running the CLI on input it must refuse: exit 2, one error line, nothing written, no hang."""

import contextlib
import io
import os
import signal
from collections.abc import Iterator

from acausal_tui.cli import main

PREFIX = "acausal-tui: error: "
HANG_GUARD_S = 10  # a hang guard, not a speed test: issue 10 found inputs that hung forever


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_GUARD_S) -> Iterator[None]:
    def fail(*_: object) -> None:
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def listing() -> dict[str, tuple[int, int]]:
    """What is in the current directory: name -> (size, modification time)."""
    return {
        entry.name: (entry.stat(follow_symlinks=False).st_size, entry.stat(follow_symlinks=False).st_mtime_ns)
        for entry in os.scandir()
    }


def refusal(argv: list[str]) -> str:
    """main(argv), run in the current directory, must exit 2 with one error line on stderr,
    nothing on stdout and nothing new or changed in the directory. Returns the line
    without its prefix."""
    before = listing()
    out, err = io.StringIO(), io.StringIO()
    with hang_guard(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    lines = err.getvalue().strip().splitlines()
    assert code == 2, (argv, err.getvalue())
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err.getvalue()
    assert out.getvalue() == "", argv
    assert listing() == before, argv
    return lines[0].removeprefix(PREFIX)
