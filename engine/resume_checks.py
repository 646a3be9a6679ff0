"""The checks that refuse an experiment directory resume cannot continue safely: no
manifest, a newer schema, already completed, other prompts or conditions than it was run
with, or round files that disagree with the manifest and the game rules."""

from dataclasses import dataclass
from pathlib import Path

import msgspec

from engine import game
from engine.conditions import resolve_condition
from engine.config import Config, ConfigError
from engine.errors import ResumeError
from engine.models import SCHEMA_VERSION, GameResult, Manifest, RoundSummary, StrategyRecord
from engine.prompts import prompt_hashes
from engine.records import build_agents
from engine.store import read_file, read_json


class _Versioned(msgspec.Struct):
    schema_version: int = 1


@dataclass
class SavedRound:
    strategies: list[StrategyRecord]
    games: list[GameResult]
    summary: RoundSummary


def read_manifest(directory: Path) -> Manifest:
    """The manifest, or ResumeError: no experiment here, a newer schema, or completed."""
    path = directory / "manifest.json"
    if not directory.is_dir():
        raise ResumeError(f"{directory}: no such experiment directory")
    if not path.exists():
        raise ResumeError(
            f"{directory}: no manifest.json (not an experiment, or killed before it started: nothing to resume)"
        )
    try:
        check_schema(path)
        manifest = read_json(path, Manifest)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ResumeError(f"{path}: unreadable ({exc})") from None
    if manifest.status == "completed":
        raise ResumeError(f"{directory}: the experiment is already completed; nothing to resume")
    result = directory / "experiment_results.json"
    if result.exists():
        try:
            check_schema(result)
        except (OSError, msgspec.DecodeError):
            pass  # a result file is rewritten at the end anyway
    return manifest


def check_schema(path: Path) -> None:
    version = msgspec.json.decode(read_file(path), type=_Versioned).schema_version
    if version > SCHEMA_VERSION:
        raise ResumeError(
            f"{path}: written by a newer version of acausal-tui (schema {version}; this "
            f"version knows up to {SCHEMA_VERSION}); upgrade to resume it"
        )


def check_code_matches(manifest: Manifest) -> None:
    """Resuming with different prompts or a redefined condition would mix two experiments."""
    config = manifest.config
    if manifest.seed != config.seed or config.agents is None:
        raise ResumeError("manifest.json: the seed or agent count is missing or inconsistent")
    changed = [name for name, digest in prompt_hashes().items() if manifest.prompt_hashes.get(name) != digest]
    if changed:
        raise ResumeError(
            f"manifest.json: the prompt templates changed since the experiment "
            f"started ({', '.join(changed)}); it cannot be resumed with this version"
        )
    try:
        condition = resolve_condition(config.condition, config.switches)
    except ConfigError as exc:
        raise ResumeError(f"manifest.json: {exc}") from None
    if condition != manifest.condition:
        raise ResumeError(
            f"manifest.json: condition {config.condition!r} is defined differently "
            "in this version than when the experiment started"
        )
    fields = ("id", "kind", "strategy", "model", "sub_model", "initial_power")
    expected = [tuple(getattr(a, f) for f in fields) for a in build_agents(config)]
    recorded = [tuple(getattr(a, f) for f in fields) for a in manifest.agents]
    if recorded != expected or len(expected) != config.agents:
        raise ResumeError("manifest.json: the agents do not match the recorded config and seed")


def load_rounds(directory: Path, manifest: Manifest) -> list[SavedRound]:
    """The complete rounds (1..K, each with its summary), checked against the manifest and
    against the game rules: replaying the games must give the recorded scores and powers."""
    config = manifest.config
    rounds_dir = directory / "rounds"
    summaries = rounds_dir.glob("summary_r*.json")
    numbers = sorted(int(p.stem[9:]) for p in summaries if p.stem[9:].isdigit())
    if numbers != list(range(1, len(numbers) + 1)):
        raise ResumeError(f"{rounds_dir}: the round summaries {numbers} are not rounds 1..{len(numbers)}")
    if len(numbers) > config.rounds:
        raise ResumeError(f"{rounds_dir}: {len(numbers)} rounds saved, but the experiment has {config.rounds}")
    powers = [a.initial_power for a in manifest.agents]
    saved = []
    for r in numbers:
        try:
            saved.append(
                SavedRound(
                    read_json(rounds_dir / f"strategies_r{r}.json", list[StrategyRecord]),
                    read_json(rounds_dir / f"games_r{r}.json", list[GameResult]),
                    read_json(rounds_dir / f"summary_r{r}.json", RoundSummary),
                )
            )
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ResumeError(f"round {r}: unreadable ({exc})") from None
        problem, powers = check_round(r, saved[-1], powers, config)
        if problem:
            raise ResumeError(f"{directory}: the round files and the manifest disagree: {problem}")
    return saved


def check_round(r: int, saved: SavedRound, powers: list[float], config: Config) -> tuple[str | None, list[float]]:
    """What is wrong with round r given the powers it started with (None: nothing), and
    the powers after it."""
    n = config.agents or 0
    pairs = [(f"r{r}_g{k}", r, i, j) for k, (i, j) in enumerate(game.pairings(n), start=1)]
    if saved.summary.round != r:
        return f"summary_r{r}.json is for round {saved.summary.round}", powers
    if [(s.agent_id, s.round) for s in saved.strategies] != [(a, r) for a in range(n)]:
        return f"strategies_r{r}.json does not hold one strategy per agent", powers
    if [(g.game_id, g.round, g.player1_id, g.player2_id) for g in saved.games] != pairs:
        return f"games_r{r}.json does not hold the round-robin of the agents", powers
    scores = [0.0] * n
    for g in saved.games:
        before = (powers[g.player1_id], powers[g.player2_id])
        payoffs = game.payoffs(g.player1_action, g.player2_action, *before, config.power.dynamics)
        if (g.player1_power_before, g.player2_power_before) != before or (
            g.player1_payoff,
            g.player2_payoff,
        ) != payoffs:
            return f"game {g.game_id} does not follow from the earlier rounds", powers
        scores[g.player1_id] += g.player1_payoff
        scores[g.player2_id] += g.player2_payoff
    if config.power.dynamics:
        powers = game.update_powers(powers, scores)
    if saved.summary.agent_scores != scores or saved.summary.agent_powers != powers:
        return f"summary_r{r}.json disagrees with games_r{r}.json", powers
    return None, powers
