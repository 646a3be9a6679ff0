"""Run control shared by the engine and a UI: pause, resume, abort, live counters, the ETA."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from engine.events import Event, Paused, Resumed

ETA_ROUNDS = 3  # the ETA is the mean duration of this many last rounds x the rounds left


def eta_seconds(durations: Sequence[float], rounds_left: int) -> float | None:
    """Seconds left: the mean of the last ETA_ROUNDS round durations x the rounds left
    (None before a round has ended). Round durations leave paused time out (the runner
    subtracts `RunControl.paused_seconds`), so a pause never inflates the ETA. The one
    formula the headless printer and the run screen both show."""
    recent = durations[-ETA_ROUNDS:]
    return sum(recent) / len(recent) * rounds_left if recent else None


@dataclass
class RunStats:
    calls: int = 0  # attempts sent, retries included
    retries: int = 0
    empty_replies: int = 0  # attempts billed but answered without usable content
    cost: float = 0.0
    cost_is_estimate: bool = False  # some of `cost` is an estimate (a price table, a worst case)
    in_flight: int = 0
    budget_usd: float | None = None


class RunControl:
    """Pause stops new model calls from starting (in-flight ones finish); abort cancels
    in-flight calls and makes the runner save partial results with status `aborted`."""

    def __init__(self) -> None:
        self.stats = RunStats()
        self.abort_reason: str | None = None
        self._resume: anyio.Event | None = None  # set while paused; a fresh Event per pause
        self._scope: anyio.CancelScope | None = None
        self._notify: Callable[[Event], None] = lambda event: None
        self._paused_s = 0.0  # time spent paused before the current pause
        self._paused_at = 0.0  # time.monotonic() when the current pause began

    @property
    def paused(self) -> bool:
        return self._resume is not None

    @property
    def aborted(self) -> bool:
        return self.abort_reason is not None

    def attach(self, scope: anyio.CancelScope, notify: Callable[[Event], None]) -> None:
        """Called by the runner: the scope abort cancels, and where pause/resume are reported."""
        self._scope = scope
        self._notify = notify
        if self.aborted:
            scope.cancel()

    def pause(self) -> None:
        if self._resume is None and not self.aborted:
            self._resume = anyio.Event()
            self._paused_at = time.monotonic()
            self._notify(Paused(in_flight=self.stats.in_flight))

    def resume(self) -> None:
        if self._resume is not None:
            event, self._resume = self._resume, None
            self._paused_s += time.monotonic() - self._paused_at
            event.set()
            self._notify(Resumed())

    def paused_seconds(self) -> float:
        """Total time spent paused so far (the current pause included): round durations and
        the ETA leave it out."""
        current = time.monotonic() - self._paused_at if self._resume is not None else 0.0
        return self._paused_s + current

    def abort(self, reason: str = "aborted by the user") -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
        if self._resume is not None:
            self._paused_s += time.monotonic() - self._paused_at
            self._resume.set()
            self._resume = None
        if self._scope is not None:
            self._scope.cancel()

    async def wait_if_paused(self) -> None:
        while self._resume is not None:
            await self._resume.wait()
