"""One writer per experiment directory: a lock file holding the writer's pid.

The lock is an advisory `flock` on `run.lock`, which the kernel drops when its process
dies (kill -9 included), so a lock left by a dead process is simply taken over; the pid in
the file names the live holder in the refusal message. Where `flock` is not supported the
pid alone decides: a lock whose pid is alive refuses.

`holder()` (the browser's "running (pid N)") asks the lock too, not the pid alone: after a
kill -9 the file stays, and its pid may since belong to an unrelated process."""

import errno
import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "run.lock"
# holder() probes the lock with a shared flock for an instant; a writer that meets that
# probe tries again for this long before refusing.
PROBE_GRACE_S = 0.2


class LockError(Exception):
    """Another live process is writing this experiment."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _held(fd: int) -> bool | None:
    """Whether some open file holds the flock on `fd`'s file; None where flock is unsupported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return True if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def holder(directory: Path) -> int | None:
    """The pid of the live writer of `directory`, or None; for display only (a browser).
    A lock file nobody holds the flock on names no writer, whatever process its pid now
    belongs to; only where flock is unsupported does the pid alone decide."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        held = _held(fd)
    finally:
        os.close(fd)
    pid = read_pid(path)
    if held is None:  # no flock here
        return pid if pid is not None and pid_alive(pid) else None
    return pid if held else None


class ExperimentLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "ExperimentLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._flock(fd)
                # The previous holder may have unlinked the file between our open and flock:
                # then we hold a lock on a file nobody else can see, so try again.
                if os.path.exists(self.path) and os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def _flock(self, fd: int) -> None:
        deadline = time.monotonic() + PROBE_GRACE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    pid = read_pid(self.path)  # no flock here: the pid alone decides
                    if pid is None or pid == os.getpid() or not pid_alive(pid):
                        return
                    break
            # Held: by a writer, or for an instant by holder()'s probe, so look again shortly.
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        pid = read_pid(self.path)
        who = f"process {pid}" if pid else "another process"
        raise LockError(
            f"{self.path.parent} is being written by {who} (lock file {self.path}); "
            "wait for it to finish or stop it first"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "ExperimentLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
