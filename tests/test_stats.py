"""Bootstrap intervals, checked on hand-computed examples."""

import random

import pytest

from engine.stats import Interval, bootstrap_mean, percentile


class ScriptedRng:
    """Stands in for random.Random: `choices` returns the given resamples in turn."""

    def __init__(self, resamples: list[list[float]]) -> None:
        self.resamples = iter(resamples)

    def choices(self, population: list[float], k: int) -> list[float]:
        sample = next(self.resamples)
        assert len(sample) == k and set(sample) <= set(population)
        return sample


def test_percentile_interpolates_between_ranks():
    values = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert percentile(values, 0.0) == 10.0
    assert percentile(values, 1.0) == 50.0
    assert percentile(values, 0.5) == 30.0
    # position 0.025 * 4 = 0.1: 10 + 0.1 * (20 - 10)
    assert percentile(values, 0.025) == pytest.approx(11.0)
    # position 0.975 * 4 = 3.9: 40 + 0.9 * (50 - 40)
    assert percentile(values, 0.975) == pytest.approx(49.0)
    assert percentile([7.0], 0.3) == 7.0


def test_bootstrap_on_a_hand_computed_example():
    values = [0.2, 0.4, 0.9]
    resamples = [
        [0.2, 0.2, 0.2],  # mean 0.2
        [0.2, 0.4, 0.9],  # 0.5
        [0.9, 0.9, 0.4],  # 0.7333...
        [0.4, 0.4, 0.2],  # 0.3333...
        [0.9, 0.9, 0.9],  # 0.9
    ]
    interval = bootstrap_mean(values, ScriptedRng(resamples), resamples=5, confidence=0.5)
    # sorted means: 0.2, 0.3333, 0.5, 0.7333, 0.9; confidence 0.5 cuts at q = 0.25 and 0.75,
    # positions 1 and 3 exactly
    assert interval.n == 3
    assert interval.mean == pytest.approx(0.5)
    assert interval.low == pytest.approx(1 / 3)
    assert interval.high == pytest.approx(0.7333333333)
    # 95%: positions 0.025 * 4 = 0.1 and 0.975 * 4 = 3.9
    interval = bootstrap_mean(values, ScriptedRng(resamples), resamples=5)
    assert interval.low == pytest.approx(0.2 + 0.1 * (1 / 3 - 0.2))
    assert interval.high == pytest.approx(0.7333333333 + 0.9 * (0.9 - 0.7333333333))


def test_seeded_bootstrap_matches_the_exact_distribution():
    # Resample means of [0, 1] (n = 2): 0 with p 1/4, 0.5 with p 1/2, 1 with p 1/4, so the
    # 2.5% and 97.5% points of a large seeded bootstrap are 0 and 1.
    interval = bootstrap_mean([0.0, 1.0], random.Random(42), resamples=4000)
    assert interval == Interval(n=2, mean=0.5, low=0.0, high=1.0)
    # Means of [0, 0, 0, 1] (n = 4): P(mean = 0) = (3/4)^4 = 0.316 > 2.5%, and
    # P(mean >= 0.75) = 13/256 = 5.1%, P(mean = 1) = 1/256 < 2.5%, so high = 0.5 or 0.75.
    interval = bootstrap_mean([0.0, 0.0, 0.0, 1.0], random.Random(42), resamples=4000)
    assert interval.low == 0.0 and interval.high in (0.5, 0.75)


def test_bootstrap_is_reproducible_from_its_seed():
    values = [0.61, 0.55, 0.72, 0.68, 0.49]
    first = bootstrap_mean(values, random.Random(7), resamples=500)
    assert first == bootstrap_mean(values, random.Random(7), resamples=500)
    assert first != bootstrap_mean(values, random.Random(8), resamples=500)
    assert first.low is not None and first.high is not None
    assert min(values) <= first.low < first.mean < first.high <= max(values)


def test_degenerate_samples():
    assert bootstrap_mean([], random.Random(1)) == Interval(n=0, mean=None, low=None, high=None)
    assert bootstrap_mean([0.3], random.Random(1)) == Interval(n=1, mean=0.3, low=None, high=None)
    assert bootstrap_mean([0.5, 0.5, 0.5], random.Random(1), resamples=50) == Interval(
        n=3, mean=0.5, low=0.5, high=0.5
    )
