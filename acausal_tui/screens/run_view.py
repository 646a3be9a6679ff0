"""The run screen's view model: what it shows, folded from the engine's events (plain
Python: no Textual, so it is tested without an app and shared with the sweep screen), and
what the headless printer shares with it: the ETA's rule (RoundClock) and its wording."""

from dataclasses import dataclass, field
from pathlib import Path

from engine.calls import UNKNOWN_PRICE
from engine.control import eta_seconds
from engine.events import (
    ErrorLogged,
    Event,
    GameFinished,
    PhaseStarted,
    RoundStarted,
    RoundSummarised,
    RunFinished,
    RunStarted,
    StrategyCollected,
)
from engine.models import ExperimentResult, Manifest, RoundSummary, Validity
from engine.validity import validity_line, verdict


def plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"


def validity_words(validity: Validity | None, simulated: bool = False) -> str:
    """engine.validity.validity_line, except that a run with no moves is not called valid:
    there was nothing to judge (the engine flags no share over its threshold)."""
    if validity is not None and verdict(validity) is None:
        return f"{'SIMULATED ' if simulated else ''}no moves recorded: validity not judged"
    return validity_line(validity, simulated)


@dataclass
class RoundClock:
    """The ETA's one rule, for the headless printer and the run screen: the durations of the
    rounds played live, through engine.control.eta_seconds. A resumed run's first round is
    left out: the calls it logged before the interruption are answered from calls.jsonl,
    not made, so its duration says nothing of the rounds to come; the rounds done before the
    resume count with their recorded durations."""

    durations: list[float] = field(default_factory=list)
    replayed_round: int = 0  # a resumed run's first round (0: not resumed)

    def started(self, first_round: int) -> None:
        self.replayed_round = first_round if first_round > 1 else 0

    def ended(self, summary: RoundSummary) -> None:
        if summary.round != self.replayed_round:
            self.durations.append(summary.duration_s)

    def before(self, summaries: list[RoundSummary]) -> None:
        """The recorded summaries of the rounds done before the resume (any order)."""
        self.durations = [s.duration_s for s in sorted(summaries, key=lambda s: s.round)] + self.durations

    def eta(self, rounds_left: int) -> float | None:
        return eta_seconds(self.durations, rounds_left)


@dataclass
class RunView:
    """What the run screen shows, folded from the engine's events."""

    manifest: Manifest | None = None
    directory: Path | None = None
    round: int = 0
    total_rounds: int = 0
    completed: int = 0
    phase: str = "starting"
    phase_total: int = 0
    phase_done: int = 0
    clock: RoundClock = field(default_factory=RoundClock)
    rates: list[float | None] = field(default_factory=list)  # cooperation of rounds 1, 2, …
    round_moves: int = 0
    round_cooperate: int = 0
    overall_at_round_end: float | None = None
    fallback_share: float | None = None  # moves drawn (fallbacks) of all moves so far
    unpriced: bool = False  # a model has no price: its calls count as $0
    counted_before: int = 0  # moves that count (fallbacks left out) in the summarised rounds
    summary: RoundSummary | None = None
    result: ExperimentResult | None = None

    def apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.manifest, self.directory = event.manifest, event.directory
            self.total_rounds = event.manifest.config.rounds
            self.completed = event.first_round - 1
            self.clock.started(event.first_round)
        elif isinstance(event, RoundStarted):
            self.round, self.total_rounds = event.round, event.total_rounds
            self.round_moves = self.round_cooperate = 0
        elif isinstance(event, PhaseStarted):
            self.phase, self.phase_total, self.phase_done = event.phase, event.total, 0
        elif isinstance(event, StrategyCollected | GameFinished):
            self.phase_done += 1
            if isinstance(event, GameFinished):
                g = event.game  # fallback moves are not the model's choice: not counted
                moves = [
                    a
                    for a, f in ((g.player1_action, g.player1_fallback), (g.player2_action, g.player2_fallback))
                    if f is None
                ]
                self.round_moves += len(moves)
                self.round_cooperate += moves.count("COOPERATE")
        elif isinstance(event, RoundSummarised):
            self.summary = event.summary
            self.completed = event.summary.round
            self.clock.ended(event.summary)
            self.rates.append(event.summary.cooperation_rate)
            self.overall_at_round_end = event.overall_cooperation_rate
            self.fallback_share = event.overall_fallback_rate
            self.counted_before += self.counted_moves(event.summary)
            self.round_moves = self.round_cooperate = 0
        elif isinstance(event, ErrorLogged) and event.record.type == UNKNOWN_PRICE:
            self.unpriced = True
        elif isinstance(event, RunFinished):
            # An unfinished round's games are not part of the result: show the saved figures.
            self.result, self.directory = event.result, event.directory
            self.overall_at_round_end = event.result.acausal_indicators.overall_cooperation_rate
            self.round_moves = self.round_cooperate = 0

    def resumed(self, summaries: list[RoundSummary], first_round: int) -> None:
        """A resumed run: the rounds done before it, from their summary files (read off the
        event loop, so rounds played since may already be in the view: they stay)."""
        done = sorted((s for s in summaries if s.round < first_round), key=lambda s: s.round)
        self.rates = [s.cooperation_rate for s in done] + self.rates
        self.clock.before(done)
        self.counted_before += sum(self.counted_moves(s) for s in done)
        if done and self.summary is None:  # no round summarised since the resume
            self.summary = done[-1]
            if self.overall_at_round_end is None:
                counted = [(s.cooperation_rate, self.counted_moves(s)) for s in done if s.cooperation_rate is not None]
                total = sum(n for _, n in counted)
                self.overall_at_round_end = sum(r * n for r, n in counted) / total if total else None

    def counted_moves(self, summary: RoundSummary) -> int:
        """Every round has 2 moves x n(n-1)/2 games; the fallbacks among them do not count."""
        return self.agents * (self.agents - 1) - summary.fallback_decisions

    @property
    def agents(self) -> int:
        return len(self.manifest.agents) if self.manifest else 0

    def eta(self) -> float | None:
        """Seconds left, by the one rule (RoundClock); None while finished or before a round ends."""
        if self.result is not None:
            return None
        return self.clock.eta(self.total_rounds - self.completed)

    def round_cooperation(self) -> float | None:
        """This round's so far; once it is summarised, its final figure."""
        if self.round_moves:
            return self.round_cooperate / self.round_moves
        if self.summary is not None and self.summary.round == self.round:
            return self.summary.cooperation_rate
        return None

    def overall_cooperation(self) -> float | None:
        """The engine's figure at the last round end, extended by this round's moves so far."""
        before = self.counted_before if self.overall_at_round_end is not None else 0
        base = self.overall_at_round_end or 0.0
        moves = before + self.round_moves if self.overall_at_round_end is not None else self.round_moves
        if not moves:
            return None
        cooperate = base * before if self.overall_at_round_end is not None else 0.0
        return (cooperate + self.round_cooperate) / moves

    def progress(self) -> float:
        """Rounds done, with the share of this round's games played; once over, the saved rounds."""
        if self.result is not None:
            return min(self.total_rounds, self.result.total_rounds)
        within = self.phase_done / self.phase_total if self.phase == "games" and self.phase_total else 0.0
        return min(self.total_rounds, self.completed + within)
