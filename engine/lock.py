"""One writer per experiment directory: an flock on the directory, its pid in run.lock.

The lock is an advisory `flock` on the experiment directory itself, held on an open file
descriptor for the whole run, which the kernel drops when its process dies (kill -9
included), so a lock left by a dead process is simply taken over. Deleting or replacing
`run.lock` during a run cannot let a second writer in: the file only names the holder's
pid for messages and the browser. Where `flock` is not supported the pid alone decides: a
lock whose pid is alive refuses. A `run.lock` that is not a small regular file (a FIFO, a
symlink, binary junk) names no pid and is never waited on.

`holder()` (the browser's "running (pid N)") asks the lock too, not the pid alone: after a
kill -9 the file stays, and its pid may since belong to an unrelated process."""

import errno
import fcntl
import os
import stat
import tempfile
import time
from pathlib import Path

from engine.errors import LockError

LOCK_NAME = "run.lock"
# holder() probes the lock with a shared flock for an instant; a writer that meets that
# probe tries again for this long before refusing.
PROBE_GRACE_S = 0.2


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_pid(path: Path) -> int | None:
    """The pid in a lock file; None unless it is a small regular file holding one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 32).strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return int(text) if text.isdigit() and len(text) < 20 else None


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
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
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
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._flock(fd)
            self._write_pid()
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _write_pid(self) -> None:
        """Replace run.lock (whatever it was: junk, a FIFO, a symlink) with our pid."""
        temp: str | None = None
        try:
            handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-lock-")
            with os.fdopen(handle, "wb") as file:
                file.write(f"{os.getpid()}\n".encode())
            os.chmod(temp, 0o644)
            os.replace(temp, self.path)
        except OSError as exc:
            if temp is not None:
                Path(temp).unlink(missing_ok=True)
            raise LockError(f"cannot write the lock file {self.path}: {exc.strerror or exc}") from None

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


def unfinished_state(status: str, directory: Path) -> str:
    """The status of an experiment with no final result file: `running` is still being
    written (by the process named) or `interrupted` (its process died mid-run)."""
    if status != "running":
        return status
    pid = holder(directory)
    return f"running (pid {pid})" if pid else "interrupted"
