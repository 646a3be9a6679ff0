"""The results directory and the writer of one experiment in it: the directory checked and
made, the round files, manifest and result written atomically, the append-only call and
error logs, and index.json kept up to date after each write (SPEC §6).

Also the door to the file helpers (engine/files.py) and the loading of an experiment
(engine/loading.py): callers take those names from here."""

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from engine import index
from engine.config import ConfigError
from engine.files import (
    MAX_JSON_BYTES,
    MAX_LOG_BYTES,
    TEMP_PREFIX,
    UnsafeFile,
    append_line,
    decoder,
    encode,
    fsync_dir,
    iter_jsonl,
    open_log,
    read_file,
    read_json,
    read_jsonl,
    write_atomic,
    write_json,
)
from engine.loading import BadRoundFile, LoadedExperiment, list_experiments, load_experiment
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

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_LOG_BYTES",
    "MIN_FREE_BYTES",
    "TEMP_PREFIX",
    "BadRoundFile",
    "ExperimentStore",
    "LoadedExperiment",
    "UnsafeFile",
    "check_results_dir",
    "check_writable",
    "decoder",
    "encode",
    "fsync_dir",
    "list_experiments",
    "load_experiment",
    "new_dated_dir",
    "new_experiment_dir",
    "read_file",
    "read_json",
    "iter_jsonl",
    "read_jsonl",
    "write_atomic",
    "write_json",
]

MIN_FREE_BYTES = 1 << 20  # less free space than this on the device counts as full


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
        index.update_index(self.directory)

    def write_round(
        self, round: int, strategies: list[StrategyRecord], games: list[GameResult], summary: RoundSummary
    ) -> None:
        """The summary is written last: its presence marks the round as complete."""
        rounds = self.directory / "rounds"
        write_json(rounds / f"strategies_r{round}.json", strategies)
        write_json(rounds / f"games_r{round}.json", games)
        write_json(rounds / f"summary_r{round}.json", summary)
        index.add_round(self.directory, round, summary)

    def write_result(self, result: ExperimentResult) -> None:
        write_json(self.directory / "experiment_results.json", result)

    def append_calls(self, records: list[CallRecord]) -> None:
        """Several call records in one write (engine/calllog.py groups a loop tick's)."""
        append_line(self._calls, b"".join(encode(record) + b"\n" for record in records))

    def log_error(self, record: ErrorRecord) -> None:
        append_line(self._errors, encode(record) + b"\n")

    def close(self) -> None:
        self._calls.close()
        self._errors.close()
        self._lock.release()
