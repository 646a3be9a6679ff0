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
from typing import Any

import msgspec

from engine.agents.llm import CUT_OFF
from engine.calllog import spend_of
from engine.calls import round_of
from engine.config import Config, validate
from engine.control import RunControl
from engine.errors import ResumeError
from engine.events import Observer
from engine.models import CallRecord, ErrorRecord, ExperimentResult, Manifest
from engine.providers.base import Provider
from engine.resume_checks import SavedRound, check_code_matches, load_rounds, read_manifest
from engine.runner import Experiment
from engine.state import ExperimentState, Restored
from engine.store import (
    MAX_LOG_BYTES,
    TEMP_PREFIX,
    ExperimentStore,
    UnsafeFile,
    check_writable,
    decoder,
    read_file,
    read_jsonl,
)

CORRUPT_SUFFIX = ".corrupt"
# Error types that describe the interruption rather than the experiment (not counted again).
INTERRUPTION_ERRORS = frozenset({"storage", "fatal", "internal", "resume_repair"})
MISSING_CALLS_NOTE = (
    "calls.jsonl is missing: the earlier calls and their cost are unknown "
    "(the counters and the budget start from zero, and every call is made again)"
)
Runner = Callable[[Observer, RunControl], Awaitable[ExperimentResult]]  # what a UI runs


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


def open_resume(directory: Path, max_cost_usd: float | None = None, *, allow_insecure: bool = False) -> Resumable:
    """Check, lock and load an experiment directory for resuming. `allow_insecure` lets
    the key go over plain http:// to a remote host (recorded in the manifest's config).

    Raises ResumeError (refusal), LockError (a live process writes it) or ConfigError
    (unwritable, bad override); the only writes before a refusal are the lock file's."""
    manifest = read_manifest(directory)
    config = manifest.config
    limit = config.provider.max_cost_usd
    budget_reached = manifest.status == "budget_exceeded" and (
        max_cost_usd is None or (limit is not None and max_cost_usd <= limit)
    )
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
        notes = [note for name, type_ in logs.items() if (note := set_aside_torn_tail(directory / name, type_))]
        if calls_missing:
            notes.append(MISSING_CALLS_NOTE)
        calls, bad_calls = read_jsonl(directory / "calls.jsonl", CallRecord)
        errors, _ = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
        if bad_calls:
            notes.append(f"calls.jsonl: {len(bad_calls)} unreadable line(s) ignored; those calls are made again")
        remove_temp_files(directory)
    except UnsafeFile as exc:
        store.close()
        raise ResumeError(f"{directory}: {exc}") from None
    except BaseException:
        store.close()
        raise
    # `running` on disk: the process died without its final status (kill -9, a crash), and
    # any calls it had in flight then (and replies not yet logged) were lost with it
    unclean = manifest.unclean_stops + (manifest.status == "running")
    manifest = msgspec.structs.replace(manifest, config=config, unclean_stops=unclean)
    return Resumable(store, manifest, config, rounds, calls, errors, notes, budget_reached)


def allow_insecure_config(config: Config) -> Config:
    return msgspec.structs.replace(config, provider=msgspec.structs.replace(config.provider, allow_insecure=True))


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
        return await continued(resumable, provider, observer, control).run()
    finally:
        resumable.store.close()


def continued(
    resumable: Resumable,
    provider: Provider,
    observer: Observer | None,
    control: RunControl | None,
    **shared: Any,
) -> Experiment:
    """The `Experiment` that continues `resumable` (`shared`: a sweep's limiter and budget).
    The log's records it was opened with are let go: the replay map keeps what the run asks
    for again, and the whole log (every prompt of every round) is not held during the run."""
    experiment = Experiment(
        resumable.config, resumable.store, provider, observer, control, restored=restored(resumable), **shared
    )
    if (learn_markup := getattr(provider, "learn_markup", None)) is not None:
        learn_markup(bills(resumable.calls))
    resumable.calls.clear()
    return experiment


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


def bills(calls: list[CallRecord]) -> list[tuple[str, int, int, float]]:
    """(model, prompt tokens, completion tokens, USD) of each call billed exactly for its one
    attempt that reached the server: what the provider's markup is learnt from."""
    return [bill for bill in map(bill_of, calls) if bill is not None]


def bill_of(call: CallRecord) -> tuple[str, int, int, float] | None:
    if call.reply is None or call.cost_is_estimate or call.attempts - call.unsent != 1:
        return None
    return (call.model, call.usage.prompt_tokens, call.usage.completion_tokens, call.cost)


def replay_map(calls: list[CallRecord]) -> dict[str, CallRecord]:
    """Key -> the last successful recorded call; failed calls are made again."""
    return {c.key: c for c in calls if c.reply is not None}


def restored(resumable: Resumable) -> Restored:
    """Where the uninterrupted run was after its last complete round, for the `Experiment`
    that continues it."""
    config = resumable.config
    assert config.seed is not None
    manifest = resumable.manifest
    state = ExperimentState.start(config.seed, manifest.agents, manifest.condition)
    for saved in resumable.rounds:
        state.add_saved_round(saved.strategies, saved.games, saved.summary)
    calls = resumable.calls
    spent = spend_of(calls)
    answered = replay_map(calls)
    # Only the rounds played again ask for their calls: the map keeps those, not the whole
    # log (at 100 agents, every prompt of every round).
    replay = {
        key: call for key, call in answered.items() if (round_of(key) or resumable.next_round) >= resumable.next_round
    }
    return Restored(
        state=state,
        manifest=manifest,
        replay=replay,
        cut_off={key for key, call in answered.items() if call.finish_reason == CUT_OFF},
        calls=spent.calls,
        retries=sum(max(0, c.attempts - c.unsent - 1) for c in calls),  # API calls after a call's first
        cost=spent.cost,  # a damaged log cannot lower it
        empty_replies=sum(c.empty_replies for c in calls),
        cost_is_estimate=spent.estimate,
        budget_reached=resumable.budget_reached,
        error_count=sum(map(functools.partial(counted, resumable, replay), resumable.errors)),
        notes=resumable.notes,
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
