"""Student-t confidence intervals of a mean over seeds (SPEC §7), with the t quantile
computed from the regularized incomplete beta function (no numerical dependency)."""

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import fmean, stdev

import msgspec

CONFIDENCE = 0.95
MIN_SEEDS = 3  # fewer valid seeds: no interval at all
WIDE_BELOW = 10  # fewer valid seeds: the interval is wide by nature, and says so
METHOD = (
    f"Student-t {100 * CONFIDENCE:.0f}% interval of the mean of per-seed values "
    f"(df = n - 1); differences between conditions: paired t over the seeds both completed; "
    f"no interval below {MIN_SEEDS} valid seeds"
)
NOTE_TOO_FEW = "n too small"
# No seed has a value (no out-group in a one-group population, say): more seeds of the same
# design would not give one, so "n too small" would mislead.
NOTE_NO_VALUE = "no seed has a value"
NOTE_WIDE = f"fewer than {WIDE_BELOW} seeds: wide by nature"
# Every seed gave the same value: s = 0 would make a zero-width "interval", which is no
# measure of uncertainty (3 seeds at 100% are not certainty): no interval.
NOTE_NO_SPREAD = "no spread: every seed gave the same value"
NO_SPREAD_BELOW = 1e-9  # values closer than this are the same value (float rounding aside)
# A share whose mean is this close to 0 or 1: per-seed values bunch at the bound and t
# covers the truth less often than it says (docs/statistics.md has the measured coverage).
NEAR_BOUND = 0.1
NOTE_NEAR_BOUND = "near 0% or 100%: covers less than 95%"


class Interval(msgspec.Struct, kw_only=True):
    """A mean over `n` values and its interval [low, high]. mean is None when n = 0; low and
    high are None when n < MIN_SEEDS; `note` says why there is no interval, or that it is
    wide by nature."""

    n: int
    mean: float | None
    low: float | None
    high: float | None
    note: str | None = None


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """mean ± t_{(1+confidence)/2, n-1} × s / √n, s the sample standard deviation. For a
    difference between two conditions paired by seed, pass the per-seed differences."""
    n = len(values)
    if n == 0:
        return Interval(n=0, mean=None, low=None, high=None, note=NOTE_NO_VALUE)
    mean = fmean(values)
    if n < MIN_SEEDS:
        return Interval(n=n, mean=mean, low=None, high=None, note=NOTE_TOO_FEW)
    if max(values) - min(values) <= NO_SPREAD_BELOW:
        return Interval(n=n, mean=mean, low=None, high=None, note=NOTE_NO_SPREAD)
    half = t_quantile((1 + confidence) / 2, n - 1) * stdev(values) / math.sqrt(n)
    return Interval(n=n, mean=mean, low=mean - half, high=mean + half, note=NOTE_WIDE if n < WIDE_BELOW else None)


@lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (0.5 <= p < 1), found by
    bisection on the distribution function to ~1e-12."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile: need 0.5 <= p < 1 and df >= 1 (got p={p}, df={df})")
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12:
            break
    return (low + high) / 2


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t: 1 - I_x(df/2, 1/2) / 2 with x = df / (df + t²), t >= 0."""
    tail = regularized_beta(df / (df + t * t), df / 2, 0.5) / 2
    return 1 - tail if t >= 0 else tail


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) by its continued fraction (modified Lentz), using the symmetry
    I_x(a, b) = 1 - I_{1-x}(b, a) where the fraction converges slowly."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):
        return 1 - regularized_beta(1 - x, b, a)
    return math.exp(log_front) * _beta_fraction(x, a, b) / a


def _beta_fraction(x: float, a: float, b: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return result


def median(values: Sequence[float]) -> float | None:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
