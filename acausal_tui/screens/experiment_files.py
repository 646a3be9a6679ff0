"""An experiment's round files as its detail screen reads them: each read once (in a
worker thread) and checked against the experiment; what could not be read, or decodes but
makes no sense (an agent id out of range), is kept to be shown in place."""

from typing import Any

import msgspec
from rich.text import Text

from acausal_tui.screens.history import game_number
from acausal_tui.widgets.text import literal
from engine.models import GameResult, StrategyRecord
from engine.store import LoadedExperiment


class BadContent(ValueError):
    """A round file that decodes but does not fit the experiment."""


def check_games(games: list[GameResult], agents: int) -> None:
    for g in games:
        for player in (g.player1_id, g.player2_id):
            if player not in range(agents):
                raise BadContent(f"{g.game_id}: agent id {player} is not one of the {agents} agents")
        if g.player1_id == g.player2_id:
            raise BadContent(f"{g.game_id}: agent {g.player1_id} plays itself")
        try:
            game_number(g)
        except ValueError:
            raise BadContent(f"game id {g.game_id!r} is not of the form r<round>_g<number>") from None


def check_strategies(strategies: list[StrategyRecord], agents: int) -> None:
    for s in strategies:
        if s.agent_id not in range(agents):
            raise BadContent(f"agent id {s.agent_id} is not one of the {agents} agents")


class RoundFiles:
    """The games and strategies of each round, read on first use; a file that cannot be
    read or makes no sense is recorded in `errors` (by file name) and counts as empty."""

    def __init__(self, loaded: LoadedExperiment, agents: int) -> None:
        self.loaded = loaded
        self.agents = agents
        self.errors: dict[str, str] = {}
        self._games: dict[int, list[GameResult]] = {}
        self._strategies: dict[int, list[StrategyRecord]] = {}

    def _read(self, kind: str, round: int, cache: dict[int, list[Any]]) -> list[Any]:
        if round not in cache:
            try:
                records = getattr(self.loaded, kind)(round)
                (check_games if kind == "games" else check_strategies)(records, self.agents)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError, BadContent) as exc:
                self.errors[f"{kind}_r{round}.json"] = str(exc)
                records = []
            cache[round] = records
        return cache[round]

    def games(self, round: int) -> list[GameResult]:
        return self._read("games", round, self._games)

    def strategies(self, round: int) -> list[StrategyRecord]:
        return self._read("strategies", round, self._strategies)

    def unread(self, games: list[int], strategies: list[int]) -> tuple[list[int], list[int]]:
        """Which of these rounds' games and strategies are not read yet."""
        return [r for r in games if r not in self._games], [r for r in strategies if r not in self._strategies]

    def read(self, games: list[int], strategies: list[int]) -> None:
        """Read these rounds' files (in a worker thread)."""
        for round in games:
            self.games(round)
        for round in strategies:
            self.strategies(round)

    def problems(self, *names: str) -> Text:
        """What could not be read of these files, one line each."""
        text = Text()
        for name in names:
            if name in self.errors:
                text.append(f"\n{name} could not be read: ", style="bold red")
                text.append_text(literal(self.errors[name]))
        return text
