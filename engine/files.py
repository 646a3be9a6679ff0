"""Result files written atomically and read safely: JSON encoding, temp file + fsync +
os.replace writes, append-only logs, and reads that refuse a symlink, a FIFO, a device or
an oversized file (UnsafeFile) instead of following, blocking on or loading it."""

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from engine.textsafe import encodable

T = TypeVar("T")
TEMP_PREFIX = ".tmp-"  # leftover temp files start with this; readers ignore them
# Largest file a reader loads: far above what a real experiment writes (a 1,000-agent
# round of games is ~250 MB at most), small enough to refuse a sparse or runaway file.
MAX_JSON_BYTES = 512 << 20
MAX_LOG_BYTES = 2 << 30  # calls.jsonl, experiment_errors.log

_UMASK = os.umask(0)
os.umask(_UMASK)
_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder] = {}


def decoder(type_: Any) -> msgspec.json.Decoder:
    if type_ not in _decoders:
        _decoders[type_] = msgspec.json.Decoder(type_)
    return _decoders[type_]


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Temp file in the same directory, fsync, os.replace, fsync the directory: a reader
    sees the old file or the new one, never a torn one. `durable=False` leaves out the two
    fsyncs, for a cache that is rebuilt when lost (still never torn)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".json")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; result files are ordinary files
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def encode(obj: Any) -> bytes:
    """JSON bytes of `obj`; outside text holding lone surrogates (which UTF-8 cannot store)
    is written with U+FFFD in their place instead of failing the write."""
    try:
        return _encoder.encode(obj)
    except UnicodeEncodeError:
        return _encoder.encode(_encodable(msgspec.to_builtins(obj)))


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


def write_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    write_atomic(path, msgspec.json.format(encode(obj), indent=2), durable=durable)


class UnsafeFile(OSError):
    """A file a reader refuses: not a regular file, a symlink, or too large."""


def read_file(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a regular file at most `limit` long. Never follows a symlink (out of
    the experiment directory or anywhere), never blocks on a FIFO, never reads a device
    such as /dev/zero: UnsafeFile (an OSError) says which."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(f"{path.name} is a symbolic link; not followed") from None
        raise
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise UnsafeFile(f"{path.name} is {info.st_size >> 20} MiB, over the {limit >> 20} MiB a reader accepts")
        # As much as the file holds (asking for `limit` would allocate all of it at once:
        # 512 MiB of address space per read, refused under a cluster's ulimit -v).
        data = file.read(info.st_size + 1)
        if len(data) > info.st_size:  # it grew since: the rest, a MiB at a time, within the limit
            parts, size = [data], len(data)
            while size <= limit and (chunk := file.read(1 << 20)):
                parts.append(chunk)
                size += len(chunk)
            data = b"".join(parts)
    if len(data) > limit:
        raise UnsafeFile(f"{path.name} grew past the {limit >> 20} MiB a reader accepts")
    return data


def read_json(path: Path, type_: type[T]) -> T:
    return decoder(type_).decode(read_file(path))


def open_log(path: Path) -> Any:
    """An append-only log opened unbuffered: only a regular file (a FIFO would block the
    writer, a symlink would write elsewhere)."""
    return open(path, "ab", buffering=0, opener=_regular_file_opener)


def _regular_file_opener(path: str, flags: int) -> int:
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a FIFO nobody reads
            raise UnsafeFile(f"{Path(path).name} is not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeFile(f"{Path(path).name} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def append_line(file: Any, data: bytes) -> None:
    """Write all of `data` to an unbuffered file (a raw write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[file.write(view) :]


def iter_jsonl(path: Path, type_: type[T], limit: int = MAX_LOG_BYTES, line_limit: int = MAX_JSON_BYTES) -> Iterator[T]:
    """The records of a JSON-lines file one at a time (lines that do not decode, or longer
    than `line_limit`, skipped), holding one line in memory, not the file: for logs of
    gigabytes. Only a regular file; OSError past `limit` bytes, as `read_file` refuses."""
    dec = decoder(type_)
    read = 0
    with open(path, "rb", opener=_regular_file_opener) as file:
        while line := file.readline(line_limit + 1):
            read += len(line)
            while len(line) > line_limit and not line.endswith(b"\n"):  # an endless line: skip it whole
                line = file.readline(line_limit + 1)
                read += len(line)
                if not line or line.endswith(b"\n"):
                    line = b""
                    break
            if read > limit:
                raise OSError(f"{path.name}: larger than {limit} bytes")
            if len(line) > line_limit:
                continue
            try:
                yield dec.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue


def read_jsonl(path: Path, type_: type[T]) -> tuple[list[T], list[str]]:
    """Decode a JSON-lines file; lines that do not decode (a torn last line after a crash)
    are returned separately instead of breaking the load."""
    if not path.exists():
        return [], []
    good: list[T] = []
    bad: list[str] = []
    dec = decoder(type_)
    for line in read_file(path, MAX_LOG_BYTES).splitlines():
        if not line.strip():
            continue
        try:
            good.append(dec.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError):
            bad.append(line.decode(errors="replace"))
    return good, bad
