"""One writer per experiment directory: a live lock refuses, a stale one is taken over."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from acausal_tui.cli import main
from engine.lock import LOCK_NAME, ExperimentLock, LockError, holder
from engine.providers.factory import make_provider
from engine.runner import run_experiment
from engine.store import ExperimentStore
from tests.support.experiment_files import ROOT, only_experiment

HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from engine.lock import ExperimentLock\n"
    "ExperimentLock(Path(sys.argv[1])).acquire()\n"
    "print('locked', flush=True)\n"
    "time.sleep(60)\n"
)


def hold_lock(directory: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "locked\n"
    return process


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_live_lock_refuses_and_names_the_pid(tmp_path):
    process = hold_lock(tmp_path)
    try:
        assert holder(tmp_path) == process.pid
        with pytest.raises(LockError, match=f"being written by process {process.pid}"):
            ExperimentLock(tmp_path).acquire()
        with pytest.raises(LockError):
            ExperimentStore(tmp_path)
    finally:
        process.kill()
        process.wait()


def test_a_lock_left_by_kill_9_is_taken_over(tmp_path):
    process = hold_lock(tmp_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(process.pid)
    assert holder(tmp_path) is None
    with ExperimentLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("content", ["dead", "garbage", ""])
def test_a_stale_lock_file_is_taken_over(tmp_path, content):
    (tmp_path / LOCK_NAME).write_text(str(dead_pid()) if content == "dead" else content)
    lock = ExperimentLock(tmp_path).acquire()
    assert holder(tmp_path) == os.getpid()
    lock.release()


def test_a_lock_file_naming_a_live_unrelated_pid_is_not_held(tmp_path):
    """After kill -9 the file stays and its pid may be reused: only the flock says who writes."""
    (tmp_path / LOCK_NAME).write_text(f"{os.getppid()}\n")  # alive, but holds no lock here
    assert holder(tmp_path) is None
    with ExperimentLock(tmp_path):  # and resume takes it over
        assert holder(tmp_path) == os.getpid()
    assert holder(tmp_path) is None


@pytest.fixture
def without_flock(monkeypatch):
    """A filesystem where flock is not supported: the pid in run.lock alone decides."""
    import engine.lock

    def no_flock(fd, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(engine.lock.fcntl, "flock", no_flock)


@pytest.mark.usefixtures("without_flock")
def test_without_flock_the_holder_is_the_live_pid(tmp_path):
    (tmp_path / LOCK_NAME).write_text(str(os.getppid()))
    assert holder(tmp_path) == os.getppid()
    (tmp_path / LOCK_NAME).write_text(str(dead_pid()))
    assert holder(tmp_path) is None


def test_the_holder_probe_does_not_make_a_writer_refuse(tmp_path, monkeypatch):
    """holder() holds a shared flock for an instant; a writer meeting it tries again."""
    import engine.lock

    real = engine.lock.fcntl.flock
    probe = os.open(tmp_path, os.O_RDONLY)  # the lock is an flock on the directory
    real(probe, engine.lock.fcntl.LOCK_SH)
    calls = []

    def flock(fd, operation):
        calls.append(operation)
        if len(calls) == 2:  # the probe ends while the writer waits
            real(probe, engine.lock.fcntl.LOCK_UN)
        return real(fd, operation)

    monkeypatch.setattr(engine.lock.fcntl, "flock", flock)
    try:
        ExperimentLock(tmp_path).acquire().release()
    finally:
        os.close(probe)
    assert len(calls) >= 2


def test_one_process_cannot_hold_the_same_experiment_twice(tmp_path):
    with ExperimentLock(tmp_path):
        with pytest.raises(LockError):
            ExperimentLock(tmp_path).acquire()


@pytest.mark.usefixtures("without_flock")
def test_without_flock_a_live_pid_still_refuses(tmp_path):
    (tmp_path / LOCK_NAME).write_text(str(os.getppid()))
    with pytest.raises(LockError):
        ExperimentLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text(str(dead_pid()))
    ExperimentLock(tmp_path).acquire().release()


def test_a_running_experiment_holds_its_lock_and_releases_it(make_config):
    config = make_config(agents=3, rounds=1)
    seen = []

    class Probe:
        def on_event(self, event):
            directory = only_experiment(Path(config.results_dir))
            if directory is not None:
                seen.append(holder(directory))

    anyio.run(lambda: run_experiment(config, provider=make_provider(config, {}), observer=Probe()))
    assert seen and set(seen) == {os.getpid()}
    assert not (only_experiment(Path(config.results_dir)) / LOCK_NAME).exists()


def test_resume_of_a_locked_experiment_exits_2(aborted_experiment, tmp_path, capsys):
    directory = tmp_path / aborted_experiment.name
    shutil.copytree(aborted_experiment, directory)
    process = hold_lock(directory)
    try:
        before = time.monotonic()
        assert main(["resume", str(directory), "--headless"]) == 2
        assert time.monotonic() - before < 5
        err = capsys.readouterr().err
        assert f"being written by process {process.pid}" in err and err.count("\n") == 1
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("replace", ["deleted", "replaced_by_junk", "replaced_by_a_fifo"])
def test_a_lock_file_removed_during_a_run_lets_no_second_writer_in(tmp_path, replace):
    """The lock is an flock on the directory: what happens to run.lock does not matter."""
    process = hold_lock(tmp_path)
    try:
        (tmp_path / LOCK_NAME).unlink()
        if replace == "replaced_by_junk":
            (tmp_path / LOCK_NAME).write_bytes(b"\xff\xfe\x00")
        elif replace == "replaced_by_a_fifo":
            os.mkfifo(tmp_path / LOCK_NAME)
        with pytest.raises(LockError, match="being written by another process"):
            ExperimentLock(tmp_path).acquire()
        with pytest.raises(LockError):
            ExperimentStore(tmp_path)
    finally:
        process.kill()
        process.wait()
    with ExperimentLock(tmp_path):  # the holder died: taken over, the pid file rewritten
        assert holder(tmp_path) == os.getpid()
