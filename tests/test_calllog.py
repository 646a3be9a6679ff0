"""The call log writes a loop tick's records in one write, off the event loop, each exactly
once and in order, and a failed write reaches the run."""

import threading

import anyio
import msgspec
import pytest

from engine import calllog
from engine.calllog import CallLog, logged_spend
from engine.models import CallRecord, Usage


def record(key: str) -> CallRecord:
    return CallRecord(
        key=key,
        model="m",
        attempts=1,
        reply="COOPERATE",
        usage=Usage(),
        cost=0.0,
        cost_is_estimate=False,
        latency_s=0.1,
        error=None,
        time="t",
    )


class Writes:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()

    def __call__(self, records: list[CallRecord]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append([r.key for r in records])


async def test_records_of_one_tick_go_out_in_one_write_off_the_loop():
    writes = Writes()
    log = CallLog(writes)
    for key in ("a", "b", "c"):
        log.add(record(key))
    assert writes.batches == []  # not yet: the loop's next turn sends them
    await anyio.sleep(0)
    log.add(record("d"))
    await log.drain()
    assert writes.batches == [["a", "b", "c"], ["d"]]
    assert writes.threads and threading.current_thread().name not in writes.threads
    log.close()


async def test_drain_writes_everything_once():
    writes = Writes()
    log = CallLog(writes)
    log.add(record("a"))
    await log.drain()
    await anyio.sleep(0)  # the send scheduled for this tick finds nothing left
    await log.drain()
    log.close()
    assert writes.batches == [["a"]]


async def test_a_failed_write_is_raised_to_the_next_caller():
    def full(records: list[CallRecord]) -> None:
        raise OSError(28, "No space left on device")

    log = CallLog(full)
    log.add(record("a"))
    with pytest.raises(OSError, match="No space"):
        await log.drain()
    log.add(record("b"))
    await anyio.sleep(0.05)  # sent and failed in the writer thread
    with pytest.raises(OSError):
        log.add(record("c"))
    log.close()


def test_outside_an_event_loop_records_are_sent_at_once():
    writes = Writes()
    log = CallLog(writes)
    log.add(record("a"))
    log.add(record("b"))
    log.close()
    assert writes.batches == [["a"], ["b"]]


async def test_the_store_writes_a_group_as_json_lines(tmp_path):
    from engine.store import ExperimentStore, read_jsonl

    store = ExperimentStore(tmp_path / "exp")
    log = CallLog(store.append_calls)
    for key in ("a", "b"):
        log.add(record(key))
    await anyio.sleep(0)
    log.add(record("c"))
    await log.drain()
    log.close()
    store.close()
    calls, bad = read_jsonl(tmp_path / "exp" / "calls.jsonl", CallRecord)
    assert [c.key for c in calls] == ["a", "b", "c"] and not bad


def test_the_logged_spend_is_what_the_calls_made_and_cost(tmp_path):
    """An interrupted run's cost so far, from calls.jsonl: API calls made (retries counted,
    attempts never sent not), costs that are money only, estimated if any call was; a torn
    last line (a kill mid-write) is skipped. No log: None."""
    assert logged_spend(tmp_path) is None
    lines = [
        msgspec.json.encode(msgspec.structs.replace(record("a"), attempts=2, cost=0.01)),
        msgspec.json.encode(
            msgspec.structs.replace(record("b"), attempts=3, unsent=1, cost=0.02, cost_is_estimate=True)
        ),
        msgspec.json.encode(msgspec.structs.replace(record("c"), attempts=1, cost=-5.0)),  # a damaged log: not money
        msgspec.json.encode(msgspec.structs.replace(record("e"), attempts=1, unsent=4)),  # damaged: no calls, not -3
        b'{"key": "d", "attempts": 1, "co',  # torn
    ]
    (tmp_path / "calls.jsonl").write_bytes(b"\n".join(lines))
    spent = logged_spend(tmp_path)
    assert spent is not None
    assert (spent.calls, spent.estimate) == (5, True)
    assert spent.cost == pytest.approx(0.03)


def test_the_logged_spend_is_read_again_only_when_the_log_changes(tmp_path, monkeypatch):
    """The browser lists interrupted experiments at every reload: an unchanged log is not
    read again; one that grew is."""
    log = tmp_path / "calls.jsonl"
    log.write_bytes(msgspec.json.encode(msgspec.structs.replace(record("a"), cost=0.5)) + b"\n")
    reads = []
    real = calllog.iter_jsonl
    monkeypatch.setattr(calllog, "iter_jsonl", lambda *a: reads.append(1) or real(*a))
    assert logged_spend(tmp_path).cost == 0.5  # type: ignore[union-attr]
    assert logged_spend(tmp_path).cost == 0.5  # type: ignore[union-attr]
    assert len(reads) == 1
    with log.open("ab") as file:
        file.write(msgspec.json.encode(msgspec.structs.replace(record("b"), cost=0.25)) + b"\n")
    assert logged_spend(tmp_path).cost == 0.75  # type: ignore[union-attr]
    assert len(reads) == 2
