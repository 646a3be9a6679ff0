"""One shared limiter for every model call of a run, and the retry policy (SPEC §8)."""

import math
import random
import time
from collections.abc import Awaitable, Callable

import anyio

MAX_ATTEMPTS = 4  # one call + at most 3 retries
MAX_RETRY_AFTER_S = 120.0
BACKOFF_BASE_S = 1.0  # first backoff is 0.5-1 x this, then doubling


class Limiter:
    """Requests per minute and concurrency, shared by all calls. Starts sit on a fixed grid
    60/rpm apart, in arrival order: each start is computed from the previous one's grid
    time, not from when its task happened to wake up, so late wake-ups do not add up to a
    slower rate, and no start is ever ahead of the grid.

    A grid that fell behind by at most `catch_up_s` (about one second: `burst` steps) is
    caught up: the overdue calls start at once. Such a lull comes with the protocol (a
    round waits for its last reply before the next round's calls exist) and would
    otherwise be lost from every round. A grid further behind (idle time) restarts at now:
    idle time earns no burst. So any T seconds hold at most T x rpm/60 + burst + 1 starts
    (a minute: rpm + burst + 1; a second: about twice the rate). `slow_down` (after a
    429) holds back every call's start, not just the one that got it; the grid restarts
    at the end of the hold."""

    def __init__(
        self,
        rpm: int | None,
        max_concurrency: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
    ) -> None:
        self._slots = anyio.Semaphore(max_concurrency)
        self._interval = 60.0 / rpm if rpm else 0.0
        self.burst = max(1, rpm // 60) if rpm else 0  # grid steps a lull may be caught up
        self.catch_up_s = self.burst * self._interval
        self._clock = clock
        self._sleep = sleep
        self._next_start = -math.inf  # grid time of the next start
        self._hold_until = 0.0  # set by slow_down
        self._lock = anyio.Lock()

    @property
    def held_for(self) -> float:
        """Seconds left of a slow_down hold (0 when none)."""
        return max(0.0, self._hold_until - self._clock())

    async def acquire(self) -> None:
        try:  # a free slot is taken at once: anyio's acquire would first yield a loop turn
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._slots.acquire()
        try:
            if self._interval or self._hold_until > self._clock():
                async with self._lock:
                    await self._wait_for_turn()
        except BaseException:
            self._slots.release()
            raise

    async def _wait_for_turn(self) -> None:
        while True:
            now = self._clock()
            held = self._hold_until > self._next_start
            start = self._hold_until if held else self._next_start
            if start <= now:
                break
            await self._sleep(start - now)
        if held or now - start > self.catch_up_s:  # idle, or after a hold: start again here
            start = now
        self._next_start = start + self._interval

    def release(self) -> None:
        self._slots.release()

    def slow_down(self, delay_s: float) -> None:
        """No call of the run starts in the next `delay_s` seconds."""
        self._hold_until = max(self._hold_until, self._clock() + delay_s)


def backoff_delay(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): exponential backoff with
    jitter, a uniform draw from [b/2, b] with b = 1, 2, 4 s for attempts 1, 2, 3 (times
    BACKOFF_BASE_S); a longer Retry-After from the server (capped at 120 s) wins. The
    backoff is a floor: `Retry-After: 0` or a date in the past never means "at once"."""
    base = BACKOFF_BASE_S * 2.0 ** (attempt - 1)
    delay = base / 2 + rng.uniform(0, base / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
    return delay
