"""The run of one experiment (SPEC §4): its lifecycle and status, round after round,
its records saved; events to an observer; RunControl honoured.

Data flow: config -> runner -> (rounds: LLM agents via the gateway, game, analysis) -> store."""

import contextlib
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec
from anyio.abc import TaskGroup

from engine.agents.llm import LLMAgents
from engine.calllog import CallLog
from engine.calls import Budget, CallGateway, FatalCallError, now_iso
from engine.collect import fewer_collections
from engine.conditions import Condition, resolve_condition
from engine.config import Config
from engine.control import RunControl
from engine.events import (
    ErrorLogged,
    Event,
    NullObserver,
    Observer,
    RoundStarted,
    RoundSummarised,
    RunFinished,
    RunStarted,
)
from engine.limits import Limiter
from engine.loading import LoadedExperiment, PlayedRounds, read_rounds
from engine.models import ErrorRecord, ExperimentResult, GameResult, Status, StrategyRecord
from engine.prompts import round_player_labels
from engine.providers.base import Provider
from engine.records import build_agents, build_result, final_agents, new_manifest
from engine.rounds import Round
from engine.saving import RoundSaves, Unsaved
from engine.state import ExperimentState, Restored
from engine.store import ExperimentStore

T = TypeVar("T")


def with_seed(config: Config) -> Config:
    """Draw a seed when none was given; the manifest records it."""
    if config.seed is not None:
        return config
    return msgspec.structs.replace(config, seed=secrets.randbelow(2**31))


class Experiment:
    """One experiment's run. `restored`: where an interrupted run stood (engine/resume.py);
    without it the run starts at round 1."""

    def __init__(
        self,
        config: Config,
        store: ExperimentStore,
        provider: Provider,
        observer: Observer | None = None,
        control: RunControl | None = None,
        *,
        limiter: Limiter | None = None,
        budget: Budget | None = None,
        restored: Restored | None = None,
    ) -> None:
        """`limiter` and `budget` let a sweep share one limiter and one budget between
        concurrent experiments (engine/sweep.py)."""
        assert config.seed is not None and config.agents is not None, "resolve config and seed first"
        self.config = config
        self.seed = config.seed
        self.n = config.agents
        self.store = store
        self.provider = provider
        self.observer = observer or NullObserver()
        self.control = control or RunControl()
        self.condition: Condition = resolve_condition(config.condition, config.switches)
        self.agents = build_agents(config)
        self.error_count = 0
        self.saves = RoundSaves(self.observer.on_event)  # a round saved as the next one plays
        self.call_log = CallLog(store.append_calls)
        self.gateway = CallGateway(
            provider,
            self.control,
            seed=self.seed,
            limiter=limiter or Limiter(config.provider.rpm, config.provider.max_concurrency),
            budget_usd=config.provider.max_cost_usd,
            budget=budget,
            log_call=self.call_log.add,
            notify=self.notify,
            report=self.error,
            prices=getattr(provider, "prices", None),  # real providers: say when a cost is unknown
        )
        self.llm = LLMAgents(self.gateway, config, self.condition, self.error)
        if restored is None:
            self.state = ExperimentState.start(self.seed, self.agents, self.condition)
            self.start_time = now_iso()
            self.manifest = new_manifest(
                store.experiment_id,
                self.start_time,
                config,
                self.condition,
                self.agents,
                provider.name,
                provider.simulated,
            )
        else:
            self.resume_from(restored)

    def resume_from(self, restored: Restored) -> None:
        """Continue where the interrupted run stood; repairs made on opening it are logged, uncounted."""
        self.state = restored.state
        stats = self.control.stats
        stats.calls, stats.retries = restored.calls, restored.retries
        stats.cost, stats.empty_replies = restored.cost, restored.empty_replies
        stats.cost_is_estimate = restored.cost_is_estimate
        self.gateway.replay = restored.replay
        self.llm.cut_off.update(restored.cut_off)  # the earlier rounds' too
        self.gateway.budget.exceeded |= restored.budget_reached  # never unset: a sweep's experiments share it
        for note in restored.notes:
            self.error("resume_repair", note)
        self.error_count = restored.error_count
        self.start_time = restored.manifest.start_time
        self.manifest = msgspec.structs.replace(restored.manifest, status="running", end_time=None, message=None)

    def notify(self, event: Event) -> None:
        self.saves.notify(event)  # held back while the previous round is being saved

    def error(self, type_: str, message: str, **context: str | int | float | None) -> None:
        self.error_count += 1
        record = ErrorRecord(time=now_iso(), type=type_, message=message, context=context)
        self.store.log_error(record)
        self.notify(ErrorLogged(record))

    # -- the run ----------------------------------------------------------------------

    async def run(self) -> ExperimentResult:
        with fewer_collections():  # fewer young-generation collections while calls are in flight
            status: Status | None = None
            message: str | None = None
            with anyio.CancelScope(shield=True):  # fsync: not on the loop, and never half done
                await off_loop(self.store.write_manifest, self.manifest)
            self.notify(RunStarted(self.manifest, self.store.directory, len(self.state.summaries) + 1))
            try:
                with anyio.CancelScope() as scope:
                    self.control.attach(scope, self.notify)
                    async with anyio.create_task_group() as saving:  # a round saved as the next one plays
                        for round in range(len(self.state.summaries) + 1, self.config.rounds + 1):
                            await self.play_round(round, saving)
                            if self.gateway.budget_exceeded:
                                status, message = "budget_exceeded", self.gateway.budget.stop_message()
                                break
                if self.control.aborted:
                    status, message = "aborted", self.control.abort_reason
                elif status is None:
                    status = "completed"
            except* FatalCallError as group:
                status, message = "failed", str(first_error(group))
                self.error("fatal", message)
            except* OSError as group:
                status, message = "failed", f"cannot write the results: {first_error(group)}"
                self.error("storage", message)
            except* Exception as group:
                status = "failed"
                error = first_error(group)
                message = f"internal error: {type(error).__name__}: {error}"
                self.error("internal", message)
            finally:
                self.saves.forget_unsaved(self.state)  # a failed save: the result says what the files say
                self.saves.release()
                with anyio.CancelScope(shield=True):
                    try:
                        await self.call_log.drain()
                    except OSError as exc:
                        status, message = "failed", f"cannot write the results: {exc}"
                    finally:
                        self.call_log.close()
                    # The result is what the round files say (the state keeps no games); off the loop.
                    saved = LoadedExperiment(self.store.directory, self.manifest)
                    played, unreadable = await off_loop(read_rounds, saved, len(self.state.summaries))
                    if unreadable is not None:
                        status, message = "failed", f"{unreadable}; the result covers the rounds before it"
                        with contextlib.suppress(OSError):  # the result says it, if the log cannot
                            self.error("storage", message)
                    result = await off_loop(self.finish, played, status or "aborted", message or "cancelled")
                self.notify(RunFinished(result, self.store.directory))
            return result

    def finish(self, played: PlayedRounds, status: Status, message: str | None) -> ExperimentResult:
        """The result of the rounds `played` and the final manifest, written (worker thread)."""
        end = now_iso()
        self.agents = final_agents(self.agents, self.state, played)
        result = build_result(
            self.store.experiment_id,
            self.config,
            self.condition,
            self.agents,
            played,
            self.control.stats,
            status=status,
            message=message,
            start_time=self.start_time,
            end_time=end,
            simulated=self.provider.simulated,
            cost_is_estimate=self.gateway.cost_is_estimate,
            error_count=self.error_count,
            cut_offs=len(self.llm.cut_off),
            unclean_stops=self.manifest.unclean_stops,
        )
        self.store.write_result(result)
        self.manifest = msgspec.structs.replace(
            self.manifest, status=status, end_time=end, message=result.message, agents=self.agents
        )
        self.store.write_manifest(self.manifest)
        return result

    async def play_round(self, round: int, group: TaskGroup) -> None:
        """Play the round and add it to the state, then save its files in `group` while
        the next round plays: that round needs this one in memory, not on disk. Its calls
        are all in calls.jsonl before its files are written, so a kill before the files
        are on disk only means resume plays it again from the logged replies. Until the
        files are saved the events of the next round are held back, so observers see
        RoundSummarised (with the files on disk, index.json included) before them."""
        started, paused = time.monotonic(), self.control.paused_seconds()
        self.notify(RoundStarted(round, self.config.rounds))
        played = await Round(round, self.config, self.agents, self.state, self.llm, self.notify).play()
        if played is None:
            return
        strategies, games = played
        duration = round_to_ms(max(0.0, time.monotonic() - started - (self.control.paused_seconds() - paused)))
        await self.saves.previous()  # one round saved at a time, in order
        with anyio.CancelScope(shield=True):  # the state takes the round whole or not at all
            unsaved = Unsaved.before(self.state)
            # The round's bookkeeping runs in one worker thread: at 100 agents it takes tenths
            # of a second, which would freeze a UI sharing the event loop (the round's tasks
            # are done, and the next round starts only once it is in the state).
            event = await off_loop(self.take_round, round, strategies, games, duration)
            self.saves.start(group, lambda: self.save_round(round, strategies, games, event), unsaved, event)

    def take_round(
        self, round: int, strategies: list[StrategyRecord], games: list[GameResult], duration_ms: float
    ) -> RoundSummarised:
        """The round added to the state, and its summary event (runs in a worker thread)."""
        labels = round_player_labels(self.seed, round, self.n)
        summary = self.state.add_round(round, strategies, games, self.config.power.dynamics, labels, duration_ms)
        moves = self.state.moves
        return RoundSummarised(summary, moves.cooperation_rate, self.config.rounds, moves.fallback_share)

    async def save_round(
        self, round: int, strategies: list[StrategyRecord], games: list[GameResult], event: RoundSummarised
    ) -> None:
        await self.call_log.drain()  # a round's files never reach the disk before its calls
        await off_loop(self.store.write_round, round, strategies, games, event.summary)


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a worker thread; the event loop (and a UI on it) keeps running."""
    return await anyio.to_thread.run_sync(function, *args)


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first exception in a (possibly nested) group: the error itself, for its message."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def round_to_ms(seconds: float) -> float:
    return round(seconds, 3)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def run_experiment(
    config: Config,
    results_dir: Path | None = None,
    *,
    provider: Provider,
    observer: Observer | None = None,
    control: RunControl | None = None,
    store: ExperimentStore | None = None,
) -> ExperimentResult:
    """Run a resolved config (seed set) to the end; the store is created if not given."""
    from engine.store import new_experiment_dir

    if store is None:
        store = ExperimentStore(new_experiment_dir(results_dir or Path(config.results_dir), utc_now()))
    try:
        return await Experiment(config, store, provider, observer, control).run()
    finally:
        store.close()
