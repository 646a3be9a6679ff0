"""What the next round depends on, advanced a round at a time by the runner, or rebuilt
from the round files on resume (`Restored`, passed to the `Experiment` it continues)."""

from dataclasses import dataclass, field

import msgspec

from engine import analysis, game
from engine.conditions import Condition
from engine.models import AgentInfo, CallRecord, GameResult, Manifest, RoundSummary, StrategyRecord
from engine.moves import MoveTally
from engine.prompts import SAMPLE_ROUNDS
from engine.views import History


@dataclass
class ExperimentState:
    """Everything the next round depends on, and no more: the games and strategies of the
    rounds played are on disk, not here (the result is computed from the round files,
    engine/runner.py), and a summary older than the strategy prompts show keeps its
    figures but not its anonymised games. So memory does not grow with every game played."""

    powers: list[float]
    total_scores: list[float]
    history: History  # what each LLM agent's decisions see
    strategies: dict[int, StrategyRecord] = field(default_factory=dict)  # latest per agent
    pair_history: dict[tuple[int, int], list[tuple[str, str]]] = field(default_factory=dict)  # scripted agents'
    summaries: list[RoundSummary] = field(default_factory=list)
    moves: MoveTally = field(default_factory=MoveTally)  # every move so far, counted
    similarity: analysis.SimilarityTracker = field(default_factory=analysis.SimilarityTracker)

    @classmethod
    def start(cls, seed: int, agents: list[AgentInfo], condition: Condition) -> "ExperimentState":
        """The state before round 1."""
        readers = [a.id for a in agents if a.kind == "llm"]  # only scripted agents read pair history
        return cls(
            powers=[a.initial_power for a in agents],
            total_scores=[0.0] * len(agents),
            history=History(seed, len(agents), condition, readers),
        )

    def add_round(
        self,
        round: int,
        strategies: list[StrategyRecord],
        games: list[GameResult],
        dynamics: bool,
        labels: dict[int, str],
        duration_ms: float,
    ) -> RoundSummary:
        """A round just played: scores, powers (when they move), similarity and history
        updated, and its summary."""
        scores = [0.0] * len(self.powers)
        for g in games:
            scores[g.player1_id] += g.player1_payoff
            scores[g.player2_id] += g.player2_payoff
        if dynamics:
            self.powers = game.update_powers(self.powers, scores)
        similarity = self.similarity.add_round(analysis.llm_strategy_texts(strategies))
        summary = analysis.summarize_round(
            round, games, len(scores), list(self.powers), labels, similarity, duration_ms
        )
        self.total_scores = [t + s for t, s in zip(self.total_scores, scores, strict=True)]
        self.add_games(round, games)
        self.add_summary(summary)
        return summary

    def add_games(self, round: int, games: list[GameResult]) -> None:
        """Append the round's games to each player's history, in game order, and count
        their moves."""
        self.history.add_round(round, games)
        self.moves.add(games)
        readers = self.history.readers
        for g in games:
            for me, other, mine, theirs in (
                (g.player1_id, g.player2_id, g.player1_action, g.player2_action),
                (g.player2_id, g.player1_id, g.player2_action, g.player1_action),
            ):
                if me not in readers:
                    self.pair_history.setdefault((me, other), []).append((mine, theirs))

    def add_summary(self, summary: RoundSummary) -> None:
        """The round's summary; the one that just left the prompts' last SAMPLE_ROUNDS
        rounds keeps its figures only (its file has the anonymised games)."""
        self.summaries.append(summary)
        if len(self.summaries) > SAMPLE_ROUNDS:
            old = self.summaries[-SAMPLE_ROUNDS - 1]
            if old.anonymized_games:
                self.summaries[-SAMPLE_ROUNDS - 1] = msgspec.structs.replace(old, anonymized_games=[])

    def add_saved_round(self, strategies: list[StrategyRecord], games: list[GameResult], summary: RoundSummary) -> None:
        """A round read back from its files (resume): as if it had just been played."""
        self.add_games(summary.round, games)
        self.add_summary(summary)
        self.similarity.add_round(analysis.llm_strategy_texts(strategies))
        self.strategies.update((s.agent_id, s) for s in strategies)
        self.total_scores = [t + s for t, s in zip(self.total_scores, summary.agent_scores, strict=True)]
        self.powers = list(summary.agent_powers)


@dataclass
class Restored:
    """Where an interrupted run stood after its last complete round (engine/resume.py)."""

    state: ExperimentState
    manifest: Manifest  # as recorded: the run keeps its start time
    replay: dict[str, CallRecord]  # key -> a recorded successful call of a round played again
    cut_off: set[str]  # the keys of every recorded reply cut off by max_tokens
    calls: int
    retries: int
    cost: float
    empty_replies: int
    cost_is_estimate: bool
    budget_reached: bool  # stopped by the budget and resumed without a larger one
    error_count: int  # the logged errors an uninterrupted run would count
    notes: list[str]  # what was repaired or ignored: logged as `resume_repair` errors
