"""Round summaries (SPEC §6) and cooperation by group; the door to the analysis modules:
the runner, resume and the UI take every analysis name from here. Which moves count is in
engine/moves.py, strategy similarity in engine/similarity.py, the acausal indicators in
engine/indicators.py.

Pure functions over the result records: no I/O, no UI, no randomness. A round's summary is
computed once, when the round ends."""

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

from engine.indicators import (
    ASYMMETRY_THRESHOLD,
    CONVERGENCE_TOLERANCE,
    IDENTITY_MARKERS,
    INDICATOR_DOCS,
    INDICATORS_NOTE,
    SURPRISE_MARKERS,
    compute_indicators,
    has_identity_marker,
    has_surprise_marker,
)
from engine.models import (
    AgentInfo,
    AnonymizedGame,
    CooperationBreakdown,
    Distribution,
    GameResult,
    GroupCooperation,
    PowerDistribution,
    RoundSummary,
)
from engine.moves import (
    COOPERATE,
    Move,
    all_moves,
    cooperation_rate,
    fallback_share,
    fresh_cooperation_rate,
    moves_of,
    mutual_cooperation_rate,
    ratio,
)
from engine.similarity import (
    NOT_FRESH_FLAGS,
    SimilarityTracker,
    is_fresh,
    llm_strategy_texts,
    terms,
)

__all__ = [
    "ASYMMETRY_THRESHOLD",
    "CONVERGENCE_TOLERANCE",
    "COOPERATE",
    "IDENTITY_MARKERS",
    "INDICATORS_NOTE",
    "INDICATOR_DOCS",
    "NOT_FRESH_FLAGS",
    "SURPRISE_MARKERS",
    "Move",
    "SimilarityTracker",
    "agent_group",
    "all_moves",
    "compute_indicators",
    "cooperation_breakdown",
    "cooperation_rate",
    "fallback_share",
    "fresh_cooperation_rate",
    "has_identity_marker",
    "has_surprise_marker",
    "is_fresh",
    "llm_strategy_texts",
    "moves_of",
    "mutual_cooperation_rate",
    "summarize_round",
    "terms",
]


def summarize_round(
    round: int,
    games: Sequence[GameResult],
    agent_count: int,
    powers_after: Sequence[float],
    labels: dict[int, str],
    similarity: float | None,
    duration_s: float,
) -> RoundSummary:
    """The RoundSummary of one finished round.

    `games` are the round's games (kept in the given order in `anonymized_games`);
    `powers_after` the powers by agent id after the round's update; `labels` the round's
    `Player_{r}_{k}` label of every agent that played. An agent's round score is the sum
    of its payoffs this round (0 if it played no game); score statistics are over all
    `agent_count` agents, variance and std are population ones. Cooperation rates are over
    counted moves only (None when no move counts); with no agents (or no powers) the
    corresponding statistics are 0.0.
    """
    scores = [0.0] * agent_count
    for game in games:
        scores[game.player1_id] += game.player1_payoff
        scores[game.player2_id] += game.player2_payoff
    moves = all_moves(games)
    average = sum(scores) / agent_count if agent_count else 0.0
    variance = sum((s - average) ** 2 for s in scores) / agent_count if agent_count else 0.0
    powers = list(powers_after)
    power_mean = sum(powers) / len(powers) if powers else 0.0
    power_var = sum((p - power_mean) ** 2 for p in powers) / len(powers) if powers else 0.0
    return RoundSummary(
        round=round,
        cooperation_rate=cooperation_rate(moves),
        mutual_cooperation_rate=mutual_cooperation_rate(games),
        average_score=average,
        score_variance=variance,
        score_distribution=Distribution(min=min(scores, default=0.0), max=max(scores, default=0.0), avg=average),
        power_distribution=PowerDistribution(
            mean=power_mean,
            std=math.sqrt(power_var),
            min=min(powers, default=0.0),
            max=max(powers, default=0.0),
        ),
        anonymized_games=[
            AnonymizedGame(
                round=game.round,
                anonymous_id1=labels[game.player1_id],
                anonymous_id2=labels[game.player2_id],
                action1=game.player1_action,
                action2=game.player2_action,
                power_ratio=game.player1_power_before / game.player2_power_before,
            )
            for game in games
        ],
        strategy_similarity=similarity,
        fallback_decisions=sum(not m.counted for m in moves),
        duration_s=duration_s,
        agent_scores=scores,
        agent_powers=powers,
        fallback_rate=fallback_share(moves),
        cooperation_rate_fresh=fresh_cooperation_rate(moves),
    )


# --- cooperation by group -----------------------------------------------------------------


def agent_group(agent: AgentInfo) -> str:
    """LLM agents are grouped by their (main model, sub model), scripted ones by strategy."""
    if agent.kind == "scripted":
        return f"scripted:{agent.strategy}"
    return f"{agent.model} / {agent.sub_model}"


def cooperation_breakdown(agents: Sequence[AgentInfo], games: Sequence[GameResult]) -> CooperationBreakdown:
    """Cooperation rates by group (in order of first agent id), and in-group vs out-group:
    a move is in-group when the mover and its opponent belong to the same group. Rates are
    over counted moves (fallbacks are left out and counted beside) and None where no move
    counts; per-round rates cover rounds 1..last played."""
    group_of = {agent.id: agent_group(agent) for agent in agents}
    names = list(dict.fromkeys(group_of[agent.id] for agent in agents))
    last_round = max((game.round for game in games), default=0)
    # tallies[group][key] = [cooperate moves, counted moves]; key: "all", "in", "out" or a round
    tallies: dict[str, dict[str | int, list[int]]] = {name: defaultdict(lambda: [0, 0]) for name in names}
    fallbacks: Counter[str] = Counter()
    for game in games:
        for move in moves_of(game):
            group = group_of[move.player]
            if not move.counted:
                fallbacks[group] += 1
                continue
            side = "in" if group == group_of[move.opponent] else "out"
            for key in ("all", side, game.round):
                tally = tallies[group][key]
                tally[0] += move.action == COOPERATE
                tally[1] += 1

    def rate(name: str, key: str | int) -> float | None:
        cooperated, moves = tallies[name].get(key, (0, 0))
        return ratio(cooperated, moves)

    def total_rate(key: str) -> float | None:
        counts = [tallies[name].get(key, (0, 0)) for name in names]
        return ratio(sum(c for c, _ in counts), sum(n for _, n in counts))

    return CooperationBreakdown(
        groups=[
            GroupCooperation(
                group=name,
                agents=[agent.id for agent in agents if group_of[agent.id] == name],
                moves=tallies[name].get("all", (0, 0))[1],
                cooperation_rate=rate(name, "all"),
                in_group_cooperation_rate=rate(name, "in"),
                out_group_cooperation_rate=rate(name, "out"),
                cooperation_per_round=[rate(name, r) for r in range(1, last_round + 1)],
                fallback_moves=fallbacks[name],
            )
            for name in names
        ],
        in_group_cooperation_rate=total_rate("in"),
        out_group_cooperation_rate=total_rate("out"),
    )
