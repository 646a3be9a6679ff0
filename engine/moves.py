"""Which moves count, and cooperation rates over them. A counted move is one a model or a
scripted rule decided: fallback moves (drawn when no reply could be read) are kept in the
records but never counted as a choice (SPEC §6)."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from engine.models import GameResult

COOPERATE = "COOPERATE"


class Move(NamedTuple):
    """One player's move in a game, seen from the mover."""

    player: int
    opponent: int
    action: str
    fallback: str | None  # the reason, when the move was drawn instead of read
    parse_rule: str | None  # None in files written before parse rules were recorded
    strategy_source: str | None

    @property
    def counted(self) -> bool:
        """Decided by a model reply or a scripted rule, not drawn as a fallback."""
        return self.fallback is None

    @property
    def fresh(self) -> bool:
        """Counted, and played under a strategy written this round (or a scripted rule).
        Unknown sources (old files) are not fresh."""
        return self.counted and self.strategy_source in ("fresh", "scripted")


def moves_of(game: GameResult) -> tuple[Move, Move]:
    return (
        Move(
            game.player1_id,
            game.player2_id,
            game.player1_action,
            game.player1_fallback,
            game.player1_parse_rule,
            game.player1_strategy_source,
        ),
        Move(
            game.player2_id,
            game.player1_id,
            game.player2_action,
            game.player2_fallback,
            game.player2_parse_rule,
            game.player2_strategy_source,
        ),
    )


def all_moves(games: Iterable[GameResult]) -> list[Move]:
    return [move for game in games for move in moves_of(game)]


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator / denominator; None (never 0) when the denominator is 0."""
    return numerator / denominator if denominator else None


def cooperation_rate(moves: Iterable[Move]) -> float | None:
    """COOPERATE / counted moves; None when no move counts (never 0 for "nothing")."""
    counted = [m for m in moves if m.counted]
    return ratio(sum(m.action == COOPERATE for m in counted), len(counted))


def fresh_cooperation_rate(moves: Iterable[Move]) -> float | None:
    fresh = [m for m in moves if m.fresh]
    return ratio(sum(m.action == COOPERATE for m in fresh), len(fresh))


def fallback_share(moves: Sequence[Move]) -> float | None:
    return ratio(sum(not m.counted for m in moves), len(moves))


def mutual_cooperation_rate(games: Iterable[GameResult]) -> float | None:
    """Games where both cooperated / games where both moves count."""
    both = [g for g in games if g.player1_fallback is None and g.player2_fallback is None]
    return ratio(sum(_cooperate_count(g) == 2 for g in both), len(both))


def _cooperate_count(game: GameResult) -> int:
    return (game.player1_action == COOPERATE) + (game.player2_action == COOPERATE)


@dataclass
class MoveTally:
    """Counts over every move so far, for the run's overall cooperation rate and fallback
    share after each round without keeping the games (the same figures as
    `cooperation_rate` and `fallback_share` over all the moves)."""

    moves: int = 0
    counted: int = 0
    cooperated: int = 0  # counted moves that cooperate

    def add(self, games: Iterable[GameResult]) -> None:
        for game in games:
            for move in moves_of(game):
                self.moves += 1
                if move.counted:
                    self.counted += 1
                    self.cooperated += move.action == COOPERATE

    @property
    def cooperation_rate(self) -> float | None:
        return ratio(self.cooperated, self.counted)

    @property
    def fallback_share(self) -> float | None:
        return ratio(self.moves - self.counted, self.moves)
