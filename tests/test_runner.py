import re
from pathlib import Path

import anyio
import pytest

from engine.control import RunControl
from engine.events import GameFinished
from engine.models import (
    CallRecord,
    ErrorRecord,
    ExperimentResult,
    GameResult,
    Manifest,
    RoundSummary,
    StrategyRecord,
)
from engine.providers.base import ChatRequest, Completion
from engine.providers.factory import make_provider
from engine.runner import run_experiment
from engine.store import list_experiments, read_json, read_jsonl
from tests.conftest import strip_times
from tests.support.fakes import FakeProvider, strategy_or


async def run(config, provider=None, **kwargs) -> ExperimentResult:
    return await run_experiment(config, provider=provider or make_provider(config, {}), **kwargs)


def experiment_dir(config) -> Path:
    (loaded,) = list_experiments(Path(config.results_dir))
    return loaded.directory


def records(directory: Path, rounds: int):
    out = []
    for r in range(1, rounds + 1):
        out.append(strip_times(read_json(directory / "rounds" / f"strategies_r{r}.json", list[StrategyRecord])))
        out.append(strip_times(read_json(directory / "rounds" / f"games_r{r}.json", list[GameResult])))
        out.append(strip_times(read_json(directory / "rounds" / f"summary_r{r}.json", RoundSummary)))
    return out


async def test_full_simulated_run_writes_every_documented_file(make_config):
    config = make_config()
    result = await run(config)
    assert result.status == "completed"
    assert result.total_rounds == 10 and result.total_games == 450
    directory = experiment_dir(config)
    manifest = read_json(directory / "manifest.json", Manifest)
    assert manifest.status == "completed" and manifest.simulated and manifest.seed == 7
    assert set(manifest.prompt_hashes) >= {"strategy", "decision", "retry"}
    final = read_json(directory / "experiment_results.json", ExperimentResult)
    assert final.total_games == 450 and len(final.round_summaries) == 10
    assert final.total_api_calls >= 100 + 900  # strategies + decisions, plus follow-up turns
    for data in records(directory, 10):
        assert data
    calls, bad = read_jsonl(directory / "calls.jsonl", CallRecord)
    assert not bad and len(calls) == final.total_api_calls
    errors, bad = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    assert not bad and len(errors) == final.error_count
    assert not list(directory.rglob(".tmp-*"))


async def test_same_seed_same_records_whatever_the_concurrency(make_config, tmp_path):
    one = make_config(
        agents=6, rounds=4, provider={"name": "simulated", "max_concurrency": 1}, results_dir=str(tmp_path / "a")
    )
    many = make_config(
        agents=6, rounds=4, provider={"name": "simulated", "max_concurrency": 64}, results_dir=str(tmp_path / "b")
    )
    await run(one)
    await run(many)
    assert records(experiment_dir(one), 4) == records(experiment_dir(many), 4)
    other = make_config(agents=6, rounds=4, seed=8, results_dir=str(tmp_path / "c"))
    await run(other)
    games = [records(experiment_dir(c), 4)[1::3] for c in (one, other)]
    assert games[0] != games[1]


async def test_round_r_decisions_see_only_earlier_rounds(make_config):
    config = make_config(agents=4, rounds=3)
    provider = FakeProvider(strategy_or("COOPERATE"))
    await run(config, provider)
    for request in provider.requests:
        if request.key.startswith("decision/"):
            round = int(re.match(r"decision/r(\d+)/", request.key).group(1))
            seen = {int(t) for t in re.findall(r"^Round (\d+) vs", request.messages[0].content, re.M)}
            assert seen == set(range(1, round))


async def test_history_labels_match_the_current_opponent_line(make_config):
    config = make_config(agents=5, rounds=3)
    provider = FakeProvider(strategy_or("DEFECT"))
    await run(config, provider)
    games = {g.game_id: g for g in read_json(experiment_dir(config) / "rounds" / "games_r2.json", list[GameResult])}
    by_key = {r.key: r.messages[0].content for r in provider.requests}
    for k in range(1, 11):
        game = games[f"r2_g{k}"]
        # player 1's label for player 2 in round 3 equals the label on player 1's round-2 history line
        prompt = by_key[f"decision/r3/g{k}/p1/t0"]
        label = re.search(r"Current opponent: Opponent (\w+)", prompt).group(1)
        assert f"Round 2 vs Opponent {label}: You DEFECT, They DEFECT" in prompt
        assert game.player1_id < game.player2_id
    # each viewer sees each opponent under one label: labels within a prompt are distinct
    sample = by_key["decision/r3/g1/p1/t0"]
    assert len(set(re.findall(r"^Round 2 vs Opponent (\w+)", sample, re.M))) == 4


async def test_ambiguous_reply_is_retried_as_a_follow_up_turn(make_config):
    config = make_config(agents=2, rounds=1)
    replies = iter(["Maybe COOPERATE, maybe DEFECT.", "DEFECT"])

    def reply(request):
        return (
            "STRATEGY: x"
            if request.key.startswith("strategy/")
            else (next(replies) if request.key.endswith("p1/t0") or request.key.endswith("p1/t1") else "COOPERATE")
        )

    provider = FakeProvider(reply)
    result = await run(config, provider)
    retry = next(r for r in provider.requests if r.key == "decision/r1/g1/p1/t1")
    first = next(r for r in provider.requests if r.key == "decision/r1/g1/p1/t0")
    assert [m.role for m in retry.messages] == ["user", "assistant", "user"]
    assert retry.messages[0] == first.messages[0]  # the original prompt, strategy and history kept
    assert retry.messages[1].content == "Maybe COOPERATE, maybe DEFECT."
    assert retry.messages[2].content == "Reply with only one word: COOPERATE or DEFECT"
    game = read_json(experiment_dir(config) / "rounds" / "games_r1.json", list[GameResult])[0]
    assert game.player1_action == "DEFECT" and game.player1_fallback is None
    assert result.total_api_calls == 2 + 3


@pytest.mark.parametrize(
    "rule, expected", [("cooperate", {"COOPERATE"}), ("defect", {"DEFECT"}), ("random", {"COOPERATE", "DEFECT"})]
)
async def test_unparseable_replies_fall_back_flagged_never_silently(make_config, rule, expected):
    config = make_config(agents=6, rounds=2, switches={"on_unparseable": rule})
    provider = FakeProvider(strategy_or("I have no idea."))
    result = await run(config, provider)
    games = [
        g for r in (1, 2) for g in read_json(experiment_dir(config) / "rounds" / f"games_r{r}.json", list[GameResult])
    ]
    actions = {a for g in games for a in (g.player1_action, g.player2_action)}
    assert actions == expected
    assert all(g.player1_fallback == g.player2_fallback == "ambiguous reply after 3 tries" for g in games)
    assert result.acausal_indicators.fallback_rate == 1.0
    assert all(s.fallback_decisions == 30 for s in result.round_summaries)
    assert result.error_count == 60
    assert result.total_api_calls == 12 + 60 * 3


async def test_random_fallback_is_seeded_per_decision(make_config, tmp_path):
    moves = []
    for name in ("a", "b"):
        config = make_config(agents=5, rounds=1, results_dir=str(tmp_path / name))
        await run(config, FakeProvider(strategy_or("???")))
        games = read_json(experiment_dir(config) / "rounds" / "games_r1.json", list[GameResult])
        moves.append([(g.player1_action, g.player2_action) for g in games])
    assert moves[0] == moves[1]


@pytest.mark.parametrize(
    "a, b, score_a, score_b",
    [
        ("tit_for_tat", "always_defect", 9, 14),
        ("tit_for_tat", "tit_for_tat", 30, 30),
        ("grudger", "alternator", 27, 12),
        ("win_stay_lose_shift", "always_defect", 5, 30),
    ],
)
async def test_scripted_round_robin_equals_iterated_pd(make_config, a, b, score_a, score_b):
    config = make_config(
        rounds=10,
        power={"dynamics": False, "initial": "random"},
        population=[{"kind": "scripted", "strategy": a, "count": 1}, {"kind": "scripted", "strategy": b, "count": 1}],
    )
    result = await run(config, FakeProvider(lambda r: pytest.fail("scripted agents make no calls")))
    assert [agent.total_score for agent in result.agents] == [score_a, score_b]
    assert result.total_api_calls == 0


async def test_mixed_population_ids_follow_population_order(make_config):
    config = make_config(
        rounds=2,
        population=[
            {"kind": "scripted", "strategy": "always_defect", "count": 2},
            {"kind": "llm", "count": 2, "model": "m/other"},
            {"kind": "scripted", "strategy": "grudger", "count": 1},
        ],
    )
    provider = FakeProvider(strategy_or("COOPERATE"))
    result = await run(config, provider)
    kinds = [(a.id, a.kind, a.strategy or a.model) for a in result.agents]
    assert kinds == [
        (0, "scripted", "always_defect"),
        (1, "scripted", "always_defect"),
        (2, "llm", "m/other"),
        (3, "llm", "m/other"),
        (4, "scripted", "grudger"),
    ]
    assert {r.model for r in provider.requests if r.key.startswith("strategy/")} == {"m/other"}
    assert sorted({r.key.split("/")[2] for r in provider.requests if r.key.startswith("strategy/")}) == ["a2", "a3"]


async def test_failed_strategy_call_carries_over_or_falls_back(make_config):
    from engine.providers.base import ProviderError

    def reply(request):
        if request.key == "strategy/r1/a0" or request.key == "strategy/r2/a1":
            return ProviderError("bad request", status=400)
        return strategy_or("COOPERATE")(request)

    config = make_config(agents=2, rounds=2)
    result = await run(config, FakeProvider(reply))
    r1 = read_json(experiment_dir(config) / "rounds" / "strategies_r1.json", list[StrategyRecord])
    r2 = read_json(experiment_dir(config) / "rounds" / "strategies_r2.json", list[StrategyRecord])
    assert r1[0].flags == ["fallback"] and r1[1].flags == []
    assert r2[1].flags == ["carried_over"] and r2[1].strategy_text == r1[1].strategy_text
    assert result.error_count == 2


class CutOff(FakeProvider):
    """Strategy replies cut off by max_tokens before any rule: `times[agent]` of them (the
    first asks), then a whole reply."""

    def __init__(self, times: dict[int, int]) -> None:
        super().__init__(strategy_or("COOPERATE"))
        self.times = times

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if request.key.startswith("strategy/"):
            agent = int(request.key.split("/")[2][1:])
            asked = sum(r.key.startswith(f"strategy/r1/a{agent}") for r in self.requests)
            if asked <= self.times.get(agent, 0):
                return Completion(
                    text="Let me weigh the payoffs. Mutual",
                    prompt_tokens=10,
                    completion_tokens=1000,
                    finish_reason="length",
                )
        return Completion(text=self.reply(request), prompt_tokens=10, completion_tokens=2)


async def test_a_strategy_reply_cut_off_before_its_rule_is_asked_again(make_config):
    """SPEC §4: such a reply is a failed strategy call, and a failed call is retried."""
    config = make_config(agents=2, rounds=1)
    provider = CutOff({0: 2})
    result = await run(config, provider)
    asked = [r.key for r in provider.requests if r.key.startswith("strategy/")]
    assert sorted(asked) == ["strategy/r1/a0", "strategy/r1/a0/t1", "strategy/r1/a0/t2", "strategy/r1/a1"]
    (a0, a1) = read_json(experiment_dir(config) / "rounds" / "strategies_r1.json", list[StrategyRecord])
    assert a0.flags == [] and a0.strategy_text == "cooperate with everyone"
    assert (a0.prompt_tokens, a0.completion_tokens) == (30, 2002)  # the three replies it took
    assert result.status == "completed" and result.error_count == 0
    calls, _ = read_jsonl(experiment_dir(config) / "calls.jsonl", CallRecord)
    assert sorted(c.key for c in calls if c.key.startswith("strategy/")) == sorted(asked)


async def test_a_strategy_reply_always_cut_off_falls_back_after_four_asks(make_config):
    config = make_config(agents=2, rounds=1)
    provider = CutOff({0: 99})
    result = await run(config, provider)
    assert sum(r.key.startswith("strategy/r1/a0") for r in provider.requests) == 4
    (a0, _) = read_json(experiment_dir(config) / "rounds" / "strategies_r1.json", list[StrategyRecord])
    assert a0.flags == ["fallback", "marker_missing"] and a0.completion_tokens == 4000
    (error,), _ = read_jsonl(experiment_dir(config) / "experiment_errors.log", ErrorRecord)
    assert "before a STRATEGY: line (asked 4 times); using the fallback strategy" in error.message
    assert result.status == "completed"


async def test_every_strategy_cut_off_stops_the_run_and_says_what_to_change(make_config):
    config = make_config(agents=3, rounds=2)
    result = await run(config, CutOff({0: 99, 1: 99, 2: 99}))
    assert result.status == "failed"
    assert result.message is not None and "cut off by max_tokens before a STRATEGY: line" in result.message
    assert "writes more than 1000 tokens" in result.message and "another main model" in result.message
    assert "then resume" not in result.message  # resume would replay the same replies


async def test_abort_mid_round_saves_completed_rounds(make_config):
    config = make_config(agents=6, rounds=5, provider={"name": "simulated", "latency_ms": 1})
    control = RunControl()

    class AbortInRound3:
        def on_event(self, event):
            if isinstance(event, GameFinished) and event.game.round == 3 and event.game.game_id == "r3_g4":
                control.abort()

    result = await run(config, observer=AbortInRound3(), control=control)
    assert result.status == "aborted" and result.total_rounds == 2
    directory = experiment_dir(config)
    assert read_json(directory / "manifest.json", Manifest).status == "aborted"
    assert read_json(directory / "experiment_results.json", ExperimentResult).total_rounds == 2
    assert len(records(directory, 2)) == 6
    assert not (directory / "rounds" / "games_r3.json").exists()
    assert not list(directory.rglob(".tmp-*"))


async def test_pause_stops_new_calls_until_resume(make_config):
    config = make_config(agents=4, rounds=2, provider={"name": "simulated", "latency_ms": 5})
    control = RunControl()
    paused_at = []

    class PauseInRound1:  # a later round's first events wait for the previous round's save,
        def on_event(self, event):  # which may come after that round's calls (5 ms each)
            if isinstance(event, GameFinished) and event.game.game_id == "r1_g1":
                control.pause()

    async with anyio.create_task_group() as tg:

        async def drive():
            while not control.paused:
                await anyio.sleep(0.01)
            await anyio.sleep(0.05)  # in-flight calls finish
            paused_at.append(control.stats.calls)
            await anyio.sleep(0.2)
            paused_at.append(control.stats.calls)
            assert control.stats.in_flight == 0
            control.resume()

        tg.start_soon(drive)
        result = await run(config, observer=PauseInRound1(), control=control)
    assert paused_at[0] == paused_at[1]
    assert result.status == "completed" and result.total_api_calls > paused_at[1]


@pytest.mark.parametrize(
    "condition, population, warned",
    [
        ("identity", [{"kind": "llm", "count": 3}], False),
        ("identity", [{"kind": "llm", "count": 2}, {"kind": "scripted", "strategy": "grudger", "count": 1}], True),
        ("identity", [{"kind": "llm", "count": 2}, {"kind": "llm", "count": 1, "model": "m/other"}], True),
        ("baseline", [{"kind": "llm", "count": 2}, {"kind": "scripted", "strategy": "grudger", "count": 1}], False),
    ],
)
async def test_a_false_identity_statement_is_recorded_as_a_warning(make_config, condition, population, warned):
    config = make_config(rounds=1, condition=condition, population=population)
    await run(config)
    manifest = read_json(experiment_dir(config) / "manifest.json", Manifest)
    assert bool(manifest.warnings) == warned
    assert all("identity statement" in w for w in manifest.warnings)


async def test_no_identity_warning_without_llm_agents(make_config):
    config = make_config(rounds=1, population=[{"kind": "scripted", "strategy": "grudger", "count": 2}])
    await run(config)
    assert read_json(experiment_dir(config) / "manifest.json", Manifest).warnings == []
