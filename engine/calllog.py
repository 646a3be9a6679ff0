"""The call log's writer: the call records of one event-loop tick go to calls.jsonl in one write."""

import asyncio
from collections.abc import Callable

from engine.models import CallRecord


class CallLog:
    """Buffers call records and hands them to `write` (ExperimentStore.append_calls) once
    per event-loop tick: the first record of a tick schedules a flush with `call_soon`, so
    a burst of finished calls costs one write, and no record waits longer than the loop's
    next turn. Exactly once: a record leaves the buffer only in the write that stores it.
    A failed write (disk full) is raised to the next caller of `add` or `flush`, so the run
    fails as it would have. `flush` before anything that must follow the records on disk
    (a round's files, the result)."""

    def __init__(self, write: Callable[[list[CallRecord]], None]) -> None:
        self._write = write
        self._pending: list[CallRecord] = []
        self._scheduled = False
        self._error: Exception | None = None

    def add(self, record: CallRecord) -> None:
        self._raise_error()
        self._pending.append(record)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on an asyncio loop: write at once
            self.flush()
            return
        loop.call_soon(self._flush_later)
        self._scheduled = True

    def flush(self) -> None:
        self._raise_error()
        if self._pending:
            records, self._pending = self._pending, []
            self._write(records)

    def _flush_later(self) -> None:
        self._scheduled = False
        try:
            self.flush()
        except Exception as exc:  # a loop callback cannot raise to anyone: keep it for the next caller
            self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
