"""The call log writes a loop tick's records in one write, each exactly once, and a failed
write reaches the run."""

import anyio
import pytest

from engine.calllog import CallLog
from engine.models import CallRecord, Usage


def record(key: str) -> CallRecord:
    return CallRecord(key=key, model="m", attempts=1, reply="COOPERATE", usage=Usage(), cost=0.0,
                      cost_is_estimate=False, latency_s=0.1, error=None, time="t")


async def test_records_of_one_tick_go_out_in_one_write():
    writes: list[list[str]] = []
    log = CallLog(lambda records: writes.append([r.key for r in records]))
    for key in ("a", "b", "c"):
        log.add(record(key))
    assert writes == []  # not yet: the loop's next turn writes them
    await anyio.sleep(0)
    assert writes == [["a", "b", "c"]]
    log.add(record("d"))
    await anyio.sleep(0)
    assert writes == [["a", "b", "c"], ["d"]]


async def test_flush_writes_at_once_and_nothing_twice():
    writes: list[list[str]] = []
    log = CallLog(lambda records: writes.append([r.key for r in records]))
    log.add(record("a"))
    log.flush()
    await anyio.sleep(0)  # the scheduled flush finds nothing left
    log.flush()
    assert writes == [["a"]]


async def test_a_failed_write_is_raised_to_the_next_caller():
    def full(records: list[CallRecord]) -> None:
        raise OSError(28, "No space left on device")

    log = CallLog(full)
    log.add(record("a"))
    await anyio.sleep(0)
    with pytest.raises(OSError, match="No space"):
        log.add(record("b"))
    log2 = CallLog(full)
    log2.add(record("a"))
    await anyio.sleep(0)
    with pytest.raises(OSError):
        log2.flush()


def test_outside_an_event_loop_each_record_is_written_at_once():
    writes: list[list[str]] = []
    log = CallLog(lambda records: writes.append([r.key for r in records]))
    log.add(record("a"))
    assert writes == [["a"]]


async def test_the_store_writes_a_group_as_json_lines(tmp_path):
    from engine.store import ExperimentStore, read_jsonl

    store = ExperimentStore(tmp_path / "exp")
    log = CallLog(store.append_calls)
    for key in ("a", "b"):
        log.add(record(key))
    await anyio.sleep(0)
    log.add(record("c"))
    log.flush()
    store.close()
    calls, bad = read_jsonl(tmp_path / "exp" / "calls.jsonl", CallRecord)
    assert [c.key for c in calls] == ["a", "b", "c"] and not bad
