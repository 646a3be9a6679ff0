"""An experiment's round files as its detail screen reads them: each read once (in a
worker thread; the store checks that it fits the experiment); what could not be read is
kept to be shown in place."""

from typing import Any

import msgspec
from rich.text import Text

from acausal_tui.widgets.text import literal
from engine.models import GameResult, StrategyRecord
from engine.store import LoadedExperiment


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
                records = getattr(self.loaded, kind)(round)  # checked to fit the experiment
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
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
