"""Student-t intervals: the t quantile against published values, intervals against
hand-computed ones, and the coverage of a known truth by many small seeded sweeps."""

import random

import pytest

from engine.stats import (
    NOTE_NEAR_BOUND,
    NOTE_NO_SPREAD,
    NOTE_NO_VALUE,
    NOTE_TOO_FEW,
    NOTE_WIDE,
    Interval,
    median,
    t_cdf,
    t_interval,
    t_quantile,
)
from engine.sweep import IntervalMethod, SweepResult, SweepRun, summarize
from tests.support.sweeps import bare_sweep


@pytest.mark.parametrize(
    "df, expected",
    [
        (1, 12.706),
        (2, 4.303),
        (3, 3.182),
        (4, 2.776),
        (5, 2.571),
        (9, 2.262),
        (19, 2.093),
        (29, 2.045),
        (120, 1.980),
        (100_000, 1.960),
    ],
)
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


def test_t_quantile_at_other_levels_and_the_distribution_function():
    assert t_quantile(0.995, 5) == pytest.approx(4.032, abs=5e-4)
    assert t_quantile(0.95, 10) == pytest.approx(1.812, abs=5e-4)
    assert t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-9)
    assert t_cdf(0.0, 3) == pytest.approx(0.5)
    assert t_cdf(-2.262, 9) == pytest.approx(0.025, abs=1e-4)
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    with pytest.raises(ValueError):
        t_quantile(0.975, 0)


def test_interval_on_hand_computed_examples():
    # [0.2, 0.4, 0.9]: mean 0.5, s = sqrt(0.26 / 2) = 0.360555, s/sqrt(3) = 0.208167,
    # half width 4.302653 x 0.208167 = 0.895669
    interval = t_interval([0.2, 0.4, 0.9])
    assert interval.n == 3 and interval.mean == pytest.approx(0.5)
    assert interval.low == pytest.approx(-0.395669, abs=1e-6)
    assert interval.high == pytest.approx(1.395669, abs=1e-6)
    assert interval.note == NOTE_WIDE
    # 1..10: mean 5.5, s = sqrt(82.5 / 9) = 3.027650, s/sqrt(10) = 0.957427,
    # half width 2.262157 x 0.957427 = 2.165851
    interval = t_interval([float(i) for i in range(1, 11)])
    assert (interval.low, interval.high) == (pytest.approx(3.334149, abs=1e-6), pytest.approx(7.665851, abs=1e-6))
    assert interval.note is None


def test_paired_difference_is_the_interval_of_per_seed_differences():
    identity = [0.50, 0.60, 0.70, 0.40]
    baseline = [0.45, 0.50, 0.65, 0.42]
    # differences 0.05, 0.10, 0.05, -0.02: mean 0.045, squared deviations sum 0.0073,
    # s = sqrt(0.0073 / 3) = 0.049329, s/2 = 0.024664, half width 3.182446 x 0.024664 = 0.078493
    interval = t_interval([a - b for a, b in zip(identity, baseline, strict=True)])
    assert interval.mean == pytest.approx(0.045)
    assert interval.low == pytest.approx(-0.033493, abs=1e-6)
    assert interval.high == pytest.approx(0.123493, abs=1e-6)


def test_too_few_seeds_give_no_interval():
    # said, and not as "too small": more seeds of the same design would not give a value
    assert t_interval([]) == Interval(n=0, mean=None, low=None, high=None, note=NOTE_NO_VALUE)
    assert t_interval([0.3]) == Interval(n=1, mean=0.3, low=None, high=None, note=NOTE_TOO_FEW)
    assert t_interval([0.3, 0.5]) == Interval(n=2, mean=0.4, low=None, high=None, note=NOTE_TOO_FEW)
    assert t_interval([0.5, 0.6, 0.7]).note == NOTE_WIDE


def test_no_spread_gives_no_interval():
    """Three seeds at 100% used to read "100.0% [95% CI 100.0, 100.0]": a zero-width
    interval is no measure of uncertainty (the original study's "100% cooperation")."""
    assert t_interval([1.0, 1.0, 1.0]) == Interval(n=3, mean=1.0, low=None, high=None, note=NOTE_NO_SPREAD)
    assert t_interval([0.0] * 12).note == NOTE_NO_SPREAD
    assert t_interval([0.7 - 0.6, 0.8 - 0.7, 0.9 - 0.8]).note == NOTE_NO_SPREAD  # equal but for rounding


def test_median():
    assert median([]) is None
    assert median([4.0]) == 4.0
    assert median([7.0, 2.0, 3.0]) == 3.0
    assert median([1.0, 9.0, 2.0, 4.0]) == 3.0


def cell(condition: str, seed: int, rate: float) -> SweepRun:
    return SweepRun(
        condition=condition,
        seed=seed,
        directory=f"exp_{condition}_s{seed}",
        status="completed",
        rounds=1,
        metrics={"overall_cooperation_rate": rate},
        cooperation_per_round=[rate],
        valid=True,
    )


@pytest.mark.parametrize("seeds", [3, 10])
def test_sweep_intervals_cover_a_known_truth_95_percent_of_the_time(seeds):
    """2000 small seeded sweeps of a population whose true cooperation rate is 0.3 (each
    seed: 45 moves, each cooperative with p = 0.3) and of a second condition with the same
    truth: the condition's interval covers 0.3, and the paired difference's covers 0, in
    about 95% of the sweeps. (A percentile bootstrap covers ~73% at 3 seeds.)"""
    template = bare_sweep(["a", "b"], list(range(seeds)), intervals=IntervalMethod(), experiments=[])
    rng = random.Random(seeds)
    replicates, covered, difference_covered = 2000, 0, 0
    for _ in range(replicates):
        template.experiments = [
            cell(condition, seed, sum(rng.random() < 0.3 for _ in range(45)) / 45)
            for condition in ("a", "b")
            for seed in range(seeds)
        ]
        summary, [difference] = summarize(template)
        interval = summary[0].metrics["overall_cooperation_rate"]
        assert interval.n == seeds
        covered += interval.low is not None and interval.low <= 0.3 <= interval.high
        gap = difference.metrics["overall_cooperation_rate"]  # no interval (no spread): a miss
        difference_covered += gap.low is not None and gap.low <= 0.0 <= gap.high
    assert 0.93 <= covered / replicates <= 0.97
    assert 0.93 <= difference_covered / replicates <= 0.97


def test_share_intervals_are_clipped_to_the_range_a_share_can_take():
    """Three seeds near 100%: the raw t-interval passes 1; a share's is cut at 1 (and a
    difference's at -1), which cannot lose the truth. A non-share metric is left alone."""
    result = bare_sweep(["a", "b"], [0, 1, 2], intervals=IntervalMethod(), experiments=[])
    result.experiments = [cell("a", s, v) for s, v in enumerate((0.0, 0.05, 0.3))]
    result.experiments += [cell("b", s, v) for s, v in enumerate((1.0, 0.95, 0.7))]
    for run in result.experiments:
        run.metrics["cooperation_trend"] = run.metrics["overall_cooperation_rate"]
    [a, b], [difference] = summarize(result)
    raw = t_interval([1.0, 0.95, 0.7])
    assert raw.high > 1 and b.metrics["overall_cooperation_rate"].high == 1.0
    assert b.metrics["overall_cooperation_rate"].low == raw.low
    assert a.metrics["overall_cooperation_rate"].low == 0.0
    assert b.metrics["cooperation_trend"].high == raw.high  # a slope, not a share
    assert difference.metrics["overall_cooperation_rate"].high <= 1.0


def sweep_of(rates: dict[str, list[float]]) -> SweepResult:
    conditions = list(rates)
    return bare_sweep(
        conditions,
        list(range(len(rates[conditions[0]]))),
        intervals=IntervalMethod(),
        experiments=[cell(c, seed, rate) for c in conditions for seed, rate in enumerate(rates[c])],
    )


def test_a_share_near_0_or_100_percent_says_its_interval_covers_less():
    summary, [difference] = summarize(sweep_of({"a": [0.95, 0.97, 1.0, 0.93], "b": [0.4, 0.5, 0.6, 0.45]}))
    near, middle = (s.metrics["overall_cooperation_rate"] for s in summary)
    assert near.low is not None and near.note == f"{NOTE_WIDE}; {NOTE_NEAR_BOUND}"
    assert middle.note == NOTE_WIDE and NOTE_NEAR_BOUND not in (
        difference.metrics["overall_cooperation_rate"].note or ""
    )
    assert summary[0].cooperation_per_round[0].note == f"{NOTE_WIDE}; {NOTE_NEAR_BOUND}"


def test_near_the_ceiling_the_t_interval_covers_less_than_it_says():
    """Why the note: per-seed rates bunched at 100% (true rate 0.97, 30 moves a seed, with
    run-to-run spread) are far from normal, and over 3 seeds the t interval covers the truth
    well under 95% of the time (docs/statistics.md gives the measured figures)."""
    rng = random.Random(7)
    covered = claimed = 0
    for _ in range(1000):
        rates = []
        for _seed in range(3):
            p = min(1.0, max(0.0, rng.gauss(0.97, 0.03)))
            rates.append(sum(rng.random() < p for _ in range(30)) / 30)
        summary, _ = summarize(sweep_of({"a": rates}))
        interval = summary[0].metrics["overall_cooperation_rate"]
        truth = 0.9676  # E[p] after the clamp at 1 (computed by simulation)
        claimed += interval.low is not None
        covered += interval.low is not None and interval.low <= truth <= interval.high
        if interval.low is not None and interval.mean >= 0.9:
            assert NOTE_NEAR_BOUND in (interval.note or "")
    assert covered / 1000 < 0.9  # the note is warranted
    assert claimed < 1000  # and some sweeps had no spread at all: no interval, not [100, 100]


def test_an_empty_interval_says_whether_more_seeds_would_help():
    """No counted seed at all (every one left out as INVALID): 'n too small', as more valid
    seeds would give a value; counted seeds none of which has the metric (no out-group in a
    one-group population): 'no seed has a value', which more seeds would not change."""
    result = sweep_of({"a": [0.5, 0.6, 0.7], "b": [0.4, 0.5, 0.6]})
    for run in result.experiments:
        if run.condition == "b":
            run.valid = False
    summary, [difference] = summarize(result)
    left_out = summary[1].metrics["overall_cooperation_rate"]
    assert (left_out.n, left_out.note) == (0, NOTE_TOO_FEW)
    assert difference.metrics["overall_cooperation_rate"].note == NOTE_TOO_FEW
    assert summary[0].metrics["out_group_cooperation_rate"].note == NOTE_NO_VALUE
