"""A run stopped by the budget says why: the worst case of the call that was refused, the
budget, and what was spent then; not just 'the budget was reached' with money left."""

from types import SimpleNamespace

import msgspec
import pytest

from engine.budget import Budget, BudgetExceeded, dollars
from engine.errors import ConfigError
from engine.providers.base import ChatRequest, Completion
from engine.providers.openai_compat import OpenAICompatProvider
from engine.records import check_budget
from engine.runner import run_experiment
from tests.support.fakes import FakeProvider, strategy_or


class Priced(FakeProvider):
    """Strategy calls may cost $0.0001 at worst, decisions $0.01; each costs $0.0001."""

    async def complete(self, request: ChatRequest) -> Completion:
        done = await super().complete(request)
        return Completion(text=done.text, prompt_tokens=10, completion_tokens=2, cost=0.0001)

    def worst_case_cost(self, request: ChatRequest) -> float:
        return 0.0001 if request.key.startswith("strategy/") else 0.01


async def test_a_budget_below_a_calls_worst_case_says_so(make_config):
    config = make_config(agents=3, rounds=2, provider={"name": "simulated", "max_cost_usd": 0.001})

    result = await run_experiment(config, provider=Priced(strategy_or("COOPERATE")))

    assert result.status == "budget_exceeded" and result.total_api_calls == 3
    assert result.message == (
        "stopped: the next call's worst-case cost ($0.01) would pass the budget ($0.001; $0.0003 spent)"
    )


def test_calls_in_flight_and_a_budget_reached_before_are_told():
    budget = Budget(1.0)
    assert budget.stop_message() == "stopped: the cost budget ($1) was reached ($0 spent)"
    # what the budget reads of a gateway: its spending and its reservations
    budget.gateways.append(SimpleNamespace(control=SimpleNamespace(stats=SimpleNamespace(cost=0.25)), reserved=0.5))

    with pytest.raises(BudgetExceeded) as raised:
        budget.check(0.3)

    assert (
        str(raised.value)
        == budget.stop_message()
        == (
            "stopped: the next call's worst-case cost ($0.3) would pass the budget ($1; $0.25 spent, "
            "$0.5 held for calls in flight)"
        )
    )


def test_the_stop_message_adds_what_the_calls_in_flight_cost_once_they_finished():
    budget = Budget(1.0)
    stats = SimpleNamespace(cost=0.25)
    budget.gateways.append(SimpleNamespace(control=SimpleNamespace(stats=stats), reserved=0.5))
    with pytest.raises(BudgetExceeded):
        budget.check(0.3)
    stats.cost = 0.95  # the calls in flight were answered
    assert budget.stop_message() == (
        "stopped: the next call's worst-case cost ($0.3) would pass the budget ($1; $0.25 spent, "
        "$0.5 held for calls in flight); $0.95 in all once the calls in flight finished"
    )


def test_dollars():
    assert [dollars(x) for x in (0.00055, 1.25, 10.0, 0.0, 1e-9)] == ["$0.00055", "$1.25", "$10", "$0", "$0"]
    assert [dollars(x) for x in (-0.0, -1e-9, 0.1 + 0.2 - 0.3 - 1e-17)] == ["$0", "$0", "$0"]  # never "$-0"


# -- a budget too small for any call is refused before the run -----------------------------

PRICED = {"m/dear": {"input": 100.0, "output": 100.0}, "m/cheap": {"input": 0.01, "output": 0.01}}  # USD per 1M tokens


def openrouter(make_config, limit, **extra):
    provider = {"name": "openrouter", "base_url": "http://127.0.0.1:9/v1", "max_cost_usd": limit, "prices": PRICED}
    extra.setdefault("models", {"main": "m/dear", "sub": "m/dear"})
    extra.setdefault("agents", 3)
    return make_config(rounds=1, provider=provider, **extra)


def first_call_worst_case(config) -> float:
    """What the gateway holds for agent 0's first strategy call, computed as it does."""
    from engine.agents.llm import strategy_request
    from engine.conditions import resolve_condition
    from engine.prompts import previous_rounds_text
    from engine.records import build_agents

    condition = resolve_condition(config.condition, config.switches)
    agent = build_agents(config)[0]
    previous = previous_rounds_text([], config.seed, condition.show_power)
    request = strategy_request(config, condition, 1, agent, agent.initial_power, [], previous)
    return OpenAICompatProvider(config.provider, api_key="k").worst_case_cost(request)


def test_a_budget_below_the_first_call_is_refused_before_anything(make_config):
    worst = first_call_worst_case(openrouter(make_config, 1.0))
    assert worst > 0.1  # ~1,500 tokens at $100 per million
    with pytest.raises(ConfigError, match=r"max_cost_usd \(\$0\.1\) is below what the first call can cost") as caught:
        check_budget([openrouter(make_config, 0.1)])
    assert dollars(worst) in str(caught.value) and "m/dear" in str(caught.value)


def test_a_budget_that_covers_one_first_call_is_not_refused(make_config):
    worst = first_call_worst_case(openrouter(make_config, 1.0))
    check_budget([openrouter(make_config, worst * 1.001)])
    check_budget([openrouter(make_config, None)])  # no budget


@pytest.mark.parametrize(
    "extra",
    [
        {"models": {"main": "m/unpriced", "sub": "m/unpriced"}},  # no known price: the budget cannot bound it
        {"population": [{"kind": "scripted", "strategy": "tit_for_tat", "count": 3}]},  # no model call at all
    ],
)
def test_what_cannot_be_priced_is_never_refused(make_config, extra):
    check_budget([openrouter(make_config, 0.000001, **extra)])


def mixed(make_config, *models, limit=0.01):
    groups = [{"kind": "llm", "count": 2, "model": model, "sub_model": model} for model in models]
    return openrouter(make_config, limit, population=groups, agents=2 * len(models))


def test_the_check_is_on_the_first_call_the_gateway_holds_money_for(make_config):
    """The gateway reserves the round-1 strategies in agent order and stops at the first
    refusal: a dear first agent means no call, whatever cheaper agents come after."""
    with pytest.raises(ConfigError, match="m/dear"):
        check_budget([mixed(make_config, "m/dear", "m/cheap")])
    check_budget([mixed(make_config, "m/cheap", "m/dear")])  # the cheap call starts: not refused


def test_a_sweep_is_refused_when_one_of_its_runs_could_not_start(make_config):
    with pytest.raises(ConfigError, match="m/dear"):
        check_budget([mixed(make_config, "m/cheap"), mixed(make_config, "m/dear")])
    check_budget([mixed(make_config, "m/cheap"), mixed(make_config, "m/cheap", "m/dear")])


async def test_a_run_the_check_lets_through_makes_its_first_call(make_config):
    """Cheap agents first, dear ones after, a budget only the cheap call fits in: the run
    starts and its first call reaches the server (the budget stops it later, as it should)."""
    from tests.support import stub_server as stub

    with stub.StubServer() as server:
        base = mixed(make_config, "m/cheap", "m/dear")
        config = msgspec.structs.replace(
            base, provider=msgspec.structs.replace(base.provider, base_url=server.base_url)
        )
        check_budget([config])
        provider = OpenAICompatProvider(config.provider, api_key="k")
        result = await run_experiment(config, provider=provider)
        await provider.aclose()
    assert result.status == "budget_exceeded" and server.count >= 1


def test_the_simulated_provider_is_never_refused(make_config):
    check_budget([make_config(provider={"name": "simulated", "max_cost_usd": 0.000001})])


async def test_the_check_agrees_with_the_gateway(make_config):
    """Just above the refusal, the gateway lets the first strategy call start (and stops the
    run at the next); just below, the check refuses. The same worst case on both sides."""
    from tests.support import stub_server as stub

    with stub.StubServer() as server:
        base = openrouter(make_config, 1.0)
        worst = first_call_worst_case(base)
        config = msgspec.structs.replace(
            base,
            provider=msgspec.structs.replace(base.provider, base_url=server.base_url, max_cost_usd=worst * 1.001),
        )
        check_budget([config])
        provider = OpenAICompatProvider(config.provider, api_key="k")
        result = await run_experiment(config, provider=provider)
        await provider.aclose()
        assert result.status == "budget_exceeded" and server.count >= 1
    with pytest.raises(ConfigError):
        check_budget(
            [
                msgspec.structs.replace(
                    config, provider=msgspec.structs.replace(config.provider, max_cost_usd=worst * 0.999)
                )
            ]
        )


def test_the_command_line_refuses_it_with_exit_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from acausal_tui.cli import main

    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-budget-0123456789abcdef")
    config = tmp_path / "config.toml"
    config.write_text(
        '[provider]\nname = "openrouter"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[provider.prices."m/dear"]\ninput = 100.0\noutput = 100.0\n[models]\nmain = "m/dear"\nsub = "m/dear"\n'
    )
    results = tmp_path / "results"
    for command in (
        ["run", "--headless"],
        ["sweep", "--headless", "--conditions", "baseline,identity", "--seeds", "2"],
    ):
        code = main([*command, "--config", str(config), "--results-dir", str(results), "--max-cost", "0.01"])
        assert code == 2
        assert "is below what the first call can cost" in capsys.readouterr().err
        assert not results.exists() or not any(results.iterdir())
