"""The call log's writer: the call records of one event-loop tick go to calls.jsonl in one
write, made by a writer thread so the event loop never waits on the disk. And what a log
says was spent, for runs with no result file."""

import asyncio
import math
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import msgspec

from engine.files import iter_jsonl
from engine.models import CallRecord


class Billed(Protocol):
    attempts: int
    unsent: int
    cost: float
    cost_is_estimate: bool


class LoggedCall(msgspec.Struct):
    """The money fields of a calls.jsonl line (the rest is not decoded)."""

    attempts: int
    cost: float
    cost_is_estimate: bool = False
    unsent: int = 0


@dataclass(frozen=True)
class Spend:
    calls: int  # API calls made (retries included; attempts never sent are not)
    cost: float  # USD; a cost that is not money (NaN, negative) in a damaged log counts 0
    estimate: bool  # some cost was estimated from token prices, not reported


def spend_of(calls: Iterable[Billed]) -> Spend:
    """What these logged calls made and cost (a resume starts its counts from this)."""
    made, cost, estimate = 0, 0.0, False
    for call in calls:
        made += max(0, call.attempts - call.unsent)  # a damaged line cannot take calls away
        if math.isfinite(call.cost) and call.cost >= 0:
            cost += call.cost
        estimate = estimate or call.cost_is_estimate
    return Spend(made, cost, estimate)


_SPENT: dict[Path, tuple[tuple[int, int], Spend]] = {}  # log -> ((size, mtime_ns), what it says)
_SPENT_KEPT = 256


def logged_spend(directory: Path) -> Spend | None:
    """What DIR/calls.jsonl says was spent, read a line at a time (logs can be gigabytes)
    and remembered while the log keeps its size and time, so the browser's every listing
    does not read it again; None when there is no log or it cannot be read. Calls in flight
    when a run was killed are not in it, so for an interrupted run it is a lower bound."""
    path = directory / "calls.jsonl"
    try:
        stat = path.stat()
        seen = (stat.st_size, stat.st_mtime_ns)
        known = _SPENT.get(path)
        if known is not None and known[0] == seen:
            return known[1]
        spent = spend_of(iter_jsonl(path, LoggedCall))
    except OSError:
        return None
    if len(_SPENT) >= _SPENT_KEPT:
        _SPENT.clear()
    _SPENT[path] = (seen, spent)
    return spent


class CallLog:
    """Buffers call records and hands them to `write` (ExperimentStore.append_calls) once
    per event-loop tick, through one writer thread: a burst of finished calls costs one
    write, and a write that waits on the disk (behind another process's fsync, say) never
    stalls the loop (and a UI on it). Records reach the file in the order they were added,
    each exactly once: a record leaves the buffer only in the write that stores it. A
    failed write (disk full) is raised to the next caller of `add` or `drain`, so the run
    fails as it would have. `await drain()` before anything that must follow the records
    on disk (a round's files, the result); `close()` at the end."""

    def __init__(self, write: Callable[[list[CallRecord]], None]) -> None:
        self._write = write
        self._pending: list[CallRecord] = []
        self._scheduled = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-log")
        self._last: Future[None] | None = None
        self._error: BaseException | None = None

    def add(self, record: CallRecord) -> None:
        self._raise_error()
        self._pending.append(record)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an asyncio loop: send it at once
            self._send()
            return
        loop.call_soon(self._send_later)
        self._scheduled = True

    async def drain(self) -> None:
        """Wait (off the loop) until every record added so far is written."""
        self._send()
        if self._last is not None:
            await anyio.to_thread.run_sync(self._last.exception)
        self._raise_error()

    def close(self) -> None:
        self._send()
        self._writer.shutdown(wait=True)

    def _send_later(self) -> None:
        self._scheduled = False
        self._send()

    def _send(self) -> None:
        if self._pending:
            records, self._pending = self._pending, []
            self._last = self._writer.submit(self._write, records)
            self._last.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        if future.exception() is not None and self._error is None:
            self._error = future.exception()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
