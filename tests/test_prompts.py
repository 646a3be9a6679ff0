import re

from engine.conditions import PRESETS
from engine.models import AnonymizedGame, Distribution, PowerDistribution, RoundSummary
from engine.prompts import (
    IDENTITY_STATEMENT,
    opponent_labels,
    render_decision_prompt,
    render_strategy_prompt,
    retry_instruction,
    round_player_labels,
)


def summary(round: int, cooperation: float | None) -> RoundSummary:
    games = [
        AnonymizedGame(
            round=round,
            anonymous_id1=f"Player_{round}_{k}",
            anonymous_id2=f"Player_{round}_{k + 1}",
            action1="COOPERATE",
            action2="DEFECT",
            power_ratio=1.25,
        )
        for k in range(1, 6)
    ]
    return RoundSummary(
        round=round,
        cooperation_rate=cooperation,
        mutual_cooperation_rate=0.5,
        average_score=10,
        score_variance=1,
        score_distribution=Distribution(min=5, max=15, avg=10),
        power_distribution=PowerDistribution(mean=100, std=5, min=90, max=110),
        anonymized_games=games,
        strategy_similarity=0.3,
        fallback_decisions=0,
        duration_s=1,
    )


def strategy_prompt(condition="identity", recent=()):
    return render_strategy_prompt(
        agents=10, condition=PRESETS[condition], power=97.5, dynamics=True, recent=list(recent), seed=1
    )


def test_identity_statement_only_under_identity():
    assert IDENTITY_STATEMENT in strategy_prompt("identity")
    baseline = strategy_prompt("baseline")
    assert IDENTITY_STATEMENT not in baseline
    # the neutral baseline must not smuggle identity framing in (the original study's pitfall)
    for word in ("identical", "copies", "copy", "same model", "superrational"):
        assert word not in baseline.lower()


def test_the_identity_prompt_says_the_specs_sentence():
    # SPEC §5.1: not "this same prompt", which was false (each prompt carries its own power)
    assert (
        "All participants, including every opponent you will face, are identical copies of the "
        "same AI model, given these same instructions."
    ) in strategy_prompt("identity")


def test_a_previous_round_without_counted_moves_shows_no_rate():
    prompt = strategy_prompt(recent=[summary(1, None)])
    assert "cooperation rate n/a." in prompt and "0.0%" not in prompt


def test_first_round_has_no_invented_prior():
    prompt = strategy_prompt()
    assert "This is the first round; there is no previous data." in prompt
    assert "%" not in prompt


def test_previous_round_rate_is_a_percentage():
    prompt = strategy_prompt(recent=[summary(1, 0.6), summary(2, 0.625)])
    assert "cooperation rate 62.5%" in prompt
    assert "0.625%" not in prompt
    # up to 3 sample games from each of the last 3 rounds
    samples = re.findall(r"^- Round (\d+): ", prompt, re.M)
    assert samples.count("1") == 3 and samples.count("2") == 3
    recent4 = strategy_prompt(recent=[summary(r, 0.5) for r in range(1, 5)])
    assert sorted(set(re.findall(r"^- Round (\d+): ", recent4, re.M))) == ["2", "3", "4"]


def test_strategy_prompt_states_the_essentials():
    prompt = strategy_prompt()
    assert "10 participants" in prompt
    assert "97.5" in prompt
    assert "both COOPERATE: 3 / 3" in prompt and "both DEFECT: 1 / 1" in prompt
    assert "subagent" in prompt
    assert "STRATEGY:" in prompt


def test_decision_prompt_format():
    prompt = render_decision_prompt("Be nice.", "", "C")
    assert prompt == (
        "You are playing prisoner's dilemma. Your strategy:\nBe nice.\n\nGame history so far:\n"
        "No previous games\n\nCurrent opponent: Opponent C\n\nDecision (COOPERATE/DEFECT):"
    )


def test_swapped_option_order_reverses_both_prompt_and_follow_up():
    prompt = render_decision_prompt("Be nice.", "", "C", swapped=True)
    assert prompt.endswith("\n\nDecision (DEFECT/COOPERATE):")
    assert prompt.replace("DEFECT/COOPERATE", "COOPERATE/DEFECT") == render_decision_prompt("Be nice.", "", "C")
    assert retry_instruction() == "Reply with only one word: COOPERATE or DEFECT"
    assert retry_instruction(swapped=True) == "Reply with only one word: DEFECT or COOPERATE"


def test_opponent_labels_are_a_stable_permutation():
    labels = opponent_labels(3, viewer=2, agent_count=30)
    assert 2 not in labels
    assert sorted(labels.values(), key=lambda s: (len(s), s))[:3] == ["A", "B", "C"]
    assert "AB" in labels.values() and len(set(labels.values())) == 29
    assert labels == opponent_labels(3, viewer=2, agent_count=30)
    assert labels != opponent_labels(4, viewer=2, agent_count=30)
    assert opponent_labels(3, 2, 30, round=1) != opponent_labels(3, 2, 30, round=2)


def test_round_player_labels():
    labels = round_player_labels(5, 3, 4)
    assert sorted(labels.values()) == ["Player_3_1", "Player_3_2", "Player_3_3", "Player_3_4"]
    assert labels == round_player_labels(5, 3, 4)


def test_an_agents_strategy_prompt_is_made_from_the_rounds_so_far_each_round():
    """LLMAgents makes the previous rounds' text once a round, for every agent: each prompt
    must still be the one rendered from the summaries as they stand (a new round's summary,
    or a list rebuilt on resume, is never answered with the text of an older one)."""
    import anyio

    from engine.agents.llm import LLMAgents
    from engine.config import load_config
    from engine.models import AgentInfo
    from engine.providers.base import Completion
    from engine.runner import with_seed

    config = with_seed(load_config(None, {"seed": 7, "agents": 3}, env={}))
    condition = PRESETS["identity"]
    sent: list[str] = []

    class Gateway:
        async def call(self, request):
            sent.append(request.messages[0].content)
            return Completion(text="I reason.\nSTRATEGY: cooperate")

    agents = LLMAgents(Gateway(), config, condition, report=lambda *a, **k: None)  # type: ignore[arg-type]
    agent = AgentInfo(id=0, kind="llm", model="m")
    histories = [[], [summary(1, 0.5)], [summary(1, 0.5), summary(2, 0.25)], [summary(1, 0.5), summary(2, 0.75)]]

    async def main() -> None:
        for recent in histories:
            for power in (90.0, 110.0):
                await agents.write_strategy(len(recent) + 1, agent, None, power, recent)

    anyio.run(main)
    want = [
        render_strategy_prompt(agents=3, condition=condition, power=p, dynamics=True, recent=r, seed=7)
        for r in histories
        for p in (90.0, 110.0)
    ]
    assert sent == want
    assert len(set(sent)) == len(sent)
