import pytest

from engine.parsing import extract_strategy, parse_decision

C, D = "COOPERATE", "DEFECT"

DECISIONS = [
    # (a) the whole reply is one decision word
    ("COOPERATE", C),
    ("DEFECT", D),
    ("cooperate", C),
    ("Defect", D),
    ("cooperate.", C),
    ("**DEFECT**", D),
    ("`COOPERATE`", C),
    ("_defect_", D),
    ("# DEFECT", D),
    ("> cooperate", C),
    ("  DEFECT \n\n", D),
    ("C", C),
    ("D", D),
    ("c.", C),
    ("**D**", D),
    # (b) the last non-empty line names exactly one word
    ("Decision: DEFECT", D),
    ("**Decision:** cooperate", C),
    ("The opponent defected twice in a row.\nDecision: DEFECT", D),
    (
        (
            "Opponent A has cooperated in every game so far, and my strategy says to "
            "reciprocate.\n\nCOOPERATE"
        ),
        C,
    ),
    ("They might DEFECT, or they might COOPERATE; I can't tell.\n\nDEFECT", D),
    ("My strategy says to COOPERATE with new opponents.\nDEFECT", D),
    ("Should I COOPERATE or DEFECT?\nFinal answer: **COOPERATE**\n\n", C),
    ("Reasoning: tit for tat.\nDEFECT defect DEFECT", D),
    ("I will not defect", D),  # literal rule: negation is not understood
    ("I could DEFECT.\nCOOPERATE\n---", C),  # a markdown-only line is empty
    # (c) the whole reply names exactly one word
    ("I choose to COOPERATE.\nThis maximises the joint payoff.", C),
    ("DEFECT, because they defected last round.\nNo reason to trust them now.", D),
    # ambiguous
    ("", None),
    ("   \n\n", None),
    ("COOPERATE/DEFECT", None),
    ("I could COOPERATE.\nOr I could DEFECT or COOPERATE.", None),
    ("I'm not sure what to do here.", None),
    ("Decision: C", None),  # C/D only count as the whole reply
    ("The opponent cooperates, so I keep cooperating.", None),  # whole words only
    ("COOPERATES", None),
    ("Let me think.\nDEFECTED", None),
    ("cooperate defect", None),
]


@pytest.mark.parametrize(("reply", "expected"), DECISIONS)
def test_parse_decision(reply: str, expected: str | None) -> None:
    assert parse_decision(reply) == expected


def words(n: int, word: str = "w") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def test_strategy_after_marker() -> None:
    reply = "I think cooperation pays.\n\nSTRATEGY: Cooperate unless   the opponent\ndefected."
    assert extract_strategy(reply) == ("Cooperate unless the opponent defected.", [])


def test_strategy_marker_is_case_insensitive() -> None:
    assert extract_strategy("Thinking...\nstrategy: Always defect.") == ("Always defect.", [])


def test_strategy_uses_the_last_marker() -> None:
    reply = "STRATEGY: draft rule\nOn reflection, better:\nStrategy: final rule"
    assert extract_strategy(reply) == ("final rule", [])


@pytest.mark.parametrize(
    "marker",
    ["**STRATEGY:**", "**Strategy**:", "## Strategy:", "  STRATEGY:", "> STRATEGY:", "STRATEGY :"],
)
def test_strategy_markdown_marker(marker: str) -> None:
    assert extract_strategy(f"Reasoning.\n{marker} Tit for tat.") == ("Tit for tat.", [])


def test_strategy_on_lines_after_marker() -> None:
    assert extract_strategy("STRATEGY:\n\n1. Cooperate.\n2. Punish.") == (
        "1. Cooperate. 2. Punish.",
        [],
    )


def test_marker_must_begin_the_line() -> None:
    reply = "My STRATEGY: is below.\nCooperate always."
    assert extract_strategy(reply) == (
        "My STRATEGY: is below. Cooperate always.",
        ["marker_missing"],
    )


def test_long_strategy_is_truncated() -> None:
    text, flags = extract_strategy("STRATEGY: " + words(150))
    assert text == words(100)
    assert flags == ["truncated"]


def test_exactly_max_words_is_not_truncated() -> None:
    assert extract_strategy("STRATEGY: " + words(100)) == (words(100), [])


def test_max_words_parameter() -> None:
    assert extract_strategy("STRATEGY: a b c d", max_words=2) == ("a b", ["truncated"])


def test_no_marker_keeps_the_last_words() -> None:
    reply = words(150, "pre") + "\n" + words(100)
    assert extract_strategy(reply) == (words(100), ["marker_missing"])


def test_short_reply_without_marker() -> None:
    assert extract_strategy("Just cooperate.\n") == ("Just cooperate.", ["marker_missing"])


def test_empty_strategy_after_marker_falls_back() -> None:
    reply = words(120) + "\nSTRATEGY:   \n"
    text, flags = extract_strategy(reply)
    assert text == " ".join((words(120) + " STRATEGY:").split()[-100:])
    assert flags == ["marker_missing"]


def test_long_preamble_before_marker() -> None:
    reply = words(300, "pre") + "\n**STRATEGY:** Cooperate first, then copy the opponent."
    assert extract_strategy(reply) == ("Cooperate first, then copy the opponent.", [])


def test_empty_reply() -> None:
    assert extract_strategy("") == ("", ["marker_missing"])
