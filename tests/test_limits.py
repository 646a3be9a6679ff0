"""The shared limiter (rpm spacing, concurrency, 429 hold) and the backoff policy."""

import bisect
import random
import time

import anyio
import pytest

from engine import limits
from engine.limits import MAX_RETRY_AFTER_S, Limiter, backoff_delay


async def start_times(limiter: Limiter, n: int, hold_s: float = 0.0) -> list[float]:
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(time.monotonic())
        try:
            await anyio.sleep(hold_s)
        finally:
            limiter.release()

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return sorted(starts)


async def test_rpm_spaces_starts_evenly():
    starts = await start_times(Limiter(rpm=1200, max_concurrency=50), 6)  # 50 ms apart
    # never ahead of the grid (the first start's own late wake-up aside) ...
    assert all(s - starts[0] >= k * 0.05 - 0.01 for k, s in enumerate(starts)), starts
    assert starts[-1] - starts[0] == pytest.approx(0.25, abs=0.04)


async def test_late_wake_ups_do_not_slow_the_rate():
    """Every sleep overshoots by 30% of a step (a busy event loop): starts stay on the grid
    0, 1, 2 ... steps from the first, instead of drifting by 30% per start."""
    now = [100.0]

    async def late_sleep(seconds: float) -> None:
        now[0] += seconds + 0.3

    limiter = Limiter(rpm=60, max_concurrency=50, clock=lambda: now[0], sleep=late_sleep)
    starts = []
    for _ in range(20):
        await limiter.acquire()
        starts.append(now[0])
        limiter.release()
    assert all(s - starts[0] <= k + 0.3 for k, s in enumerate(starts)), starts
    assert all(s - starts[0] >= k for k, s in enumerate(starts)), starts


class FakeTime:
    """A clock that only moves when told to or when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def starts_after(limiter: Limiter, fake: FakeTime, n: int) -> list[float]:
    starts = []
    for _ in range(n):
        await limiter.acquire()
        starts.append(round(fake.now - 100.0, 6))
        limiter.release()
    return starts


async def test_a_lull_under_a_second_is_caught_up():
    """A round waiting for its last reply leaves the grid idle for a moment: the overdue
    calls then start at once, and the grid goes on where it was (never ahead of it)."""
    fake = FakeTime()
    limiter = Limiter(rpm=600, max_concurrency=10, clock=fake.clock, sleep=fake.sleep)  # 0.1 s apart
    assert limiter.burst == 10 and limiter.catch_up_s == pytest.approx(1.0)
    assert await starts_after(limiter, fake, 1) == [0.0]
    fake.now += 0.35  # the lull
    assert await starts_after(limiter, fake, 5) == pytest.approx([0.35, 0.35, 0.35, 0.4, 0.5])


async def test_no_burst_after_idle_time():
    fake = FakeTime()
    limiter = Limiter(rpm=600, max_concurrency=10, clock=fake.clock, sleep=fake.sleep)
    await starts_after(limiter, fake, 1)
    fake.now += 1.5  # longer than catch_up_s: idle time earns no credit for a burst
    assert await starts_after(limiter, fake, 3) == pytest.approx([1.5, 1.6, 1.7])


async def test_no_minute_holds_more_than_rpm_plus_burst_plus_one():
    fake = FakeTime()
    limiter = Limiter(rpm=3000, max_concurrency=10, clock=fake.clock, sleep=fake.sleep)
    starts: list[float] = []
    for lull in [0.0, 0.9, 0.3, 5.0, 0.99, 0.0, 0.5] * 40:  # lulls of every size, between bursts
        fake.now += lull
        starts += await starts_after(limiter, fake, 37)
    worst = max(bisect.bisect_left(starts, a + 60) - i for i, a in enumerate(starts))
    assert len(starts) > 9000 and worst <= 3000 + limiter.burst + 1


async def test_a_hold_restarts_the_grid_without_a_burst():
    fake = FakeTime()
    limiter = Limiter(rpm=600, max_concurrency=10, clock=fake.clock, sleep=fake.sleep)
    await starts_after(limiter, fake, 1)
    limiter.slow_down(0.5)  # a 429: the calls it held back do not all start when it ends
    assert await starts_after(limiter, fake, 3) == pytest.approx([0.5, 0.6, 0.7])


async def test_without_rpm_cap_calls_start_at_once():
    starts = await start_times(Limiter(rpm=None, max_concurrency=20), 20)
    assert starts[-1] - starts[0] < 0.05


async def test_concurrency_is_capped():
    limiter = Limiter(rpm=None, max_concurrency=3)
    running = peak = 0

    async def one() -> None:
        nonlocal running, peak
        await limiter.acquire()
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        limiter.release()

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(one)
    assert peak == 3


async def test_slow_down_holds_every_start():
    limiter = Limiter(rpm=None, max_concurrency=10)
    limiter.slow_down(0.2)
    assert 0.15 < limiter.held_for <= 0.2
    began = time.monotonic()
    starts = await start_times(limiter, 4)
    assert all(s - began >= 0.19 for s in starts)
    assert limiter.held_for == 0.0


async def test_a_shorter_slow_down_never_shortens_a_hold():
    limiter = Limiter(rpm=None, max_concurrency=1)
    limiter.slow_down(0.3)
    limiter.slow_down(0.05)
    assert limiter.held_for > 0.25


async def test_cancelled_waiter_gives_its_slot_back():
    limiter = Limiter(rpm=None, max_concurrency=1)
    limiter.slow_down(0.2)
    with anyio.move_on_after(0.05):  # cancelled while the hold keeps it waiting
        await limiter.acquire()
    with anyio.fail_after(2):
        await limiter.acquire()  # once the hold ends, the one slot is free: the cancelled waiter gave it back
    limiter.release()


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0)])
def test_backoff_is_exponential_with_jitter(attempt, low, high):
    rng = random.Random(1)
    delays = [backoff_delay(attempt, None, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 100  # jittered, not a fixed step


def test_backoff_base_scales_the_schedule(monkeypatch):
    monkeypatch.setattr(limits, "BACKOFF_BASE_S", 0.01)
    assert 0.005 <= backoff_delay(1, None, random.Random(0)) <= 0.01


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (500.0, MAX_RETRY_AFTER_S)])
def test_retry_after_is_honoured_up_to_120_s(retry_after, expected):
    assert backoff_delay(1, retry_after, random.Random(0)) == expected


@pytest.mark.parametrize("attempt", [1, 2, 3])
@pytest.mark.parametrize("retry_after", [0.0, -2.0, 0.001])
def test_retry_after_zero_or_past_never_shortens_the_backoff(attempt, retry_after):
    """`Retry-After: 0` (or a past date, parsed as <= 0) once gave zero-delay retries:
    133 of them in 1.5 s. The exponential backoff is the floor."""
    floor = backoff_delay(attempt, None, random.Random(5))
    assert backoff_delay(attempt, retry_after, random.Random(5)) == floor >= 0.5 * 2 ** (attempt - 1)
