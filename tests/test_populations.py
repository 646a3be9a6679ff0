"""Populations: per-group main and sub models, scripted groups, and cooperation broken down
by group and by in-group vs out-group."""

import pytest

from engine.analysis import agent_group, cooperation_breakdown
from engine.game import pairings
from engine.models import AgentInfo, ExperimentResult, GameResult
from engine.runner import run_experiment
from engine.store import ExperimentStore, read_json
from tests.support.fakes import FakeProvider

C, D = "COOPERATE", "DEFECT"
POPULATION = [
    {"kind": "llm", "count": 2, "model": "lab/alpha", "sub_model": "lab/alpha-nano"},
    {"kind": "llm", "count": 2, "model": "lab/beta"},  # sub model: the [models] default
    {"kind": "scripted", "strategy": "always_defect", "count": 1},
]


def game(i: int, j: int, a1: str, a2: str, round: int = 1) -> GameResult:
    return GameResult(
        game_id=f"r{round}_g0",
        round=round,
        player1_id=i,
        player2_id=j,
        player1_action=a1,
        player2_action=a2,
        player1_payoff=0,
        player2_payoff=0,
        player1_power_before=100,
        player2_power_before=100,
    )


def test_groups_are_named_by_models_or_strategy():
    assert agent_group(AgentInfo(id=0, kind="llm", model="m", sub_model="s")) == "m / s"
    assert agent_group(AgentInfo(id=1, kind="scripted", strategy="grudger")) == "scripted:grudger"


def test_breakdown_on_a_hand_computed_example():
    agents = [
        AgentInfo(id=0, kind="llm", model="a", sub_model="s"),
        AgentInfo(id=1, kind="llm", model="a", sub_model="s"),
        AgentInfo(id=2, kind="llm", model="b", sub_model="s"),
        AgentInfo(id=3, kind="scripted", strategy="always_defect"),
    ]
    games = [
        game(0, 1, C, C),
        game(0, 2, C, D),
        game(0, 3, D, D),
        game(1, 2, C, C),
        game(1, 3, C, D),
        game(2, 3, D, D),
        game(0, 1, C, D, round=2),
    ]
    b = cooperation_breakdown(agents, games)
    assert [g.group for g in b.groups] == ["a / s", "b / s", "scripted:always_defect"]
    a, bee, scripted = b.groups
    assert (a.group, a.agents, a.moves) == ("a / s", [0, 1], 8)
    # group a moves: in-group 0v1 C,C (r1) and C,D (r2) -> 3/4; out-group: 0v2 C, 0v3 D, 1v2 C, 1v3 C -> 3/4
    assert a.cooperation_rate == 6 / 8
    assert a.in_group_cooperation_rate == 3 / 4 and a.out_group_cooperation_rate == 3 / 4
    assert a.cooperation_per_round == [5 / 6, 1 / 2]
    # group b (agent 2): 2v0 D, 2v1 C, 2v3 D -> all out-group
    assert (bee.moves, bee.cooperation_rate, bee.in_group_cooperation_rate) == (3, 1 / 3, None)
    assert bee.out_group_cooperation_rate == 1 / 3
    assert bee.cooperation_per_round == [1 / 3, None]
    assert (scripted.cooperation_rate, scripted.out_group_cooperation_rate) == (0.0, 0.0)
    # overall in-group: only group a's 4 moves, 3 C; out-group: 4 + 3 + 3 moves, 3 + 1 + 0 C
    assert b.in_group_cooperation_rate == 3 / 4
    assert b.out_group_cooperation_rate == 4 / 10


def test_breakdown_with_no_games():
    b = cooperation_breakdown([AgentInfo(id=0, kind="llm", model="a", sub_model="s")], [])
    assert b.groups[0].cooperation_rate is None and b.groups[0].cooperation_per_round == []
    assert b.in_group_cooperation_rate is None and b.out_group_cooperation_rate is None


async def test_each_group_calls_its_own_models_and_results_break_down_by_group(make_config, tmp_path):
    config = make_config(population=POPULATION, rounds=2, models={"main": "lab/main", "sub": "lab/sub"})

    def reply(request):
        if request.key.startswith("strategy/"):
            return "STRATEGY: as my model does"
        return C if request.model == "lab/alpha-nano" else D  # alpha cooperates, beta defects

    provider = FakeProvider(reply)
    store = ExperimentStore(tmp_path / "exp")
    result = await run_experiment(config, provider=provider, store=store)

    expected = {
        0: ("lab/alpha", "lab/alpha-nano"),
        1: ("lab/alpha", "lab/alpha-nano"),
        2: ("lab/beta", "lab/sub"),
        3: ("lab/beta", "lab/sub"),
    }
    assert [(a.kind, a.model, a.sub_model, a.strategy) for a in result.agents] == [
        ("llm", *expected[0], None),
        ("llm", *expected[1], None),
        ("llm", *expected[2], None),
        ("llm", *expected[3], None),
        ("scripted", None, None, "always_defect"),
    ]
    for request in provider.requests:
        if request.key.startswith("strategy/"):
            agent = int(request.key.rsplit("/a", 1)[1])
            assert request.model == expected[agent][0]
        else:
            _, r, g, p, _ = request.key.split("/")
            i, j = pairings(5)[int(g[1:]) - 1]
            assert request.model == expected[i if p == "p1" else j][1]
    assert not any(r.key.endswith("/a4") for r in provider.requests)  # scripted: no calls

    saved = read_json(store.directory / "experiment_results.json", ExperimentResult)
    breakdown = saved.cooperation_breakdown
    assert breakdown == result.cooperation_breakdown
    by_name = {g.group: g for g in breakdown.groups}
    assert list(by_name) == ["lab/alpha / lab/alpha-nano", "lab/beta / lab/sub", "scripted:always_defect"]
    alpha, beta, scripted = by_name.values()
    assert alpha.agents == [0, 1] and alpha.moves == 2 * 4 * 2
    assert (alpha.cooperation_rate, alpha.in_group_cooperation_rate, alpha.out_group_cooperation_rate) == (1, 1, 1)
    assert (beta.cooperation_rate, scripted.cooperation_rate) == (0, 0)
    assert alpha.cooperation_per_round == [1.0, 1.0]
    # in-group moves: alpha 2 per round (C), beta 2 per round (D); out-group: everything else
    assert breakdown.in_group_cooperation_rate == 0.5
    out_moves = 5 * 4 - 4  # 20 moves a round, 4 of them in-group
    assert breakdown.out_group_cooperation_rate == pytest.approx((2 * 3) / out_moves)
