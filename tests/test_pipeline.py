"""Pipelined rounds: the same records whatever the concurrency, a player's moves start as
soon as its own strategy is in, at most one prompt per worker is alive, and observers see
strategies, then the games phase, then games."""

from pathlib import Path

import anyio

from engine.agents.llm import LLMAgents
from engine.events import GameFinished, PhaseStarted, StrategyCollected
from engine.models import GameResult, RoundSummary, StrategyRecord
from engine.providers.base import ChatRequest
from engine.providers.factory import make_provider
from engine.runner import run_experiment
from engine.store import list_experiments, read_json
from tests.conftest import strip_times
from tests.support.fakes import FakeProvider

MIXED = [
    {"kind": "llm", "count": 7},
    {"kind": "scripted", "strategy": "tit_for_tat", "count": 2},
    {"kind": "scripted", "strategy": "random", "count": 1},
]


def records(results_dir: Path, rounds: int) -> list:
    (loaded,) = list_experiments(results_dir)
    rounds_dir = loaded.directory / "rounds"
    out = []
    for r in range(1, rounds + 1):
        out.append(strip_times(read_json(rounds_dir / f"strategies_r{r}.json", list[StrategyRecord])))
        out.append(strip_times(read_json(rounds_dir / f"games_r{r}.json", list[GameResult])))
        out.append(strip_times(read_json(rounds_dir / f"summary_r{r}.json", RoundSummary)))
    return out


async def test_same_records_at_concurrency_1_64_and_128(make_config, tmp_path):
    """Latency makes completion order differ between the runs; the records may not."""
    runs = []
    for concurrency in (1, 64, 128):
        config = make_config(
            rounds=3,
            population=MIXED,
            results_dir=str(tmp_path / str(concurrency)),
            provider={"name": "simulated", "max_concurrency": concurrency, "latency_ms": 1},
        )
        result = await run_experiment(config, provider=make_provider(config, {}))
        assert result.status == "completed"
        runs.append(records(tmp_path / str(concurrency), 3))
    assert runs[0] == runs[1] == runs[2]


class SlowStrategy(FakeProvider):
    """Agent `agent`'s round-1 strategy takes `seconds`; every other call answers at once.
    Counts the decisions answered while that strategy was still being written."""

    def __init__(self, agent: int, seconds: float) -> None:
        super().__init__(lambda r: "STRATEGY: cooperate" if r.key.startswith("strategy/") else "COOPERATE")
        self.slow_key, self.seconds = f"strategy/r1/a{agent}", seconds
        self.slow_done = False
        self.decided_early = 0

    async def complete(self, request: ChatRequest):
        if request.key == self.slow_key:
            await anyio.sleep(self.seconds)
            self.slow_done = True
        elif request.key.startswith("decision/") and not self.slow_done:
            self.decided_early += 1
        return await super().complete(request)


async def test_moves_start_before_every_strategy_is_in(make_config):
    provider = SlowStrategy(3, 0.3)
    result = await run_experiment(make_config(agents=4, rounds=1), provider=provider)
    assert result.status == "completed"
    assert provider.decided_early == 9  # every move of agents 0-2, those against agent 3 too


async def test_at_most_one_prompt_per_worker(make_config, monkeypatch):
    config = make_config(agents=8, rounds=2, provider={"name": "simulated", "max_concurrency": 3, "latency_ms": 1})
    alive = peak = 0
    decide = LLMAgents.decide

    async def counted(self, *args):
        nonlocal alive, peak
        alive += 1
        peak = max(peak, alive)
        try:
            return await decide(self, *args)
        finally:
            alive -= 1

    monkeypatch.setattr(LLMAgents, "decide", counted)
    result = await run_experiment(config, provider=make_provider(config, {}))
    assert result.status == "completed" and peak == 3


async def test_observers_see_strategies_then_the_games_phase_then_games(make_config):
    config = make_config(agents=5, rounds=2)
    seen: list[object] = []

    class Observer:
        def on_event(self, event: object) -> None:
            if isinstance(event, StrategyCollected | PhaseStarted | GameFinished):
                seen.append(event)

    await run_experiment(config, provider=SlowStrategy(4, 0.2), observer=Observer())
    for round in (1, 2):
        kinds = [
            type(e).__name__ + (f":{e.phase}" if isinstance(e, PhaseStarted) else "")
            for e in seen
            if (
                e.round
                if isinstance(e, PhaseStarted)
                else e.record.round
                if isinstance(e, StrategyCollected)
                else e.game.round
            )
            == round
        ]
        assert kinds == (
            ["PhaseStarted:strategies"] + ["StrategyCollected"] * 5 + ["PhaseStarted:games"] + ["GameFinished"] * 10
        )


async def test_no_decision_is_asked_for_when_every_strategy_call_fails(make_config):
    from engine.providers.base import ProviderError

    def reply(request: ChatRequest):
        if request.key.startswith("strategy/"):
            return ProviderError("HTTP 404: no such model", status=404)
        return "COOPERATE"

    provider = FakeProvider(reply)
    result = await run_experiment(make_config(agents=4, rounds=1), provider=provider)
    assert result.status == "failed" and "every strategy call of round 1 failed" in (result.message or "")
    assert not [r for r in provider.requests if r.key.startswith("decision/")]


async def test_the_move_queue_hands_out_the_lowest_game_first_and_ends_when_closed():
    from engine.rounds import MoveQueue

    queue = MoveQueue()
    queue.put([(5, 0), (2, 1), (9, 0)])
    queue.put([(1, 0)])
    assert [await queue.get() for _ in range(4)] == [(1, 0), (2, 1), (5, 0), (9, 0)]
    got: list[tuple[int, int] | None] = []

    async def take() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        tg.start_soon(take)
        await anyio.sleep(0.01)  # both wait on the empty queue
        queue.put([(3, 1)])
        await anyio.sleep(0.01)
        assert got == [(3, 1)]
        queue.close()  # the other one ends
    assert got == [(3, 1), None]


async def test_the_agents_an_observer_was_given_are_not_changed_under_it(make_config):
    """The final save runs in a worker thread: it makes new agent records instead of writing
    final powers and scores into the ones RunStarted handed to observers."""
    from engine.events import RunStarted

    started: list[RunStarted] = []

    class Observer:
        def on_event(self, event: object) -> None:
            if isinstance(event, RunStarted):
                started.append(event)

    config = make_config(agents=4, rounds=2)
    result = await run_experiment(config, provider=make_provider(config, {}), observer=Observer())
    assert any(a.total_score for a in result.agents)
    assert all(a.total_score == 0.0 for a in started[0].manifest.agents)
