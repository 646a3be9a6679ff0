"""The results directory: layout, atomic JSON writes, the append-only call log, the error
log, and loading for the browser and resume (SPEC §6)."""

import errno
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from engine.config import ConfigError
from engine.lock import ExperimentLock
from engine.models import (
    CallRecord,
    ErrorRecord,
    ExperimentResult,
    GameResult,
    Manifest,
    RoundSummary,
    StrategyRecord,
)
from engine.textsafe import encodable

T = TypeVar("T")
TEMP_PREFIX = ".tmp-"  # leftover temp files start with this; readers ignore them
MIN_FREE_BYTES = 1 << 20  # less free space than this on the device counts as full
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


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, os.replace, fsync the directory: a reader
    sees the old file or the new one, never a torn one."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".json")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; result files are ordinary files
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
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


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, msgspec.json.format(encode(obj), indent=2))


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
            raise UnsafeFile(f"{path.name} is {info.st_size >> 20} MiB, over the "
                             f"{limit >> 20} MiB a reader accepts")
        data = file.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFile(f"{path.name} grew past the {limit >> 20} MiB a reader accepts")
    return data


def read_json(path: Path, type_: type[T]) -> T:
    return decoder(type_).decode(read_file(path))


def check_results_dir(results_dir: Path) -> None:
    """Fail early (exit 2, nothing written) when the results directory cannot be used."""
    if results_dir.exists() and not results_dir.is_dir():
        raise ConfigError(f"results_dir: {results_dir} is not a directory")
    probe = results_dir
    while not probe.exists():
        probe = probe.parent
    check_writable(probe, f"results_dir: {results_dir}")


def check_writable(directory: Path, name: str) -> None:
    """Write (and drop) an unnamed probe file: permissions, read-only mounts, quotas and a
    full disk all show, even for root, for whom os.access says yes to everything."""
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=TEMP_PREFIX) as probe:
            probe.write(bytes(4096))
            probe.flush()
            os.fsync(probe.fileno())
        free = shutil.disk_usage(directory).free
    except OSError as exc:
        raise ConfigError(f"{name} is not writable ({exc.strerror or exc})") from None
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"{name}: the disk is full ({free // 1024} KiB free)")


def new_dated_dir(results_dir: Path, prefix: str, now: datetime) -> Path:
    """results/{prefix}_YYYYMMDD_HHMMSS, with _2, _3 ... if taken (created exclusively)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    base = f"{prefix}_{now:%Y%m%d_%H%M%S}"
    for n in range(1, 10_000):
        path = results_dir / (base if n == 1 else f"{base}_{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"results_dir: no free directory name for {base}")


def new_experiment_dir(results_dir: Path, now: datetime) -> Path:
    path = new_dated_dir(results_dir, "exp", now)
    (path / "rounds").mkdir()
    return path


class ExperimentStore:
    """Writes one experiment directory, holding its lock (engine.lock: LockError when a live
    process writes it already). The call and error logs are append-only JSON lines, each
    written whole and flushed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if (directory / "rounds").is_symlink():  # its files would be written elsewhere
            raise UnsafeFile(f"{directory / 'rounds'} is a symbolic link; not followed")
        (directory / "rounds").mkdir(parents=True, exist_ok=True)
        self._lock = ExperimentLock(directory).acquire()
        try:
            self._calls = open_log(directory / "calls.jsonl")
            self._errors = open_log(directory / "experiment_errors.log")
        except BaseException:
            if hasattr(self, "_calls"):
                self._calls.close()
            self._lock.release()  # a store that could not open does not keep the directory locked
            raise

    @property
    def experiment_id(self) -> str:
        return self.directory.name

    def write_manifest(self, manifest: Manifest) -> None:
        write_json(self.directory / "manifest.json", manifest)
        from engine.index import update_index  # index reads through this module

        update_index(self.directory)

    def write_round(
        self, round: int, strategies: list[StrategyRecord], games: list[GameResult], summary: RoundSummary
    ) -> None:
        """The summary is written last: its presence marks the round as complete."""
        rounds = self.directory / "rounds"
        write_json(rounds / f"strategies_r{round}.json", strategies)
        write_json(rounds / f"games_r{round}.json", games)
        write_json(rounds / f"summary_r{round}.json", summary)
        from engine.index import update_index  # index reads through this module

        update_index(self.directory)

    def write_result(self, result: ExperimentResult) -> None:
        write_json(self.directory / "experiment_results.json", result)

    def append_call(self, record: CallRecord) -> None:
        append_line(self._calls, encode(record) + b"\n")

    def append_calls(self, records: list[CallRecord]) -> None:
        """Several call records in one write (engine/calllog.py groups a loop tick's)."""
        append_line(self._calls, b"".join(encode(record) + b"\n" for record in records))

    def log_error(self, record: ErrorRecord) -> None:
        append_line(self._errors, encode(record) + b"\n")

    def close(self) -> None:
        self._calls.close()
        self._errors.close()
        self._lock.release()


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
        view = view[file.write(view):]


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


@dataclass
class LoadedExperiment:
    """What is readable of an experiment directory; `problems` lists what was not."""

    directory: Path
    manifest: Manifest | None = None
    result: ExperimentResult | None = None
    summaries: dict[int, RoundSummary] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return self.manifest is not None

    def strategies(self, round: int) -> list[StrategyRecord]:
        return read_json(self.directory / "rounds" / f"strategies_r{round}.json", list[StrategyRecord])

    def games(self, round: int) -> list[GameResult]:
        return read_json(self.directory / "rounds" / f"games_r{round}.json", list[GameResult])


def _try_read(path: Path, type_: type[T], problems: list[str]) -> T | None:
    try:
        return read_json(path, type_)
    except FileNotFoundError:
        return None
    except UnsafeFile as exc:
        problems.append(str(exc))
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        problems.append(f"{path.name}: {exc}")
        return None


def load_experiment(directory: Path) -> LoadedExperiment:
    """Never raises for bad content: unreadable parts are listed in `problems`."""
    loaded = LoadedExperiment(directory=directory)
    loaded.manifest = _try_read(directory / "manifest.json", Manifest, loaded.problems)
    if loaded.manifest is None and not loaded.problems:
        loaded.problems.append("manifest.json: missing")
    loaded.result = _try_read(directory / "experiment_results.json", ExperimentResult, loaded.problems)
    rounds = directory / "rounds"
    if rounds.is_symlink():
        loaded.problems.append("rounds is a symbolic link; not followed")
    elif rounds.is_dir():
        for path in sorted(rounds.glob("summary_r*.json")):
            number = path.stem.removeprefix("summary_r")
            if number.isdigit():
                summary = _try_read(path, RoundSummary, loaded.problems)
                if summary is not None:
                    loaded.summaries[int(number)] = summary
    return loaded


def list_experiments(results_dir: Path) -> list[LoadedExperiment]:
    """Every experiment directory under results_dir, newest first (by name)."""
    if not results_dir.is_dir():
        return []
    dirs = [p for p in results_dir.iterdir() if p.is_dir() and p.name.startswith("exp_")]
    return [LoadedExperiment(p, problems=["a symbolic link; not followed"]) if p.is_symlink()
            else load_experiment(p) for p in sorted(dirs, key=lambda p: p.name, reverse=True)]
