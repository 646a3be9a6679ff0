"""Reading an experiment directory back for the browser, resume, export and audit: what is
readable of it (problems listed, never raised), and the rules a round file must meet to
fit its experiment, so every reader refuses the same files."""

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

import msgspec

from engine.config import MAX_ROUNDS
from engine.files import UnsafeFile, read_json
from engine.models import ExperimentResult, GameResult, Manifest, RoundSummary, StrategyRecord

T = TypeVar("T")


class BadRoundFile(msgspec.ValidationError):
    """A round file that decodes but does not fit the experiment (a ValidationError, so
    every reader that handles an undecodable file handles this one too)."""


def check_games(games: list[GameResult], agents: int) -> None:
    """BadRoundFile unless every game is between two different agents of the experiment and
    its id is of the form r<round>_g<number>."""
    for g in games:
        for player in (g.player1_id, g.player2_id):
            if player not in range(agents):
                raise BadRoundFile(f"{g.game_id}: agent id {player} is not one of the {agents} agents")
        if g.player1_id == g.player2_id:
            raise BadRoundFile(f"{g.game_id}: agent {g.player1_id} plays itself")
        try:
            int(g.game_id.rsplit("_g", 1)[-1])
        except ValueError:
            raise BadRoundFile(f"game id {g.game_id!r} is not of the form r<round>_g<number>") from None


def check_strategies(strategies: list[StrategyRecord], agents: int) -> None:
    """BadRoundFile unless every strategy is by an agent of the experiment."""
    for s in strategies:
        if s.agent_id not in range(agents):
            raise BadRoundFile(f"agent id {s.agent_id} is not one of the {agents} agents")


@dataclass
class LoadedExperiment:
    """What is readable of an experiment directory; `problems` lists what was not."""

    directory: Path
    manifest: Manifest | None = None
    result: ExperimentResult | None = None
    summaries: dict[int, RoundSummary] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def readable(self) -> bool:
        return self.manifest is not None

    @property
    def current_result(self) -> ExperimentResult | None:
        """The result file as the experiment's result, unless the manifest says `running`:
        then it is the result of the stop a resume went on from (a resume killed before it
        wrote its own), not the experiment's state."""
        if self.manifest is not None and self.manifest.status == "running":
            return None
        return self.result

    def strategies(self, round: int) -> list[StrategyRecord]:
        """The round's strategies; OSError, DecodeError or ValidationError (BadRoundFile
        among them) when the file cannot be read or does not fit the experiment."""
        strategies = read_json(self.directory / "rounds" / f"strategies_r{round}.json", list[StrategyRecord])
        if self.manifest is not None:
            check_strategies(strategies, len(self.manifest.agents))
        return strategies

    def games(self, round: int) -> list[GameResult]:
        """The round's games; errors as `strategies`."""
        games = read_json(self.directory / "rounds" / f"games_r{round}.json", list[GameResult])
        if self.manifest is not None:
            check_games(games, len(self.manifest.agents))
        return games


class PlayedRounds(NamedTuple):
    """Every strategy, game and summary of the rounds played, in round order."""

    strategies: list[StrategyRecord]
    games: list[GameResult]
    summaries: list[RoundSummary]


def read_rounds(loaded: LoadedExperiment, rounds: int) -> tuple[PlayedRounds, str | None]:
    """Rounds 1..`rounds` as their files say (summaries included), up to the first round
    with a file that cannot be read or does not fit the experiment, and why it cannot."""
    played = PlayedRounds([], [], [])
    for round in range(1, rounds + 1):
        path = loaded.directory / "rounds" / f"summary_r{round}.json"
        try:
            strategies, games = loaded.strategies(round), loaded.games(round)
            summary = read_json(path, RoundSummary)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            return played, f"round {round}'s files cannot be read back: {exc}"
        played.strategies.extend(strategies)
        played.games.extend(games)
        played.summaries.append(summary)
    return played, None


def _try_read(path: Path, type_: type[T], problems: list[str]) -> T | None:
    try:
        return read_json(path, type_)
    except FileNotFoundError:
        return None
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        problems.append(problem(path, exc))
        return None


def problem(path: Path, exc: Exception) -> str:
    """The line that says why `path` could not be read."""
    return str(exc) if isinstance(exc, UnsafeFile) else f"{path.name}: {exc}"


def round_file_problems(loaded: LoadedExperiment, skip: Collection[int] = ()) -> list[str]:
    """Why each summarised round's (but those in `skip`) strategies and games files cannot
    be read, as the loaders read them (decoded, and checked to fit the experiment); a
    missing one counts."""
    problems: list[str] = []
    for number in sorted(set(loaded.summaries) - set(skip)):
        for name, read in (("strategies", loaded.strategies), ("games", loaded.games)):
            try:
                read(number)
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                path = loaded.directory / "rounds" / f"{name}_r{number}.json"
                problems.append(f"{path.name}: missing" if isinstance(exc, FileNotFoundError) else problem(path, exc))
    return problems


def load_experiment(directory: Path) -> LoadedExperiment:
    """Never raises for bad content: unreadable parts are listed in `problems`."""
    loaded = LoadedExperiment(directory=directory)
    loaded.manifest = _try_read(directory / "manifest.json", Manifest, loaded.problems)
    if loaded.manifest is None and not loaded.problems:
        loaded.problems.append("manifest.json: missing")
    loaded.result = _try_read(directory / "experiment_results.json", ExperimentResult, loaded.problems)
    rounds = directory / "rounds"
    if rounds.is_symlink():
        loaded.problems.append("rounds is a symbolic link; not followed")
    elif rounds.is_dir():
        for path in sorted(rounds.glob("summary_r*.json")):
            number = path.stem.removeprefix("summary_r")
            if number.isdigit():
                summary = _try_read(path, RoundSummary, loaded.problems)
                if summary is not None:
                    loaded.summaries[int(number)] = summary
    loaded.problems += missing_rounds(loaded)
    return loaded


def rounds_due(loaded: LoadedExperiment) -> tuple[int, int]:
    """(the rounds the result counts, the last round that must be on disk): each round up to
    the last one saved, and every round the result counts — bounded by the rounds configured
    (or the most a config allows, without a readable manifest), so a hostile result's "10**15
    rounds" is not looped over. A round after them is one never finished (a crash before its
    summary was written, which resume plays again)."""
    planned = loaded.manifest.config.rounds if loaded.manifest is not None else MAX_ROUNDS
    counted = min(loaded.result.total_rounds if loaded.result is not None else 0, planned)
    return counted, min(max([counted, *loaded.summaries]), planned)


def missing_rounds(loaded: LoadedExperiment) -> list[str]:
    """The rounds due (`rounds_due`) whose summary is not on disk, at most
    MAX_MISSING_LISTED lines, then how many more."""
    counted, last = rounds_due(loaded)
    missing = [
        number
        for number in range(1, last + 1)
        if number not in loaded.summaries
        and not any(f"summary_r{number}.json" in problem for problem in loaded.problems)  # unreadable: said already
    ]
    lines = [
        f"summary_r{number}.json: missing (round {number} of the {last} "
        + ("the result counts)" if number <= counted else "saved before it)")
        for number in missing[:MAX_MISSING_LISTED]
    ]
    if len(missing) > MAX_MISSING_LISTED:
        lines.append(f"and {len(missing) - MAX_MISSING_LISTED} more rounds missing")
    return lines


MAX_MISSING_LISTED = 5


def list_experiments(results_dir: Path) -> list[LoadedExperiment]:
    """Every experiment directory under results_dir, newest first (by name)."""
    if not results_dir.is_dir():
        return []
    dirs = [p for p in results_dir.iterdir() if p.is_dir() and p.name.startswith("exp_")]
    return [
        LoadedExperiment(p, problems=["a symbolic link; not followed"]) if p.is_symlink() else load_experiment(p)
        for p in sorted(dirs, key=lambda p: p.name, reverse=True)
    ]
