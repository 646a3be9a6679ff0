"""The statistics of sweep.json: what a finished experiment contributes to its cell, which
cells count, and per condition the mean and Student-t interval of every metric, the paired
differences from the reference condition, and convergence as "k of n seeds"."""

import msgspec

from engine.models import ExperimentResult, Status
from engine.stats import NEAR_BOUND, NOTE_NEAR_BOUND, NOTE_TOO_FEW, Interval, median, t_interval
from engine.sweep_file import (
    CONVERGENCE,
    INTERVAL_METRICS,
    SHARE_METRICS,
    ConditionStats,
    Convergence,
    Difference,
    Excluded,
    SweepResult,
    SweepRun,
)


def experiment_values(result: ExperimentResult) -> tuple[dict[str, float | None], list[float]]:
    """The indicators (and in- vs out-group cooperation) and the per-round cooperation of
    one experiment."""
    metrics: dict[str, float | None] = msgspec.structs.asdict(result.acausal_indicators)
    breakdown = result.cooperation_breakdown
    metrics["in_group_cooperation_rate"] = breakdown.in_group_cooperation_rate if breakdown else None
    metrics["out_group_cooperation_rate"] = breakdown.out_group_cooperation_rate if breakdown else None
    return metrics, [s.cooperation_rate for s in result.round_summaries]


def record_outcome(run: SweepRun, result: ExperimentResult) -> None:
    """Copy what the statistics use from a finished experiment into its grid cell."""
    run.status, run.message = result.status, result.message
    run.rounds = result.total_rounds
    run.metrics, run.cooperation_per_round = experiment_values(result)
    validity = result.validity
    run.valid = None if validity is None else validity.valid
    run.invalid_reasons = [] if validity is None or validity.valid else list(validity.reasons)
    run.strategies_fresh = None if validity is None else validity.strategies_fresh
    run.strategies_flagged = None if validity is None else validity.strategies_flagged
    run.unclean_stops = result.unclean_stops


def unclean_line(result: SweepResult) -> str | None:
    """How many experiments were resumed after a kill or crash (their calls and cost leave
    out the calls then in flight), or None."""
    killed = [run for run in result.experiments if run.unclean_stops]
    if not killed:
        return None
    return (
        f"{len(killed)} experiment(s) resumed after a kill or crash: any calls in flight then, and replies "
        "not yet logged, are in neither their calls nor their cost"
    )


def guessed_line(result: SweepResult) -> str | None:
    """How many of the counted experiments' fresh strategies had their rule guessed (SPEC §4's
    flags), in all and per condition — a condition whose replies are more often guessed
    differs in more than behaviour; None when none was (or none was recorded)."""
    by_condition: dict[str, list[int]] = {}
    for run in result.experiments:
        if counted(run) and run.strategies_flagged is not None and run.strategies_fresh is not None:
            sums = by_condition.setdefault(run.condition, [0, 0])
            sums[0] += run.strategies_flagged
            sums[1] += run.strategies_fresh
    flagged = sum(f for f, _ in by_condition.values())
    if not flagged:
        return None
    fresh = sum(n for _, n in by_condition.values())
    each = ", ".join(f"{condition} {f} of {n}" for condition, (f, n) in by_condition.items())
    return f"rule guessed in {flagged} of {fresh} fresh strategies of the counted experiments ({each})"


def sweep_status(statuses: list[str]) -> Status:
    for status in ("aborted", "failed", "budget_exceeded"):
        if status in statuses:
            return status  # type: ignore[return-value]
    return "completed"


def counted(run: SweepRun) -> bool:
    """Completed and not invalid: what the intervals are over (validity not recorded counts,
    and sweep.json lists it in validity_not_recorded)."""
    return run.status == "completed" and run.valid is not False


def excluded(result: SweepResult) -> list[Excluded]:
    return [
        Excluded(condition=run.condition, seed=run.seed, directory=run.directory, reasons=run.invalid_reasons)
        for run in result.experiments
        if run.status == "completed" and run.valid is False
    ]


def summarize(result: SweepResult) -> tuple[list[ConditionStats], list[Difference]]:
    """Means and t-intervals over the counted experiments of each condition; differences
    over the seeds where both the condition and the reference were counted (and, per
    metric, where both have a value)."""
    done: dict[str, dict[int, SweepRun]] = {label: {} for label in result.conditions}
    for run in result.experiments:
        if counted(run):
            done[run.condition][run.seed] = run
    # per-round entries for every round any completed experiment played, counted or not
    rounds = max((len(run.cooperation_per_round) for run in result.experiments if run.status == "completed"), default=0)

    def interval(values: list[float | None], share: bool = True, difference: bool = False) -> Interval:
        iv = t_interval([float(v) for v in values if v is not None])
        if not values:  # no counted seed at all (not "none has this metric"): more valid seeds would give one
            iv = msgspec.structs.replace(iv, note=NOTE_TOO_FEW)
        if share and iv.low is not None and iv.high is not None:
            floor = -1.0 if difference else 0.0
            iv = msgspec.structs.replace(iv, low=max(iv.low, floor), high=min(iv.high, 1.0))
            if not difference and iv.mean is not None and not NEAR_BOUND < iv.mean < 1 - NEAR_BOUND:
                note = "; ".join(filter(None, (iv.note, NOTE_NEAR_BOUND)))
                iv = msgspec.structs.replace(iv, note=note)
        return iv

    summary = []
    for label, runs in done.items():
        cells = list(runs.values())
        summary.append(
            ConditionStats(
                condition=label,
                metrics={m: interval([c.metrics.get(m) for c in cells], m in SHARE_METRICS) for m in INTERVAL_METRICS},
                cooperation_per_round=[interval([round_rate(c, r) for c in cells]) for r in range(1, rounds + 1)],
                convergence=convergence(cells),
            )
        )
    reference = result.conditions[0]
    differences = []
    for label in result.conditions[1:]:
        pairs = [(done[label][s], done[reference][s]) for s in sorted(done[label]) if s in done[reference]]
        differences.append(
            Difference(
                condition=label,
                reference=reference,
                metrics={
                    m: interval(
                        [minus(a.metrics.get(m), b.metrics.get(m)) for a, b in pairs],
                        m in SHARE_METRICS,
                        difference=True,
                    )
                    for m in INTERVAL_METRICS
                },
                cooperation_per_round=[
                    interval([minus(round_rate(a, r), round_rate(b, r)) for a, b in pairs], difference=True)
                    for r in range(1, rounds + 1)
                ],
            )
        )
    return summary, differences


def convergence(runs: list[SweepRun]) -> Convergence:
    rounds = [float(v) for run in runs if (v := run.metrics.get(CONVERGENCE)) is not None]
    return Convergence(converged=len(rounds), n=len(runs), median_round=median(rounds))


def convergence_text(value: Convergence | None) -> str:
    """'converged in 3 of 10 seeds (median round 4)'."""
    if value is None:
        return "not recorded"
    text = f"converged in {value.converged} of {value.n} seeds"
    return text + (f" (median round {value.median_round:g})" if value.median_round is not None else "")


def round_rate(run: SweepRun, round: int) -> float | None:
    rates = run.cooperation_per_round
    return rates[round - 1] if round <= len(rates) else None


def minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
