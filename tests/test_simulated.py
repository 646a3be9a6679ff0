"""The simulated provider: a null model by default, a demo identity effect only when asked,
and decision replies in realistic styles that are read right or sent to a follow-up."""

import inspect
import json
from collections import Counter

import anyio
import pytest

from engine.conditions import resolve_condition
from engine.config import load_config
from engine.parsing import parse_decision
from engine.prompts import (
    IDENTITY_STATEMENT,
    RETRY_INSTRUCTION,
    render_decision_prompt,
    render_strategy_prompt,
)
from engine.providers.base import ChatRequest, Completion, Message
from engine.providers.factory import make_provider
from engine.providers.simulated import (
    AMBIGUOUS_STYLES,
    ARCHETYPES,
    OTHER,
    READABLE_STYLES,
    SimulatedProvider,
)
from engine.runner import run_experiment
from engine.store import ExperimentStore


def read(text: str, finish_reason: str | None = "stop") -> str | None:
    """The move parse_decision reads (None: ambiguous). The strict parser of SPEC §5.2 takes
    the finish_reason and returns a Reading(action, rule); the one before it, the move."""
    if len(inspect.signature(parse_decision).parameters) > 1:
        return parse_decision(text, finish_reason)[0]
    return parse_decision(text)


def strategy_prompt(identity: bool) -> str:
    condition = resolve_condition("identity" if identity else "baseline", load_config(None, {}, {}).switches)
    prompt = render_strategy_prompt(agents=10, condition=condition, power=100.0, dynamics=True, recent=[], seed=1)
    assert (IDENTITY_STATEMENT in prompt) == identity
    return prompt


def complete_all(provider: SimulatedProvider, requests: list[ChatRequest]) -> list[Completion]:
    async def run() -> list[Completion]:
        return [await provider.complete(request) for request in requests]

    return anyio.run(run)


def archetype_counts(provider: SimulatedProvider, identity: bool, n: int = 3000) -> Counter:
    prompt = strategy_prompt(identity)
    requests = [
        ChatRequest(
            key=f"strategy/r1/a{i}", model="m", messages=[Message("user", prompt)], temperature=0.7, max_tokens=1000
        )
        for i in range(n)
    ]
    return Counter(
        next(name for name, (_, rule) in ARCHETYPES.items() if rule in completion.text)
        for completion in complete_all(provider, requests)
    )


def test_no_condition_changes_the_strategy_odds_by_default():
    provider = SimulatedProvider(seed=1)
    plain, identity = archetype_counts(provider, False), archetype_counts(provider, True)
    for name in ARCHETYPES:  # same odds: the shares agree within sampling noise (sd ~0.8 points)
        assert abs(plain[name] - identity[name]) / 3000 < 0.035, (name, plain, identity)
    assert identity["superrational"] / 3000 < 0.08


def test_the_demo_effect_is_opt_in_and_made_from_the_config():
    config = load_config(None, {"seed": 1, "provider": {"name": "simulated", "simulated_effect": True}}, {})
    provider = make_provider(config)
    assert isinstance(provider, SimulatedProvider) and provider.effect
    assert archetype_counts(provider, True, 1000)["superrational"] / 1000 > 0.2
    assert archetype_counts(provider, False, 1000)["superrational"] / 1000 < 0.08
    assert not make_provider(load_config(None, {"seed": 1, "provider": {"name": "simulated"}}, {})).effect


@pytest.mark.parametrize("move", ["COOPERATE", "DEFECT"])
@pytest.mark.parametrize("style", [*READABLE_STYLES, *AMBIGUOUS_STYLES])
def test_every_reply_style_is_read_right_or_ambiguous_never_flipped(style, move):
    _, template = {**READABLE_STYLES, **AMBIGUOUS_STYLES}[style]
    text = template.format(move=move, other=OTHER[move], verb=move.lower())
    expected = move if style in READABLE_STYLES else None
    assert read(text, "length" if style == "cut_off" else "stop") == expected, text


def decision_request(key: str, strategy: str, follow_up: str | None = None) -> ChatRequest:
    prompt = render_decision_prompt(strategy, "No previous games", "B")
    messages = [Message("user", prompt)]
    if follow_up is not None:
        messages += [Message("assistant", follow_up), Message("user", RETRY_INSTRUCTION)]
    return ChatRequest(key=key, model="m", messages=messages, temperature=0.3, max_tokens=100)


def test_styles_come_in_their_shares_and_follow_ups_answer_cleanly():
    provider = SimulatedProvider(seed=2)
    rule = ARCHETYPES["cooperative"][1]
    replies = complete_all(provider, [decision_request(f"decision/r1/g{k}/p1/t0", rule) for k in range(4000)])
    bare = sum(r.text == "COOPERATE" for r in replies)
    cut = [r for r in replies if r.finish_reason == "length"]
    ambiguous = sum(read(r.text, r.finish_reason) is None for r in replies)
    assert 0.77 < bare / 4000 < 0.85  # about 19% in other styles
    assert 0.01 < len(cut) / 4000 < 0.03 and all(read(r.text, "length") is None for r in cut)
    assert 0.05 < ambiguous / 4000 < 0.09
    assert all(read(r.text, r.finish_reason) in ("COOPERATE", None) for r in replies)  # never the other move
    follow_ups = complete_all(
        provider, [decision_request(f"decision/r1/g{k}/p1/t1", rule, "I could") for k in range(1000)]
    )
    assert sum(f.text == "COOPERATE" for f in follow_ups) / 1000 > 0.9
    assert {f.text for f in follow_ups} <= {"COOPERATE", "I cannot decide."}


async def test_a_default_simulated_run_uses_follow_ups_and_stays_under_the_validity_thresholds(tmp_path):
    config = load_config(None, {"seed": 4, "provider": {"name": "simulated"}, "results_dir": str(tmp_path)}, {})
    store = ExperimentStore(tmp_path / "exp")
    result = await run_experiment(config, provider=make_provider(config), store=store)
    assert result.status == "completed" and result.simulated
    assert result.validity is None or result.validity.valid, result.validity  # None: not computed here
    calls = [json.loads(line) for line in (tmp_path / "exp" / "calls.jsonl").read_text().splitlines()]
    decisions = [c for c in calls if c["key"].startswith("decision/")]
    first_asks = [c for c in decisions if c["key"].endswith("/t0")]
    follow_ups = len(decisions) - len(first_asks)
    assert 0.03 < follow_ups / len(first_asks) < 0.12  # follow-ups are exercised, not the norm
    assert any(c["finish_reason"] == "length" for c in decisions)
    assert result.acausal_indicators.fallback_rate < 0.01  # well under the 5% threshold
    strategies = [
        s
        for r in range(1, config.rounds + 1)
        for s in json.loads((tmp_path / "exp" / "rounds" / f"strategies_r{r}.json").read_text())
    ]
    non_fresh = sum(bool({"carried_over", "fallback"} & set(s["flags"])) for s in strategies)
    assert non_fresh / len(strategies) < 0.10


def test_a_call_at_0_ms_still_gives_the_event_loop_a_turn():
    """As a network call does. Without it a worker played a whole round in one loop step:
    a UI on the loop froze, and at 100 agents every prompt and call record of the round
    (~600 MiB) stayed in memory until the round ended."""
    config = load_config(None, {"seed": 1, "provider": {"name": "simulated", "latency_ms": 0}}, {})
    provider = make_provider(config, {})
    request = ChatRequest(
        key="decision/r1/g1/p1/t0",
        model="m",
        messages=[Message("user", render_decision_prompt("Always cooperate.", "", "A"))],
        temperature=0.3,
        max_tokens=100,
    )
    others: list[str] = []

    async def other() -> None:
        others.append("ran")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)  # scheduled; runs only if complete() yields
            await provider.complete(request)
            assert others == ["ran"]

    anyio.run(main)
