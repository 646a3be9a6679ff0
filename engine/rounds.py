"""One round's strategies and games, pipelined: moves decided as soon as their player's
strategy is in, by a pool of workers, in about game order."""

import heapq
from collections import deque
from collections.abc import Callable

import anyio
import anyio.lowlevel

from engine import analysis, game
from engine.agents import scripted
from engine.agents.llm import CALL_FAILED, STRATEGY_CUT_OFF, Decision, LLMAgents, strategy_source
from engine.calls import BudgetExceeded, FatalCallError, now_iso
from engine.config import Config
from engine.events import Event, GameFinished, PhaseStarted, StrategyCollected
from engine.models import AgentInfo, GameResult, StrategyRecord
from engine.prompts import STRATEGY_MAX_TOKENS, round_player_labels
from engine.rng import keyed_rng
from engine.state import ExperimentState


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


class Round:
    """What playing one round needs from the experiment, and the round's play."""

    def __init__(
        self,
        round: int,
        config: Config,
        agents: list[AgentInfo],
        state: ExperimentState,
        llm: LLMAgents,
        notify: Callable[[Event], None],
    ) -> None:
        assert config.seed is not None
        self.round = round
        self.config = config
        self.seed = config.seed
        self.agents = agents
        self.n = len(agents)
        self.state = state
        self.llm = llm
        self.notify = notify

    async def play(self) -> tuple[list[StrategyRecord], list[GameResult]] | None:
        """The strategies and games of the round, pipelined: a player's moves are queued as
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
        round = self.round
        self.notify(PhaseStarted(round, "strategies", self.n))
        pairs = game.pairings(self.n)
        moves_of: list[list[tuple[int, int]]] = [[] for _ in range(self.n)]  # (game k, slot)
        for k, (i, j) in enumerate(pairs, start=1):
            moves_of[i].append((k, 0))
            moves_of[j].append((k, 1))
        records: dict[int, StrategyRecord] = {}
        waiting: list[int] = []  # players with a non-fresh strategy, queued once all are in
        ready = MoveQueue()
        games = GameBook(self, pairs)

        def queue(player: int) -> None:
            ready.put(moves_of[player])

        left = len(self.agents)  # strategies not in yet
        workers = min(self.config.provider.max_concurrency, 2 * len(pairs))
        warming = anyio.CancelScope()  # the decisions' connections, opened while strategies are written

        async def warm_up() -> None:
            with warming:
                await self.llm.gateway.prepare(workers)

        def all_strategies_in() -> None:
            warming.cancel()
            self.check_strategies_reached_a_model(records)
            for player in sorted(waiting):
                queue(player)
            ready.close()
            self.notify(PhaseStarted(round, "games", len(pairs)))
            games.release_events()

        async def collect(agent: AgentInfo) -> None:
            nonlocal left
            try:
                record = await self.write_strategy(agent)
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
            # The strategy requests go out first; the workers are spawned while they are in
            # flight (spawning ~100 tasks is milliseconds of CPU, no longer ahead of the round's first call).
            await anyio.lowlevel.checkpoint()
            for _ in range(workers):
                tg.start_soon(worker)
            tg.start_soon(warm_up)
        if self.llm.gateway.budget_exceeded or len(records) < self.n:
            return None
        results = games.results()
        if results is None:
            return None
        self.check_decisions_reached_a_model(results)
        return [records[a.id] for a in self.agents], results

    async def write_strategy(self, agent: AgentInfo) -> StrategyRecord:
        if agent.kind == "scripted":
            text = scripted.DESCRIPTIONS[agent.strategy or ""]
            return StrategyRecord(
                agent_id=agent.id,
                round=self.round,
                kind="scripted",
                model=None,
                strategy_text=text,
                full_reasoning=text,
                timestamp=now_iso(),
            )
        state = self.state
        return await self.llm.write_strategy(
            self.round, agent, state.strategies.get(agent.id), state.powers[agent.id], state.summaries
        )

    async def decide(self, k: int, player: int, me: int, other: int, history: str) -> Decision:
        """Player `player` (1 or 2) of game `k`, agent `me` against `other`."""
        agent = self.agents[me]
        if agent.kind == "scripted":
            pair = self.state.pair_history.get((me, other), [])
            rng = keyed_rng(self.seed, "scripted", self.round, k, player)
            return Decision(scripted.decide(agent.strategy or "", pair, rng), None, "scripted")
        label = self.state.history.labels(me, self.round)[other]
        return await self.llm.decide(
            self.round, k, player, agent, self.state.strategies[me].strategy_text, history, label
        )

    def check_strategies_reached_a_model(self, records: dict[int, StrategyRecord]) -> None:
        """Strategies that are all stand-ins because no call got through are not data: stop."""
        llm = [r for r in records.values() if r.kind == "llm"]
        if llm and not self.llm.gateway.budget_exceeded and not any(map(analysis.is_fresh, llm)):
            last = self.llm.last_call_error or ""
            if last.startswith(STRATEGY_CUT_OFF):  # the model answered, at more length than allowed
                advice = (
                    f"the main model writes more than {STRATEGY_MAX_TOKENS} tokens before its rule "
                    "(a reasoning model?); start a new experiment with another main model"
                )
            else:
                advice = "check the base URL, the model ids and the key, then resume"
            raise FatalCallError(f"every strategy call of round {self.round} failed (last: {last}); {advice}")

    def check_decisions_reached_a_model(self, games: list[GameResult]) -> None:
        """Moves that are all coin flips because no call got through are not data: stop."""
        llm_moves = failed = 0
        for g in games:
            for player, reason in ((g.player1_id, g.player1_fallback), (g.player2_id, g.player2_fallback)):
                if self.agents[player].kind == "llm":
                    llm_moves += 1
                    failed += bool(reason and reason.startswith(CALL_FAILED))
        if llm_moves and failed == llm_moves:
            raise FatalCallError(
                f"every decision call of round {self.round} failed (last: {self.llm.last_call_error}); "
                "check the sub model id and the endpoint, then resume"
            )


class GameBook:
    """The games of one round as their moves come in: each move decided with its player's
    history (built once per player, when first needed), each game recorded when its second
    move is in, GameFinished held back until the round's strategies are all in."""

    def __init__(self, play: Round, pairs: list[tuple[int, int]]) -> None:
        self.play = play
        self.round = play.round
        self.pairs = pairs
        self.labels = round_player_labels(play.seed, play.round, play.n)
        self.moves: list[list[Decision | None]] = [[None, None] for _ in pairs]
        self.games: list[GameResult | None] = [None] * len(pairs)
        self.histories: dict[int, str] = {}
        self.held: list[GameFinished] | None = []  # None once released

    def history(self, player: int) -> str:
        if player not in self.histories:
            llm = self.play.agents[player].kind == "llm"
            self.histories[player] = self.play.state.history.text(player, self.round) if llm else ""
        return self.histories[player]

    async def play_move(self, k: int, slot: int) -> None:
        """One player's move; the second move to finish completes the game."""
        i, j = self.pairs[k - 1]
        me, other = (i, j) if slot == 0 else (j, i)
        try:
            move = await self.play.decide(k, slot + 1, me, other, self.history(me))
        except BudgetExceeded:
            return  # this game stays unplayed; the round is not saved
        self.moves[k - 1][slot] = move
        if None not in self.moves[k - 1]:
            self.finish(k, i, j)

    def finish(self, k: int, i: int, j: int) -> None:
        play = self.play
        d1, d2 = self.moves[k - 1]
        assert d1 is not None and d2 is not None
        p1, p2 = play.state.powers[i], play.state.powers[j]
        pay1, pay2 = game.payoffs(d1.action, d2.action, p1, p2, play.config.power.dynamics)
        strategies = play.state.strategies
        result = GameResult(
            game_id=f"r{self.round}_g{k}",
            round=self.round,
            player1_id=i,
            player2_id=j,
            player1_action=d1.action,
            player2_action=d2.action,
            player1_payoff=pay1,
            player2_payoff=pay2,
            player1_power_before=p1,
            player2_power_before=p2,
            player1_fallback=d1.fallback,
            player2_fallback=d2.fallback,
            timestamp=now_iso(),
            player1_parse_rule=d1.parse_rule,
            player2_parse_rule=d2.parse_rule,
            player1_strategy_source=strategy_source(play.agents[i], strategies[i]),
            player2_strategy_source=strategy_source(play.agents[j], strategies[j]),
        )
        self.games[k - 1] = result
        event = GameFinished(result, self.labels[i], self.labels[j])
        if self.held is None:
            play.notify(event)
        else:
            self.held.append(event)

    def release_events(self) -> None:
        for event in self.held or []:
            self.play.notify(event)
        self.held = None

    def results(self) -> list[GameResult] | None:
        if any(g is None for g in self.games):
            return None
        return self.games  # type: ignore[return-value]
