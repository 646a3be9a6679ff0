"""A run stopped by the budget says why: the worst case of the call that was refused, the
budget, and what was spent then; not just 'the budget was reached' with money left."""

from types import SimpleNamespace

import pytest

from engine.budget import Budget, BudgetExceeded, dollars
from engine.providers.base import ChatRequest, Completion
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


def test_dollars():
    assert [dollars(x) for x in (0.00055, 1.25, 10.0, 0.0, 1e-9)] == ["$0.00055", "$1.25", "$10", "$0", "$0"]
