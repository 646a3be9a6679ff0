import os
import stat
from pathlib import Path

import pytest

from engine.models import CallRecord, Usage
from engine.store import (
    ExperimentStore,
    list_experiments,
    load_experiment,
    read_jsonl,
    write_atomic,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "f.json"
    write_atomic(target, b'{"a": 1}')
    write_atomic(target, b'{"a": 2}')
    assert target.read_bytes() == b'{"a": 2}'
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
    assert stat.S_IMODE(target.stat().st_mode) & 0o044  # readable like any other file


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    write_atomic(target, b"old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_call_log_appends_whole_lines_and_torn_lines_are_set_apart(tmp_path):
    store = ExperimentStore(tmp_path / "exp_1")
    record = CallRecord(
        key="k", model="m", attempts=1, reply="C", usage=Usage(), cost=0, cost_is_estimate=False, latency_s=0
    )
    store.append_calls([record])
    store.append_calls([record])
    store.close()
    path = tmp_path / "exp_1" / "calls.jsonl"
    with open(path, "ab") as file:
        file.write(b'{"key": "torn", "mod')
    good, bad = read_jsonl(path, CallRecord)
    assert good == [record, record] and bad == ['{"key": "torn", "mod']


def test_loading_never_raises_on_corrupt_or_partial_dirs(tmp_path):
    (tmp_path / "exp_20260101_000000").mkdir()
    corrupt = tmp_path / "exp_20260102_000000"
    (corrupt / "rounds").mkdir(parents=True)
    (corrupt / "manifest.json").write_text("{not json")
    (corrupt / "rounds" / "summary_r1.json").write_text('{"round": "x"}')
    (corrupt / "rounds" / ".tmp-abc.json").write_text("junk")
    (tmp_path / "not_an_experiment.txt").write_text("x")
    loaded = list_experiments(tmp_path)
    assert [e.directory.name for e in loaded] == ["exp_20260102_000000", "exp_20260101_000000"]
    assert not loaded[0].readable and any("manifest.json" in p for p in loaded[0].problems)
    assert any("summary_r1.json" in p for p in loaded[0].problems)
    assert loaded[1].problems == ["manifest.json: missing"]
    assert load_experiment(Path(tmp_path / "missing")).problems


def test_a_store_that_cannot_open_its_logs_releases_the_lock(tmp_path, monkeypatch):
    import builtins

    from engine.lock import ExperimentLock

    directory = tmp_path / "exp_1"
    real_open = builtins.open

    def no_more_files(path, *args, **kwargs):
        if str(path).endswith("experiment_errors.log"):
            raise OSError(24, "Too many open files")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_more_files)
    with pytest.raises(OSError):
        ExperimentStore(directory)
    monkeypatch.setattr(builtins, "open", real_open)
    ExperimentLock(directory).acquire().release()  # free again


def test_reading_a_small_file_allocates_what_it_holds_not_the_limit(tmp_path):
    """Asking for the 512 MiB limit at once allocated it on every read (a round file, the
    index): address space a cluster's `ulimit -v` refuses, for a file of a few bytes."""
    import tracemalloc

    from engine.files import read_file

    path = tmp_path / "small.json"
    path.write_bytes(b'{"a": 1}')
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        assert read_file(path) == b'{"a": 1}'
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_file_that_grows_while_read_is_read_whole_within_the_limit(tmp_path, monkeypatch):
    from engine import files

    path = tmp_path / "growing.json"
    path.write_bytes(b"x" * 100)
    real_fstat = os.fstat

    def stale_fstat(fd):  # the size as it was before the writer appended 90 bytes
        info = real_fstat(fd)
        return os.stat_result((*info[:6], 10, *info[7:]))

    monkeypatch.setattr(files.os, "fstat", stale_fstat)
    import tracemalloc

    tracemalloc.start()
    try:
        assert files.read_file(path) == b"x" * 100  # the rest read in small pieces, not `limit` at once
        assert tracemalloc.get_traced_memory()[1] < 4 << 20
    finally:
        tracemalloc.stop()
    with pytest.raises(files.UnsafeFile, match="grew past"):
        files.read_file(path, limit=50)


def test_iter_jsonl_reads_a_line_at_a_time_and_refuses_past_its_limits(tmp_path):
    """A sweep's resume reads every experiment's log: a line with no end (gigabytes of it)
    once took gigabytes of memory; a log past the size limit is refused, as read_file does."""
    from engine.files import iter_jsonl
    from engine.models import ErrorRecord

    record = b'{"time": "t", "type": "x", "message": "m", "context": {}}\n'
    path = tmp_path / "log.jsonl"
    path.write_bytes(record + b"y" * 5000 + b"\n" + b"not json\n" + record)
    assert [r.type for r in iter_jsonl(path, ErrorRecord, line_limit=1000)] == ["x", "x"]  # the long line skipped
    path.write_bytes(record + b"z" * 5000)  # no end at all
    assert [r.type for r in iter_jsonl(path, ErrorRecord, line_limit=1000)] == ["x"]
    with pytest.raises(OSError, match="larger than"):
        list(iter_jsonl(path, ErrorRecord, limit=2000, line_limit=1000))
