"""The experiment loop (SPEC §4). Emits events to an observer and honours RunControl.

Data flow: config -> runner -> (gateway/provider, game, analysis) -> store."""

import functools
import heapq
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import anyio
import msgspec

from engine import analysis, game, validity
from engine.agents import scripted
from engine.calllog import CallLog
from engine.calls import Budget, BudgetExceeded, CallFailed, CallGateway, FatalCallError, now_iso
from engine.conditions import Condition, history_window, resolve_condition
from engine.config import Config
from engine.control import RunControl
from engine.events import (
    ErrorLogged,
    Event,
    GameFinished,
    NullObserver,
    Observer,
    PhaseStarted,
    RoundStarted,
    RoundSummarised,
    RunFinished,
    RunStarted,
    StrategyCollected,
)
from engine.limits import Limiter
from engine.models import (
    Action,
    AgentInfo,
    ErrorRecord,
    ExperimentResult,
    GameResult,
    Manifest,
    ParseRule,
    RoundSummary,
    Status,
    StrategyRecord,
    StrategySource,
)
from engine.parsing import extract_strategy, parse_decision
from engine.prompts import (
    DECISION_MAX_TOKENS,
    DECISION_TEMPERATURE,
    STRATEGY_MAX_TOKENS,
    STRATEGY_TEMPERATURE,
    history_line,
    opponent_labels,
    prompt_hashes,
    render_decision_prompt,
    render_strategy_prompt,
    retry_instruction,
    round_player_labels,
)
from engine.providers.base import ChatRequest, Completion, Message, Provider
from engine.rng import keyed_rng
from engine.store import ExperimentStore

T = TypeVar("T")
CALL_FAILED = "call failed"  # how a fallback reason says no reply came back at all
DECISION_TRIES = 3  # the first ask + 2 follow-up turns when the reply is ambiguous
CUT_OFF = "length"  # the finish_reason of a reply cut off by max_tokens


class Decision(NamedTuple):
    """One player's move and how it was reached."""

    action: Action
    fallback: str | None  # why the move was drawn, or None when it was read or scripted
    parse_rule: ParseRule


def with_seed(config: Config) -> Config:
    """Draw a seed when none was given; the manifest records it."""
    if config.seed is not None:
        return config
    return msgspec.structs.replace(config, seed=secrets.randbelow(2**31))


def build_agents(config: Config) -> list[AgentInfo]:
    """Ids in population order: groups as given, each group's agents consecutively."""
    powers = game.initial_powers(config.seed or 0, config.agents or 0, config.power.initial)
    agents: list[AgentInfo] = []
    for group in config.population:
        for _ in range(group.count):
            llm = group.kind == "llm"
            agents.append(
                AgentInfo(
                    id=len(agents),
                    kind=group.kind,
                    strategy=None if llm else group.strategy,
                    model=(group.model or config.models.main) if llm else None,
                    sub_model=(group.sub_model or config.models.sub) if llm else None,
                    initial_power=powers[len(agents)],
                    final_power=powers[len(agents)],
                )
            )
    return agents


@functools.cache  # reading package metadata takes tens of ms: once per process
def package_versions() -> dict[str, str]:
    out = {}
    for name in ("acausal-tui", "textual", "httpx", "anyio", "msgspec"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class ExperimentState:
    """Everything the next round depends on; rebuilt from the round files on resume."""

    powers: list[float]
    total_scores: list[float]
    strategies: dict[int, StrategyRecord] = field(default_factory=dict)  # latest per agent
    history_lines: list[list[tuple[int, str]]] = field(default_factory=list)  # per agent: (round, line)
    pair_history: dict[tuple[int, int], list[tuple[str, str]]] = field(default_factory=dict)
    summaries: list[RoundSummary] = field(default_factory=list)
    all_strategies: list[StrategyRecord] = field(default_factory=list)
    all_games: list[GameResult] = field(default_factory=list)
    similarity: analysis.SimilarityTracker = field(default_factory=analysis.SimilarityTracker)


class Experiment:
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
        self.window = history_window(self.condition.history)
        self.agents = build_agents(config)
        self.state = ExperimentState(
            powers=[a.initial_power for a in self.agents],
            total_scores=[0.0] * self.n,
            history_lines=[[] for _ in range(self.n)],
        )
        self.error_count = 0
        self.last_call_error: str | None = None
        # call key -> whether its reply was cut off by max_tokens (keys, so replays count once)
        self.cut_off: dict[str, bool] = {}
        self._label_cache: dict[tuple[int, int | None], dict[int, str]] = {}
        self.start_time = now_iso()
        prices = getattr(provider, "prices", None)  # real providers: say when a cost is unknown
        if prices is not None:
            prices.on_unknown = lambda model: self.error(
                "unknown_price",
                f"no price known for model {model!r}: its cost counts as $0 and the budget "
                "cannot bound it (set provider.prices)",
                model=model,
            )
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
        )
        self.manifest = Manifest(
            experiment_id=store.experiment_id,
            status="running",
            start_time=self.start_time,
            seed=self.seed,
            config=config,
            condition=self.condition,
            provider=provider.name,
            base_url=None if provider.simulated else config.provider.base_url,
            simulated=provider.simulated,
            main_model=config.models.main,
            sub_model=config.models.sub,
            prompt_hashes=prompt_hashes(),
            package_versions=dict(package_versions()),
            agents=self.agents,
            warnings=design_warnings(self.condition, self.agents),
        )

    # -- reporting -------------------------------------------------------------------

    def notify(self, event: Event) -> None:
        self.observer.on_event(event)

    def error(self, type_: str, message: str, **context: str | int | float | None) -> None:
        self.error_count += 1
        record = ErrorRecord(time=now_iso(), type=type_, message=message, context=context)
        self.store.log_error(record)
        self.notify(ErrorLogged(record))

    # -- the run ----------------------------------------------------------------------

    async def run(self) -> ExperimentResult:
        status: Status | None = None
        message: str | None = None
        with anyio.CancelScope(shield=True):  # fsync: not on the loop, and never half done
            await off_loop(self.store.write_manifest, self.manifest)
        # a resumed run's earlier rounds: their calls are in the replay map (engine/resume.py)
        self.cut_off.update((key, call.finish_reason == CUT_OFF) for key, call in self.gateway.replay.items())
        self.notify(RunStarted(self.manifest, self.store.directory, len(self.state.summaries) + 1))
        try:
            with anyio.CancelScope() as scope:
                self.control.attach(scope, self.notify)
                for round in range(len(self.state.summaries) + 1, self.config.rounds + 1):
                    await self.play_round(round)
                    if self.gateway.budget_exceeded:
                        status, message = "budget_exceeded", "stopped: the cost budget was reached"
                        break
            if self.control.aborted:
                status, message = "aborted", self.control.abort_reason
            elif status is None:
                status = "completed"
        except* FatalCallError as group:
            status, message = "failed", str(group.exceptions[0])
            self.error("fatal", message)
        except* OSError as group:
            status, message = "failed", f"cannot write the results: {group.exceptions[0]}"
            self.error("storage", message)
        except* Exception as group:
            status = "failed"
            message = f"internal error: {type(group.exceptions[0]).__name__}: {group.exceptions[0]}"
            self.error("internal", message)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.call_log.drain()
                except OSError as exc:
                    status, message = "failed", f"cannot write the results: {exc}"
                finally:
                    self.call_log.close()
                # off the loop: the indicators over every game take tenths of a second at 100 agents
                result = await off_loop(self.finish, status or "aborted", message or "cancelled")
            self.notify(RunFinished(result, self.store.directory))
        return result

    def finish(self, status: Status, message: str | None) -> ExperimentResult:
        """The result and the final manifest, written (runs in a worker thread)."""
        end = now_iso()
        # New records, not changed in place: observers hold the old ones (RunStarted's manifest)
        # and may read them at any time, finish running in a worker thread.
        self.agents = [
            msgspec.structs.replace(
                agent, final_power=self.state.powers[agent.id], total_score=self.state.total_scores[agent.id]
            )
            for agent in self.agents
        ]
        result = ExperimentResult(
            experiment_id=self.store.experiment_id,
            status=status,
            start_time=self.start_time,
            end_time=end,
            seed=self.seed,
            config=self.config,
            condition=self.condition,
            total_rounds=len(self.state.summaries),
            total_games=len(self.state.all_games),
            total_api_calls=self.control.stats.calls,
            total_retries=self.control.stats.retries,
            total_cost=self.control.stats.cost,
            cost_is_estimate=self.gateway.cost_is_estimate,
            round_summaries=self.state.summaries,
            agents=self.agents,
            acausal_indicators=analysis.compute_indicators(
                self.state.all_strategies, self.state.all_games, self.state.summaries
            ),
            error_count=self.error_count,
            simulated=self.provider.simulated,
            cooperation_breakdown=analysis.cooperation_breakdown(self.agents, self.state.all_games),
            message=None if status == "completed" else message,
            empty_replies=self.control.stats.empty_replies,
            validity=validity.compute_validity(
                self.agents, self.state.all_games, self.state.all_strategies,
                sum(self.cut_off.values()), self.config.validity,
            ),
        )
        self.store.write_result(result)
        self.manifest = msgspec.structs.replace(
            self.manifest, status=status, end_time=end, message=result.message, agents=self.agents
        )
        self.store.write_manifest(self.manifest)
        return result

    async def play_round(self, round: int) -> None:
        started, paused = time.monotonic(), self.control.paused_seconds()
        self.notify(RoundStarted(round, self.config.rounds))
        played = await self.play_phases(round)
        if played is None:
            return
        strategies, games = played
        self.check_decisions_reached_a_model(round, games)
        scores = [0.0] * self.n
        for g in games:
            scores[g.player1_id] += g.player1_payoff
            scores[g.player2_id] += g.player2_payoff
        state = self.state
        powers = game.update_powers(state.powers, scores) if self.config.power.dynamics else state.powers
        paused = self.control.paused_seconds() - paused  # left out of the duration
        # The round's bookkeeping runs in a worker thread: at 100 agents it takes tenths of a
        # second, which would freeze a UI sharing the event loop (the round's tasks are done).
        similarity = await off_loop(state.similarity.add_round, analysis.llm_strategy_texts(strategies))
        summary = await off_loop(
            analysis.summarize_round,
            round,
            games,
            self.n,
            list(powers),
            round_player_labels(self.seed, round, self.n),
            similarity,
            round_to_ms(max(0.0, time.monotonic() - started - paused)),
        )
        with anyio.CancelScope(shield=True):  # a round is saved whole or not at all
            await self.call_log.drain()  # a round's files never reach the disk before its calls
            await anyio.to_thread.run_sync(self.store.write_round, round, strategies, games, summary)
            # the state takes the round only once its files are written, so a failed write
            # leaves the result consistent with the files (the similarity corpus aside)
            state.powers = powers
            state.total_scores = [t + s for t, s in zip(state.total_scores, scores, strict=True)]
            await off_loop(self.record_history, round, games)
            state.all_strategies += strategies
            state.all_games += games
            state.summaries.append(summary)
        moves = await off_loop(analysis.all_moves, state.all_games)
        self.notify(RoundSummarised(
            summary, analysis.cooperation_rate(moves), self.config.rounds, analysis.fallback_share(moves)
        ))

    # -- strategies and games, pipelined ----------------------------------------------

    async def play_phases(self, round: int) -> tuple[list[StrategyRecord], list[GameResult]] | None:
        """The strategies and games of one round, pipelined: a player's moves are queued as
        soon as its own strategy is in (a decision needs only its player's strategy and
        history), and a pool of workers, as many as the concurrency limit, takes queued
        moves in turn, building each prompt only when it takes the move. So the first
        decisions start while other strategies are still being written, and a round holds at
        most one prompt per worker however many agents play. A player whose strategy is not
        fresh (carried over, fallback) waits until every strategy is in, so a dead endpoint
        still stops the run before any decision is asked for. Observers see the same order as
        ever: StrategyCollected events, PhaseStarted("games"), then GameFinished events
        (games that finish earlier are held back until then). None when the budget stopped
        the round part-way."""
        self.notify(PhaseStarted(round, "strategies", self.n))
        pairs = game.pairings(self.n)
        moves_of: list[list[tuple[int, int]]] = [[] for _ in range(self.n)]  # (game k, slot)
        for k, (i, j) in enumerate(pairs, start=1):
            moves_of[i].append((k, 0))
            moves_of[j].append((k, 1))
        records: dict[int, StrategyRecord] = {}
        waiting: list[int] = []  # players with a non-fresh strategy, queued once all are in
        ready = MoveQueue()
        games = GameBook(self, round, pairs)

        def queue(player: int) -> None:
            ready.put(moves_of[player])

        left = len(self.agents)  # strategies not in yet

        def all_strategies_in() -> None:
            self.check_strategies_reached_a_model(round, records)
            for player in sorted(waiting):
                queue(player)
            ready.close()
            self.notify(PhaseStarted(round, "games", len(pairs)))
            games.release_events()

        async def collect(agent: AgentInfo) -> None:
            nonlocal left
            try:
                record = await self.write_strategy(round, agent)
            except BudgetExceeded:
                pass
            else:
                records[agent.id] = self.state.strategies[agent.id] = record
                self.notify(StrategyCollected(record))
                if record.kind == "scripted" or analysis.is_fresh(record):
                    queue(agent.id)
                else:
                    waiting.append(agent.id)
            left -= 1
            if not left:
                all_strategies_in()

        async def worker() -> None:
            while (move := await ready.get()) is not None:
                await games.play_move(*move)

        # One task group, no nesting: an error (a bad key) reaches run() as itself.
        async with anyio.create_task_group() as tg:
            for agent in self.agents:
                tg.start_soon(collect, agent)
            for _ in range(min(self.config.provider.max_concurrency, 2 * len(pairs))):
                tg.start_soon(worker)
        if self.gateway.budget_exceeded or len(records) < self.n:
            return None
        results = games.results()
        if results is None:
            return None
        return [records[a.id] for a in self.agents], results

    def check_strategies_reached_a_model(self, round: int, records: dict[int, StrategyRecord]) -> None:
        """Strategies that are all stand-ins because no call got through are not data: stop."""
        llm = [r for r in records.values() if r.kind == "llm"]
        if llm and not self.gateway.budget_exceeded and not any(map(analysis.is_fresh, llm)):
            raise FatalCallError(
                f"every strategy call of round {round} failed (last: {self.last_call_error}); "
                "check the base URL, the model ids and the key, then resume"
            )

    async def write_strategy(self, round: int, agent: AgentInfo) -> StrategyRecord:
        if agent.kind == "scripted":
            text = scripted.DESCRIPTIONS[agent.strategy or ""]
            return StrategyRecord(
                agent_id=agent.id, round=round, kind="scripted", model=None, strategy_text=text,
                full_reasoning=text, timestamp=now_iso(),
            )
        prompt = render_strategy_prompt(
            agents=self.n,
            condition=self.condition,
            power=self.state.powers[agent.id],
            dynamics=self.config.power.dynamics,
            recent=self.state.summaries,
            seed=self.seed,
        )
        request = ChatRequest(
            key=f"strategy/r{round}/a{agent.id}",
            model=agent.model or self.config.models.main,
            messages=[Message("user", prompt)],
            temperature=STRATEGY_TEMPERATURE,
            max_tokens=STRATEGY_MAX_TOKENS,
        )
        try:
            completion = await self.call(request)
        except CallFailed as exc:
            self.last_call_error = str(exc)
            return self.failed_strategy(round, agent.id, request.model, str(exc))
        text, flags = extract_strategy(completion.text, completion.finish_reason)
        if text is None:  # cut off before any rule, or empty: no strategy was written
            reason = "reply cut off by max_tokens before a STRATEGY: line" if completion.text.strip() else "empty reply"
            self.last_call_error = reason
            return self.failed_strategy(round, agent.id, request.model, reason, completion, flags)
        return StrategyRecord(
            agent_id=agent.id, round=round, kind="llm", model=request.model, strategy_text=text,
            full_reasoning=completion.text, flags=flags, prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens, cost=completion.cost, timestamp=now_iso(),
        )

    def failed_strategy(
        self, round: int, agent: int, model: str, reason: str,
        completion: Completion | None = None, flags: list[str] | None = None,
    ) -> StrategyRecord:
        """No strategy came back: the agent keeps its previous one (`carried_over`), or in
        round 1 plays the condition's fallback text (`fallback`). A reply that came back
        unusable is kept in full_reasoning, with its tokens and cost."""
        previous = self.state.strategies.get(agent)
        flag = "carried_over" if previous else "fallback"
        text = previous.strategy_text if previous else self.condition.fallback_strategy
        self.error("strategy_failed", f"agent {agent}: {reason}; using the {flag} strategy",
                   round=round, agent=agent)
        return StrategyRecord(
            agent_id=agent, round=round, kind="llm", model=model, strategy_text=text,
            full_reasoning=completion.text if completion else "", flags=[flag, *(flags or [])],
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            cost=completion.cost if completion else 0.0, timestamp=now_iso(),
        )

    async def call(self, request: ChatRequest) -> Completion:
        """One model call through the gateway; remembers whether the reply was cut off."""
        completion = await self.gateway.call(request)
        self.cut_off[request.key] = completion.finish_reason == CUT_OFF
        return completion

    # -- games ------------------------------------------------------------------------

    def labels_for(self, viewer: int, round: int) -> dict[int, str]:
        shuffled = self.condition.labels == "shuffled"
        key = (viewer, round if shuffled else None)
        cache = self._label_cache
        if key not in cache:
            cache[key] = opponent_labels(self.seed, viewer, self.n, round if shuffled else None)
        return cache[key]

    def history_text(self, agent: int, round: int) -> str:
        """What a round-`round` decision of `agent` sees: its games of rounds < round only
        (the current round's games are added after the round), cut to the condition's window."""
        lines = self.state.history_lines[agent]
        if self.window is not None:
            lines = [item for item in lines if item[0] >= round - self.window]
        return "\n".join(line for _, line in lines)

    async def decide(self, round: int, k: int, player: int, me: int, other: int, history: str) -> Decision:
        """One move, read from the sub model's reply (with up to 2 follow-up turns when it is
        ambiguous), or drawn by `on_unparseable` when no reply could be read."""
        agent = self.agents[me]
        if agent.kind == "scripted":
            pair = self.state.pair_history.get((me, other), [])
            rng = keyed_rng(self.seed, "scripted", round, k, player)
            return Decision(scripted.decide(agent.strategy or "", pair, rng), None, "scripted")
        strategy = self.state.strategies[me].strategy_text
        swapped = self.condition.option_order == "shuffled" and (
            keyed_rng(self.seed, "option_order", round, k, player).random() < 0.5
        )
        prompt = render_decision_prompt(strategy, history, self.labels_for(me, round)[other], swapped)
        messages = [Message("user", prompt)]
        reason = ""
        for attempt in range(DECISION_TRIES):
            request = ChatRequest(
                key=f"decision/r{round}/g{k}/p{player}/t{attempt}",
                model=agent.sub_model or self.config.models.sub,
                messages=messages,
                temperature=DECISION_TEMPERATURE,
                max_tokens=DECISION_MAX_TOKENS,
            )
            try:
                completion = await self.call(request)
            except CallFailed as exc:
                self.last_call_error = str(exc)
                reason = f"{CALL_FAILED}: {exc}"
                break
            action, rule = parse_decision(completion.text, completion.finish_reason)
            if action is not None and rule is not None:
                return Decision(action, None, rule if attempt == 0 else "follow_up")
            cut = " (cut off by max_tokens)" if completion.finish_reason == CUT_OFF else ""
            reason = f"ambiguous reply after {attempt + 1} tries{cut}"
            messages = [*messages, Message("assistant", completion.text), Message("user", retry_instruction(swapped))]
        action = self.fallback_move(round, k, player)
        self.error("decision_fallback", f"game r{round}_g{k} player {player}: {reason}; drew {action}",
                   round=round, game=f"r{round}_g{k}", agent=me)
        return Decision(action, reason, "fallback")

    def strategy_source(self, agent: int) -> StrategySource:
        """What the strategy the agent plays this round is (SPEC §6)."""
        if self.agents[agent].kind == "scripted":
            return "scripted"
        flags = self.state.strategies[agent].flags
        if "carried_over" in flags:
            return "carried_over"
        return "fallback" if "fallback" in flags else "fresh"

    def check_decisions_reached_a_model(self, round: int, games: list[GameResult]) -> None:
        """Moves that are all coin flips because no call got through are not data: stop."""
        llm_moves = failed = 0
        for g in games:
            for player, reason in ((g.player1_id, g.player1_fallback), (g.player2_id, g.player2_fallback)):
                if self.agents[player].kind == "llm":
                    llm_moves += 1
                    failed += bool(reason and reason.startswith(CALL_FAILED))
        if llm_moves and failed == llm_moves:
            raise FatalCallError(
                f"every decision call of round {round} failed (last: {self.last_call_error}); "
                "check the sub model id and the endpoint, then resume"
            )

    def fallback_move(self, round: int, k: int, player: int) -> Action:
        rule = self.condition.on_unparseable
        if rule == "cooperate":
            return "COOPERATE"
        if rule == "defect":
            return "DEFECT"
        return "COOPERATE" if keyed_rng(self.seed, "fallback", round, k, player).random() < 0.5 else "DEFECT"

    def record_history(self, round: int, games: list[GameResult]) -> None:
        """Append the round's games to each player's history, in game order."""
        state = self.state
        for g in games:
            for me, other, mine, theirs in (
                (g.player1_id, g.player2_id, g.player1_action, g.player2_action),
                (g.player2_id, g.player1_id, g.player2_action, g.player1_action),
            ):
                if self.agents[me].kind == "scripted":  # only scripted agents read it
                    state.pair_history.setdefault((me, other), []).append((mine, theirs))
                else:
                    label = self.labels_for(me, round)[other]
                    state.history_lines[me].append((round, history_line(round, label, mine, theirs)))


class MoveQueue:
    """The moves ready to be decided, as (game k, slot): the lowest game first, so games
    complete in about their order and a game's second move is not left waiting behind
    other players' moves. `get` waits for one, or returns None once closed and empty."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int]] = []
        self._waiting: deque[anyio.Event] = deque()
        self._closed = False

    def put(self, moves: list[tuple[int, int]]) -> None:
        for move in moves:
            heapq.heappush(self._heap, move)
        for _ in range(min(len(moves), len(self._waiting))):
            self._waiting.popleft().set()

    def close(self) -> None:
        self._closed = True
        while self._waiting:
            self._waiting.popleft().set()

    async def get(self) -> tuple[int, int] | None:
        while not self._heap:
            if self._closed:
                return None
            woken = anyio.Event()
            self._waiting.append(woken)
            await woken.wait()
        return heapq.heappop(self._heap)


class GameBook:
    """The games of one round as their moves come in: each move decided with its player's
    history (built once per player, when first needed), each game recorded when its second
    move is in, GameFinished held back until the round's strategies are all in."""

    def __init__(self, experiment: Experiment, round: int, pairs: list[tuple[int, int]]) -> None:
        self.experiment = experiment
        self.round = round
        self.pairs = pairs
        self.labels = round_player_labels(experiment.seed, round, experiment.n)
        self.moves: list[list[Decision | None]] = [[None, None] for _ in pairs]
        self.games: list[GameResult | None] = [None] * len(pairs)
        self.histories: dict[int, str] = {}
        self.held: list[GameFinished] | None = []  # None once released
        experiment._label_cache = {k: v for k, v in experiment._label_cache.items() if k[1] is None}

    def history(self, player: int) -> str:
        if player not in self.histories:
            llm = self.experiment.agents[player].kind == "llm"
            self.histories[player] = self.experiment.history_text(player, self.round) if llm else ""
        return self.histories[player]

    async def play_move(self, k: int, slot: int) -> None:
        """One player's move; the second move to finish completes the game."""
        i, j = self.pairs[k - 1]
        me, other = (i, j) if slot == 0 else (j, i)
        try:
            move = await self.experiment.decide(self.round, k, slot + 1, me, other, self.history(me))
        except BudgetExceeded:
            return  # this game stays unplayed; the round is not saved
        self.moves[k - 1][slot] = move
        if None not in self.moves[k - 1]:
            self.finish(k, i, j)

    def finish(self, k: int, i: int, j: int) -> None:
        e = self.experiment
        d1, d2 = self.moves[k - 1]
        assert d1 is not None and d2 is not None
        p1, p2 = e.state.powers[i], e.state.powers[j]
        pay1, pay2 = game.payoffs(d1.action, d2.action, p1, p2, e.config.power.dynamics)
        result = GameResult(
            game_id=f"r{self.round}_g{k}", round=self.round, player1_id=i, player2_id=j,
            player1_action=d1.action, player2_action=d2.action, player1_payoff=pay1,
            player2_payoff=pay2, player1_power_before=p1, player2_power_before=p2,
            player1_fallback=d1.fallback, player2_fallback=d2.fallback, timestamp=now_iso(),
            player1_parse_rule=d1.parse_rule, player2_parse_rule=d2.parse_rule,
            player1_strategy_source=e.strategy_source(i),
            player2_strategy_source=e.strategy_source(j),
        )
        self.games[k - 1] = result
        event = GameFinished(result, self.labels[i], self.labels[j])
        if self.held is None:
            e.notify(event)
        else:
            self.held.append(event)

    def release_events(self) -> None:
        for event in self.held or []:
            self.experiment.notify(event)
        self.held = None

    def results(self) -> list[GameResult] | None:
        if any(g is None for g in self.games):
            return None
        return self.games  # type: ignore[return-value]


def design_warnings(condition: Condition, agents: list[AgentInfo]) -> list[str]:
    """Caveats recorded in the manifest. Telling agents something false can be a deliberate
    design, so it is allowed, but never silent."""
    models = {(a.model, a.sub_model) for a in agents if a.kind == "llm"}
    if condition.identity and models and (len(models) > 1 or any(a.kind == "scripted" for a in agents)):
        return ["the identity statement tells every LLM agent that all opponents are identical "
                "copies of the same model, which is false for this population (scripted agents "
                "or several models)"]
    return []


async def off_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a worker thread; the event loop (and a UI on it) keeps running."""
    return await anyio.to_thread.run_sync(function, *args)


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
