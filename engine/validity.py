"""Whether a run's numbers can be read as model behaviour: the validity block (SPEC §6).

Pure functions over the result records, like engine/analysis.py: fallback moves, follow-up
moves and non-fresh strategies as shares, judged against the `[validity]` thresholds."""

from collections import Counter
from collections.abc import Sequence

from engine.config import ValiditySettings
from engine.models import AgentInfo, GameResult, StrategyRecord, Validity
from engine.moves import all_moves

# A fresh strategy's flags that say its rule was found by a guess (SPEC §4): no marker line,
# more than one, or cut short (at 200 words, or by max_tokens after the marker). `over_limit`
# (past 100 words, kept whole) is not one.
GUESS_FLAGS = frozenset({"marker_missing", "multiple_markers", "truncated"})


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def percent_text(share: float) -> str:
    """12.5% as "12.5", 5% as "5": one decimal at most, no trailing zeros."""
    return f"{round(100 * share, 1):g}"


def _over(name: str, share: float | None, limit: float) -> str | None:
    if share is None or share <= limit:
        return None
    shown, digits = percent_text(share), 2
    while float(shown) <= 100 * limit and digits < 9:  # just over: enough digits to see it
        shown, digits = f"{100 * share:.{digits}f}", digits + 1
    return f"{name} {shown}% > {100 * limit:.6g}%"  # the threshold as configured, not rounded


def compute_validity(
    agents: Sequence[AgentInfo],
    games: Sequence[GameResult],
    strategies: Sequence[StrategyRecord],
    cut_off_replies: int,
    settings: ValiditySettings,
) -> Validity:
    """Whether the run's numbers can be read as model behaviour (SPEC §6).

    Shares are over LLM agents' moves and strategies (scripted ones cannot fail): fallback
    moves / LLM moves, follow-up moves / LLM moves, carried-over or fallback strategies /
    LLM strategies; fresh strategies whose rule extraction was a guess (GUESS_FLAGS) / fresh
    LLM strategies, judged only when `max_flagged_share` is set. A share above its
    threshold makes the run invalid, with the reason. `cut_off_replies` (replies with
    finish_reason "length") is reported, not judged.
    """
    llm = {agent.id for agent in agents if agent.kind == "llm"}
    moves = all_moves(games)
    llm_moves = [m for m in moves if m.player in llm]
    fallback_moves = sum(not m.counted for m in llm_moves)
    follow_ups = sum(m.counted and m.parse_rule == "follow_up" for m in llm_moves)
    sources: Counter[str] = Counter()
    guessed: Counter[str] = Counter()  # fresh strategies by extraction flag, and "any"
    for record in strategies:
        if record.kind == "llm":
            flags = record.flags
            source = "carried_over" if "carried_over" in flags else "fallback" if "fallback" in flags else "fresh"
            sources[source] += 1
            if source == "fresh":
                doubts = GUESS_FLAGS.intersection(flags)
                guessed.update(doubts)
                guessed["any"] += bool(doubts)
    written = sum(sources.values())
    non_fresh_share = _ratio(written - sources["fresh"], written)
    fallback_part = _ratio(fallback_moves, len(llm_moves))
    flagged_share = _ratio(guessed["any"], sources["fresh"])
    limit = settings.max_flagged_share
    reasons = [
        reason
        for reason in (
            _over("fallback moves", fallback_part, settings.max_fallback_share),
            _over("non-fresh strategies", non_fresh_share, settings.max_non_fresh_share),
            None if limit is None else _over("strategies with a guessed rule", flagged_share, limit),
        )
        if reason is not None
    ]
    return Validity(
        valid=not reasons,
        reasons=reasons,
        moves=len(moves),
        model_moves=len(llm_moves) - fallback_moves,
        fallback_moves=fallback_moves,
        fallback_share=fallback_part,
        follow_up_share=_ratio(follow_ups, len(llm_moves)),
        cut_off_replies=cut_off_replies,
        strategies_fresh=sources["fresh"],
        strategies_carried_over=sources["carried_over"],
        strategies_fallback=sources["fallback"],
        non_fresh_share=non_fresh_share,
        strategies_marker_missing=guessed["marker_missing"],
        strategies_multiple_markers=guessed["multiple_markers"],
        strategies_truncated=guessed["truncated"],
        strategies_flagged=guessed["any"],
        flagged_share=flagged_share,
    )


def verdict(validity: Validity | None) -> bool | None:
    """Valid (True), INVALID (False), or neither (None): not recorded (an older file), or a
    run that recorded no move, where no share passed its threshold because there was nothing
    to judge. Every view of a run's validity says it so."""
    if validity is None or (validity.valid and not validity.moves):
        return None
    return validity.valid


def validity_line(validity: Validity | None, simulated: bool = False) -> str:
    """One line for headless output, rows and panes: `valid` or `INVALID: reason; reason`."""
    prefix = "SIMULATED " if simulated else ""
    if validity is None:
        return f"{prefix}validity unknown (recorded before validity checks)"
    if validity.valid:
        return f"{prefix}valid" if validity.moves else f"{prefix}valid (no moves recorded)"
    return f"{prefix}INVALID: {'; '.join(validity.reasons)}"


def guessed_note(validity: Validity | None) -> str | None:
    """One line on the fresh strategies whose rule extraction was a guess: "rule guessed in
    3 of 40 fresh strategies (1 without a STRATEGY: line, 2 with several, 0 cut short); …";
    None when none was, or when the file predates the count."""
    if validity is None or not validity.strategies_flagged:
        return None
    return (
        f"rule guessed in {validity.strategies_flagged} of {validity.strategies_fresh} fresh strategies "
        f"({validity.strategies_marker_missing} without a STRATEGY: line, {validity.strategies_multiple_markers} "
        f"with several, {validity.strategies_truncated} cut short at 200 words or by max_tokens); the flags "
        "are in each strategy record"
    )
