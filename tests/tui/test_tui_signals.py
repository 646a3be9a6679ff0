"""The TUI in a real terminal (a pty): SIGTERM, SIGHUP and SIGINT (`kill -INT`; Ctrl+C is a key
there) abort as headless does — exit 130,
partial results `aborted`, the lock released and the terminal restored; without a terminal
the app refuses with one line."""

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from engine.lock import LOCK_NAME
from tests.support.experiment_files import (
    assert_files_valid,
    final_result,
    only_experiment,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
LEAVE_ALT_SCREEN = b"\x1b[?1049l"
MOUSE_OFF = b"\x1b[?1000l"


def spawn_tui(*args: str) -> tuple[int, int]:
    """The CLI under a new 80x24 pty: (pid, the pty's master fd)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app, on the pty
        os.chdir(ROOT)
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execve(sys.executable, [sys.executable, "-m", "acausal_tui", *args], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    return pid, fd


def drain(fd: int, output: bytearray, until, timeout: float) -> bool:
    """Read what the app writes (it blocks when nobody reads) until `until()` or EOF."""
    deadline = time.monotonic() + timeout
    closed = False
    while time.monotonic() < deadline:
        if until():
            return True
        if closed:
            time.sleep(0.05)
            continue
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the pty
                chunk = b""
            closed = not chunk
            output += chunk
    return until()


def wait_exit(pid: int, fd: int, output: bytearray, timeout: float = 30.0) -> int:
    status: list[int] = []

    def exited() -> bool:
        if not status:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status.append(code)
        return bool(status)

    if not drain(fd, output, exited, timeout):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"the app did not exit; it wrote: {bytes(output[-2000:])!r}")
    drain(fd, output, lambda: False, 0.2)  # what is left in the pty
    os.close(fd)
    return os.waitstatus_to_exitcode(status[0])


def started_on_a_pty(
    tmp_path: Path, *args: str, saved: str = "rounds/summary_r1.json", **config: int
) -> tuple[int, int, Path, bytearray]:
    """The CLI (`args` before `--config`; the TUI by default) on a pty with a run of `config`
    (6 x 40 at 20 ms unless said), once the run's file `saved` is on disk: (pid, the pty's
    master fd, the results directory, what the process wrote so far)."""
    results = tmp_path / "results"
    settings = {"agents": 6, "rounds": 40, "latency_ms": 20, **config}
    pid, fd = spawn_tui(*args, "--config", str(write_config(tmp_path / "config.toml", results, **settings)))
    output = bytearray()

    def on_disk() -> bool:
        directory = only_experiment(results)
        return directory is not None and (directory / saved).exists()

    assert drain(fd, output, on_disk, 30), bytes(output[-2000:])
    return pid, fd, results, output


def wait_gone(pid: int, timeout: float = 30) -> int:
    """The exit code of `pid`, once it has exited (killed and failed after `timeout`)."""
    deadline = time.monotonic() + timeout
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("the process did not exit after its terminal hung up")
    return os.waitstatus_to_exitcode(done[1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_the_tui_aborts_cleanly_and_restores_the_terminal(tmp_path, signum):
    pid, fd, results, output = started_on_a_pty(tmp_path)
    assert b"\x1b[?1049h" in output  # the app is up, in the alternate screen
    os.kill(pid, signum)
    code = wait_exit(pid, fd, output)

    assert code == 130
    directory = only_experiment(results)
    result = final_result(directory)
    assert result.status == "aborted" and result.message == f"aborted by {signum.name}"
    assert 1 <= result.total_rounds < 40
    assert_files_valid(directory)
    assert not (directory / LOCK_NAME).exists()
    tail = bytes(output[output.rfind(b"\x1b[?1049h") :])
    assert LEAVE_ALT_SCREEN in tail and MOUSE_OFF in tail  # the terminal is given back
    assert b"Traceback" not in output


def test_without_a_terminal_the_app_refuses_in_one_line(tmp_path):
    results = tmp_path / "results"
    config = write_config(tmp_path / "config.toml", results)
    for args in (["--config", str(config)], ["browse", "--results-dir", str(tmp_path)]):
        done = subprocess.run(
            [sys.executable, "-m", "acausal_tui", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stdout == b""  # no escape codes
        assert done.stderr.decode().splitlines() == [
            "acausal-tui: error: the TUI needs a terminal (stdin and stdout are not one); "
            "use --headless for a run without it"
        ]
    assert not results.exists()  # nothing written


def test_a_terminal_that_hangs_up_ends_the_app_with_its_results_saved(tmp_path):
    """The window closed or the SSH connection dropped: the pty's far end goes away and the
    app gets SIGHUP with no terminal left. It aborts the run, saves it and exits 130 — not
    blocked for good writing the terminal's restore to nobody (an outside review saw that)."""
    pid, fd, results, _ = started_on_a_pty(tmp_path)
    os.close(fd)  # the terminal hangs up
    assert wait_gone(pid) == 130
    directory = only_experiment(results)
    result = final_result(directory)
    assert result.status == "aborted" and result.message == "aborted by SIGHUP"
    assert_files_valid(directory)
    assert not (directory / LOCK_NAME).exists()


def test_a_finished_run_keeps_its_exit_code_when_the_terminal_hangs_up_after(tmp_path):
    pid, fd, results, output = started_on_a_pty(tmp_path, saved="experiment_results.json", agents=3, rounds=1)
    drain(fd, output, lambda: False, 0.5)  # the app draws the result
    os.close(fd)
    assert wait_gone(pid) == 0
    assert final_result(only_experiment(results)).status == "completed"


def test_a_headless_run_whose_terminal_hangs_up_aborts_cleanly(tmp_path):
    """Over SSH, a dropped connection hangs the terminal up: SIGHUP, and stderr and stdout
    gone. The run is aborted (not failed on its progress line), saved, and exits 130."""
    pid, fd, results, _ = started_on_a_pty(tmp_path, "run", "--headless")
    os.close(fd)
    assert wait_gone(pid) == 130
    result = final_result(only_experiment(results))
    assert result.status == "aborted" and result.message == "aborted by SIGHUP"
