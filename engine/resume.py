"""Resume an interrupted experiment (aborted, failed, budget_exceeded or killed).

A round is saved whole, summary last, so the complete rounds are those with a summary;
they are kept and the run goes on at the next one. That round is played again from the
start, but every model call already recorded in calls.jsonl is answered from the log
(the call keys are deterministic), so nothing recorded is paid for twice and a simulated
run ends with the records an uninterrupted run would have written.

Everything the next round depends on is rebuilt from the files: powers and scores by
replaying the saved games through the game rules (and checked against the summaries),
the latest strategies, each agent's history, the similarity corpus, and the counters
(calls, retries, cost, empty replies: the budget counts what was already spent; an
experiment the budget stopped stays stopped unless resumed with a larger budget).

Errors that only describe the interruption (a full disk, a fatal error, a repair made
here) stay in the log but are not counted, so `error_count` equals an uninterrupted run's."""

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from engine import analysis, game
from engine.conditions import resolve_condition
from engine.config import Config, ConfigError, validate
from engine.control import RunControl
from engine.events import Observer
from engine.models import (
    SCHEMA_VERSION,
    CallRecord,
    ErrorRecord,
    ExperimentResult,
    GameResult,
    Manifest,
    RoundSummary,
    StrategyRecord,
)
from engine.prompts import prompt_hashes
from engine.providers.base import Provider
from engine.runner import Experiment, build_agents
from engine.store import (
    MAX_LOG_BYTES,
    TEMP_PREFIX,
    ExperimentStore,
    UnsafeFile,
    check_writable,
    decoder,
    read_file,
    read_json,
    read_jsonl,
)

CORRUPT_SUFFIX = ".corrupt"
# Error types that describe the interruption rather than the experiment (not counted again).
INTERRUPTION_ERRORS = frozenset({"storage", "fatal", "internal", "resume_repair"})
MISSING_CALLS_NOTE = ("calls.jsonl is missing: the earlier calls and their cost are unknown "
                      "(the counters and the budget start from zero, and every call is made again)")
Runner = Callable[[Observer, RunControl], Awaitable[ExperimentResult]]  # what a UI runs


class ResumeError(Exception):
    """The experiment cannot be resumed; the message says why (nothing was written)."""


class _Versioned(msgspec.Struct):
    schema_version: int = 1


@dataclass
class SavedRound:
    strategies: list[StrategyRecord]
    games: list[GameResult]
    summary: RoundSummary


@dataclass
class Resumable:
    """A validated, locked experiment directory, ready for `resume_experiment`."""

    store: ExperimentStore
    manifest: Manifest
    config: Config
    rounds: list[SavedRound]
    calls: list[CallRecord]
    errors: list[ErrorRecord]
    notes: list[str] = field(default_factory=list)  # what was repaired or ignored, for the user
    budget_reached: bool = False  # stopped by the budget, and resumed without a larger one

    @property
    def next_round(self) -> int:
        return len(self.rounds) + 1


def open_resume(
    directory: Path, max_cost_usd: float | None = None, *, allow_insecure: bool = False
) -> Resumable:
    """Check, lock and load an experiment directory for resuming. `allow_insecure` lets
    the key go over plain http:// to a remote host (recorded in the manifest's config).

    Raises ResumeError (refusal), LockError (a live process writes it) or ConfigError
    (unwritable, bad override); the only writes before a refusal are the lock file's."""
    manifest = read_manifest(directory)
    config = manifest.config
    limit = config.provider.max_cost_usd
    budget_reached = manifest.status == "budget_exceeded" and (
        max_cost_usd is None or (limit is not None and max_cost_usd <= limit))
    if max_cost_usd is not None:
        config = validate(
            msgspec.structs.replace(
                config, provider=msgspec.structs.replace(config.provider, max_cost_usd=max_cost_usd)
            )
        )
    if allow_insecure:
        config = allow_insecure_config(config)
    check_code_matches(manifest)
    check_writable(directory, str(directory))
    calls_missing = not (directory / "calls.jsonl").exists()  # the store creates it
    try:
        store = ExperimentStore(directory)
    except UnsafeFile as exc:
        raise ResumeError(f"{directory}: {exc}") from None
    try:
        rounds = load_rounds(directory, manifest)
        logs = {"calls.jsonl": CallRecord, "experiment_errors.log": ErrorRecord}
        notes = [note for name, type_ in logs.items()
                 if (note := set_aside_torn_tail(directory / name, type_))]
        if calls_missing:
            notes.append(MISSING_CALLS_NOTE)
        calls, bad_calls = read_jsonl(directory / "calls.jsonl", CallRecord)
        errors, _ = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
        if bad_calls:
            notes.append(f"calls.jsonl: {len(bad_calls)} unreadable line(s) ignored; "
                         "those calls are made again")
        remove_temp_files(directory)
    except UnsafeFile as exc:
        store.close()
        raise ResumeError(f"{directory}: {exc}") from None
    except BaseException:
        store.close()
        raise
    return Resumable(store, msgspec.structs.replace(manifest, config=config), config, rounds,
                     calls, errors, notes, budget_reached)


def allow_insecure_config(config: Config) -> Config:
    return msgspec.structs.replace(
        config, provider=msgspec.structs.replace(config.provider, allow_insecure=True))


def resume_runner(resumable: Resumable, provider: Provider) -> Runner:
    """The coroutine function a UI (or the headless printer) runs: the resumed run, then
    the provider closed."""

    async def run(observer: Observer, control: RunControl) -> ExperimentResult:
        try:
            return await resume_experiment(resumable, provider, observer, control)
        finally:
            await provider.aclose()

    return run


async def resume_experiment(
    resumable: Resumable,
    provider: Provider,
    observer: Observer | None = None,
    control: RunControl | None = None,
) -> ExperimentResult:
    """Rebuild the experiment's state and run it from `next_round` to the end."""
    try:
        experiment = Experiment(resumable.config, resumable.store, provider, observer, control)
        restore(experiment, resumable)
        return await experiment.run()
    finally:
        resumable.store.close()


# -- checks ------------------------------------------------------------------------------


def read_manifest(directory: Path) -> Manifest:
    """The manifest, or ResumeError: no experiment here, a newer schema, or completed."""
    path = directory / "manifest.json"
    if not directory.is_dir():
        raise ResumeError(f"{directory}: no such experiment directory")
    if not path.exists():
        raise ResumeError(f"{directory}: no manifest.json (not an experiment, or killed before "
                          "it started: nothing to resume)")
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
    changed = [name for name, digest in prompt_hashes().items()
               if manifest.prompt_hashes.get(name) != digest]
    if changed:
        raise ResumeError(f"manifest.json: the prompt templates changed since the experiment "
                          f"started ({', '.join(changed)}); it cannot be resumed with this version")
    try:
        condition = resolve_condition(config.condition, config.switches)
    except ConfigError as exc:
        raise ResumeError(f"manifest.json: {exc}") from None
    if condition != manifest.condition:
        raise ResumeError(f"manifest.json: condition {config.condition!r} is defined differently "
                          "in this version than when the experiment started")
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
        raise ResumeError(f"{rounds_dir}: the round summaries {numbers} are not rounds "
                          f"1..{len(numbers)}")
    if len(numbers) > config.rounds:
        raise ResumeError(f"{rounds_dir}: {len(numbers)} rounds saved, but the experiment has "
                          f"{config.rounds}")
    powers = [a.initial_power for a in manifest.agents]
    saved = []
    for r in numbers:
        try:
            saved.append(SavedRound(
                read_json(rounds_dir / f"strategies_r{r}.json", list[StrategyRecord]),
                read_json(rounds_dir / f"games_r{r}.json", list[GameResult]),
                read_json(rounds_dir / f"summary_r{r}.json", RoundSummary),
            ))
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ResumeError(f"round {r}: unreadable ({exc})") from None
        problem, powers = check_round(r, saved[-1], powers, config)
        if problem:
            raise ResumeError(f"{directory}: the round files and the manifest disagree: {problem}")
    return saved


def check_round(
    r: int, saved: SavedRound, powers: list[float], config: Config
) -> tuple[str | None, list[float]]:
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
            g.player1_payoff, g.player2_payoff) != payoffs:
            return f"game {g.game_id} does not follow from the earlier rounds", powers
        scores[g.player1_id] += g.player1_payoff
        scores[g.player2_id] += g.player2_payoff
    if config.power.dynamics:
        powers = game.update_powers(powers, scores)
    if saved.summary.agent_scores != scores or saved.summary.agent_powers != powers:
        return f"summary_r{r}.json disagrees with games_r{r}.json", powers
    return None, powers


# -- repairs -----------------------------------------------------------------------------


def set_aside_torn_tail(path: Path, type_: type) -> str | None:
    """A crash can leave the last line of an append-only log torn (no newline) or invalid:
    move it to `<name>.corrupt` and cut the log back to its last whole line. Returns a note
    for the user, or None when the log was intact."""
    if not path.exists():
        return None
    data = read_file(path, MAX_LOG_BYTES)
    body, _, tail = data.rstrip(b"\n").rpartition(b"\n")
    keep = len(body) + 1 if body else 0
    if not tail:
        return None
    try:
        decoder(type_).decode(tail)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    else:
        if data.endswith(b"\n"):
            return None
        with open(path, "ab") as file:  # whole but unterminated: just end the line
            file.write(b"\n")
        return None
    corrupt = path.with_name(path.name + CORRUPT_SUFFIX)
    with open(corrupt, "ab") as file:
        file.write(tail + b"\n")
    with open(path, "r+b") as file:
        file.truncate(keep)
    return f"{path.name}: a torn last line ({len(tail)} bytes) was moved to {corrupt.name}"


def remove_temp_files(directory: Path) -> None:
    for folder in (directory, directory / "rounds"):
        for temp in folder.glob(f"{TEMP_PREFIX}*"):
            temp.unlink(missing_ok=True)


# -- rebuilding the state -------------------------------------------------------------------


def replay_map(calls: list[CallRecord]) -> dict[str, CallRecord]:
    """Key -> the last successful recorded call; failed calls are made again."""
    return {c.key: c for c in calls if c.reply is not None}


def restore(experiment: Experiment, resumable: Resumable) -> None:
    """Put `experiment` where the uninterrupted run was after its last complete round."""
    state = experiment.state
    for saved in resumable.rounds:
        r = saved.summary.round
        experiment.record_history(r, saved.games)
        state.all_strategies += saved.strategies
        state.all_games += saved.games
        state.summaries.append(saved.summary)
        state.similarity.add_round(analysis.llm_strategy_texts(saved.strategies))
        state.strategies.update((s.agent_id, s) for s in saved.strategies)
        scores = saved.summary.agent_scores
        state.total_scores = [t + s for t, s in zip(state.total_scores, scores, strict=True)]
        state.powers = list(saved.summary.agent_powers)
    calls = resumable.calls
    stats = experiment.control.stats
    stats.calls = sum(c.attempts - c.unsent for c in calls)
    stats.retries = sum(c.attempts - 1 for c in calls)
    stats.cost = sum(c.cost for c in calls)
    stats.empty_replies = sum(c.empty_replies for c in calls)
    experiment.gateway.cost_is_estimate = any(c.cost_is_estimate for c in calls)
    experiment.gateway.replay = replay = replay_map(calls)
    experiment.gateway.budget.exceeded = resumable.budget_reached
    for note in resumable.notes:
        experiment.error("resume_repair", note)
    experiment.error_count = sum(map(functools.partial(counted, resumable, replay), resumable.errors))
    experiment.start_time = resumable.manifest.start_time
    experiment.manifest = msgspec.structs.replace(
        resumable.manifest, status="running", end_time=None, message=None
    )


def counted(resumable: Resumable, replay: dict[str, CallRecord], error: ErrorRecord) -> bool:
    """Whether a logged error counts in the resumed run's `error_count`: not if it only
    describes the interruption; not if it belongs to the round played again and will be
    logged again if it happens again — unless it came from a call answered from the log
    (an empty reply before the call's success), which will not happen again."""
    if error.type in INTERRUPTION_ERRORS:
        return False
    round = error.context.get("round")
    if not isinstance(round, int) or round < resumable.next_round:
        return True
    return error.context.get("key") in replay
