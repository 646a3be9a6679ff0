"""The shared limiter (rpm spacing, concurrency, 429 hold) and the backoff policy."""

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


async def test_no_burst_after_idle_time():
    limiter = Limiter(rpm=600, max_concurrency=10)  # 100 ms apart
    await start_times(limiter, 1)
    await anyio.sleep(0.3)  # idle time earns no credit for a burst
    starts = await start_times(limiter, 3)
    assert starts[1] - starts[0] >= 0.09 and starts[2] - starts[1] >= 0.09


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
