"""Means with seeded percentile-bootstrap confidence intervals, for sweeps over seeds."""

import math
import random
from collections.abc import Sequence
from statistics import fmean

import msgspec

RESAMPLES = 10_000
CONFIDENCE = 0.95


class Interval(msgspec.Struct, kw_only=True):
    """A mean over `n` values and its bootstrap interval [low, high]. mean is None when
    n = 0; low and high are None when n < 2 (one value says nothing about spread)."""

    n: int
    mean: float | None
    low: float | None
    high: float | None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of sorted values, interpolating linearly between the two
    nearest ranks (numpy's default, R's type 7): position q * (n - 1), counted from 0."""
    position = q * (len(sorted_values) - 1)
    below = math.floor(position)
    above = math.ceil(position)
    weight = position - below
    return sorted_values[below] + (sorted_values[above] - sorted_values[below]) * weight


def bootstrap_mean(
    values: Sequence[float],
    rng: random.Random,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap: draw `resamples` samples of len(values) with replacement
    (`rng.choices`), take each one's mean, and cut the sorted means at (1 - confidence) / 2
    and 1 - (1 - confidence) / 2. For a difference between conditions paired by seed, pass
    the per-seed differences."""
    n = len(values)
    if n == 0:
        return Interval(n=0, mean=None, low=None, high=None)
    mean = fmean(values)
    if n == 1:
        return Interval(n=1, mean=mean, low=None, high=None)
    means = sorted(fmean(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - confidence) / 2
    return Interval(n=n, mean=mean, low=percentile(means, tail), high=percentile(means, 1 - tail))
