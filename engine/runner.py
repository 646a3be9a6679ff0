"""The experiment loop (SPEC §4). Emits events to an observer and honours RunControl.

Data flow: config -> runner -> (gateway/provider, game, analysis) -> store."""

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NamedTuple

import anyio
import msgspec

from engine import analysis, game, validity
from engine.agents import scripted
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
        self.gateway = CallGateway(
            provider,
            self.control,
            seed=self.seed,
            limiter=limiter or Limiter(config.provider.rpm, config.provider.max_concurrency),
            budget_usd=config.provider.max_cost_usd,
            budget=budget,
            log_call=store.append_call,
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
            package_versions=package_versions(),
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
        self.store.write_manifest(self.manifest)
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
                result = self.finish(status or "aborted", message or "cancelled")
        return result

    def finish(self, status: Status, message: str | None) -> ExperimentResult:
        end = now_iso()
        for agent in self.agents:
            agent.final_power = self.state.powers[agent.id]
            agent.total_score = self.state.total_scores[agent.id]
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
        self.notify(RunFinished(result, self.store.directory))
        return result

    async def play_round(self, round: int) -> None:
        started, paused = time.monotonic(), self.control.paused_seconds()
        self.notify(RoundStarted(round, self.config.rounds))
        strategies = await self.strategy_phase(round)
        if self.gateway.budget_exceeded:
            return
        games = await self.game_phase(round)
        if games is None:
            return
        self.check_decisions_reached_a_model(round, games)
        scores = [0.0] * self.n
        for g in games:
            scores[g.player1_id] += g.player1_payoff
            scores[g.player2_id] += g.player2_payoff
        state = self.state
        powers = game.update_powers(state.powers, scores) if self.config.power.dynamics else state.powers
        paused = self.control.paused_seconds() - paused  # left out of the duration
        summary = analysis.summarize_round(
            round,
            games,
            self.n,
            list(powers),
            round_player_labels(self.seed, round, self.n),
            state.similarity.add_round(analysis.llm_strategy_texts(strategies)),
            round_to_ms(max(0.0, time.monotonic() - started - paused)),
        )
        with anyio.CancelScope(shield=True):  # a round is saved whole or not at all
            await anyio.to_thread.run_sync(self.store.write_round, round, strategies, games, summary)
            # the state takes the round only once its files are written, so a failed write
            # leaves the result consistent with the files (the similarity corpus aside)
            state.powers = powers
            state.total_scores = [t + s for t, s in zip(state.total_scores, scores, strict=True)]
            self.record_history(round, games)
            state.all_strategies += strategies
            state.all_games += games
            state.summaries.append(summary)
        moves = analysis.all_moves(state.all_games)
        self.notify(RoundSummarised(
            summary, analysis.cooperation_rate(moves), self.config.rounds, analysis.fallback_share(moves)
        ))

    # -- strategies -------------------------------------------------------------------

    async def strategy_phase(self, round: int) -> list[StrategyRecord]:
        self.notify(PhaseStarted(round, "strategies", self.n))
        records: dict[int, StrategyRecord] = {}

        async def collect(agent: AgentInfo) -> None:
            try:
                records[agent.id] = await self.write_strategy(round, agent)
            except BudgetExceeded:
                return
            self.notify(StrategyCollected(records[agent.id]))

        async with anyio.create_task_group() as tg:
            for agent in self.agents:
                tg.start_soon(collect, agent)
        ordered = [records[a.id] for a in self.agents if a.id in records]
        for record in ordered:
            self.state.strategies[record.agent_id] = record
        llm = [r for r in ordered if r.kind == "llm"]
        if llm and not self.gateway.budget_exceeded and not any(map(analysis.is_fresh, llm)):
            raise FatalCallError(
                f"every strategy call of round {round} failed (last: {self.last_call_error}); "
                "check the base URL, the model ids and the key, then resume"
            )
        return ordered

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

    async def game_phase(self, round: int) -> list[GameResult] | None:
        """Play every pair once. None when the budget stopped the round part-way."""
        pairs = game.pairings(self.n)
        self.notify(PhaseStarted(round, "games", len(pairs)))
        self._label_cache = {k: v for k, v in self._label_cache.items() if k[1] is None}
        histories = {a.id: self.history_text(a.id, round) for a in self.agents if a.kind == "llm"}
        player_labels = round_player_labels(self.seed, round, self.n)
        results: list[GameResult | None] = [None] * len(pairs)
        moves: list[list[Decision | None]] = [[None, None] for _ in pairs]

        def finish_game(k: int, i: int, j: int) -> None:
            d1, d2 = moves[k - 1]
            assert d1 is not None and d2 is not None
            p1, p2 = self.state.powers[i], self.state.powers[j]
            pay1, pay2 = game.payoffs(d1.action, d2.action, p1, p2, self.config.power.dynamics)
            result = GameResult(
                game_id=f"r{round}_g{k}", round=round, player1_id=i, player2_id=j,
                player1_action=d1.action, player2_action=d2.action, player1_payoff=pay1,
                player2_payoff=pay2, player1_power_before=p1, player2_power_before=p2,
                player1_fallback=d1.fallback, player2_fallback=d2.fallback, timestamp=now_iso(),
                player1_parse_rule=d1.parse_rule, player2_parse_rule=d2.parse_rule,
                player1_strategy_source=self.strategy_source(i),
                player2_strategy_source=self.strategy_source(j),
            )
            results[k - 1] = result
            self.notify(GameFinished(result, player_labels[i], player_labels[j]))

        async def move(k: int, slot: int, i: int, j: int) -> None:
            """One player's move; the second move to finish completes the game. Both moves
            of every game are tasks of one group, decided independently and concurrently."""
            me, other = (i, j) if slot == 0 else (j, i)
            try:
                moves[k - 1][slot] = await self.decide(round, k, slot + 1, me, other, histories.get(me, ""))
            except BudgetExceeded:
                return  # this game stays unplayed; the round is not saved
            if None not in moves[k - 1]:
                finish_game(k, i, j)

        async with anyio.create_task_group() as tg:
            for k, (i, j) in enumerate(pairs, start=1):
                tg.start_soon(move, k, 0, i, j)
                tg.start_soon(move, k, 1, i, j)
        if any(r is None for r in results):
            return None
        return results  # type: ignore[return-value]

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
                state.pair_history.setdefault((me, other), []).append((mine, theirs))
                if self.agents[me].kind == "llm":
                    label = self.labels_for(me, round)[other]
                    state.history_lines[me].append((round, history_line(round, label, mine, theirs)))


def design_warnings(condition: Condition, agents: list[AgentInfo]) -> list[str]:
    """Caveats recorded in the manifest. Telling agents something false can be a deliberate
    design, so it is allowed, but never silent."""
    models = {(a.model, a.sub_model) for a in agents if a.kind == "llm"}
    if condition.identity and models and (len(models) > 1 or any(a.kind == "scripted" for a in agents)):
        return ["the identity statement tells every LLM agent that all opponents are identical "
                "copies of the same model, which is false for this population (scripted agents "
                "or several models)"]
    return []


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
