"""The call log writes a loop tick's records in one write, off the event loop, each exactly
once and in order, and a failed write reaches the run."""

import threading

import anyio
import pytest

from engine.calllog import CallLog
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
