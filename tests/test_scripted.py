import random

import pytest

from engine.agents.scripted import DESCRIPTIONS, STRATEGIES, decide

C, D = "COOPERATE", "DEFECT"
BASE = {(C, C): (3, 3), (C, D): (0, 5), (D, C): (5, 0), (D, D): (1, 1)}


def play(first: str, second: str, turns: int = 10) -> tuple[int, int]:
    """Iterated PD: total base-matrix scores of `first` and `second` over `turns` games."""
    history1: list[tuple[str, str]] = []
    history2: list[tuple[str, str]] = []
    rng1, rng2 = random.Random(1), random.Random(2)
    score1 = score2 = 0
    for _ in range(turns):
        move1 = decide(first, history1, rng1)
        move2 = decide(second, history2, rng2)
        payoff1, payoff2 = BASE[(move1, move2)]
        score1 += payoff1
        score2 += payoff2
        history1.append((move1, move2))
        history2.append((move2, move1))
    return score1, score2


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # CC×10
        ("tit_for_tat", "tit_for_tat", (30, 30)),
        # CD, then DD×9
        ("tit_for_tat", "always_defect", (9, 14)),
        # CD×10
        ("always_cooperate", "always_defect", (0, 50)),
        # DD×10
        ("always_defect", "always_defect", (10, 10)),
        # grudger C C D D D D D D D D vs C D C D C D C D C D:
        # CC, CD, then (DC, DD)×4
        ("grudger", "alternator", (27, 12)),
        # C D C D … vs D×10: the DD payoff counts as a loss, so it keeps switching:
        # (CD, DD)×5
        ("win_stay_lose_shift", "always_defect", (5, 30)),
        # never two Ds in a row, so C×10 vs C D C D …: (CC, CD)×5
        ("tit_for_two_tats", "alternator", (15, 40)),
        # C C D D D D D D D D vs D×10: CD, CD, DD×8
        ("tit_for_two_tats", "always_defect", (8, 18)),
        # D C D C … vs C D C D …: they echo each other out of phase: (DC, CD)×5
        ("suspicious_tit_for_tat", "tit_for_tat", (25, 25)),
        # C D D C D D C D D C vs D C D D C D D C D D: (CD, DC, DD)×3, CD
        ("win_stay_lose_shift", "suspicious_tit_for_tat", (18, 23)),
        # C D C D … vs C×10: (CC, DC)×5
        ("alternator", "always_cooperate", (40, 15)),
        # CC×10: neither defects first
        ("grudger", "win_stay_lose_shift", (30, 30)),
    ],
)
def test_iterated_pd_totals(first: str, second: str, expected: tuple[int, int]) -> None:
    assert play(first, second) == expected
    assert play(second, first) == expected[::-1]


def test_registry_names() -> None:
    assert list(STRATEGIES) == [
        "always_cooperate",
        "always_defect",
        "tit_for_tat",
        "suspicious_tit_for_tat",
        "tit_for_two_tats",
        "grudger",
        "win_stay_lose_shift",
        "alternator",
        "random",
    ]
    assert DESCRIPTIONS.keys() == STRATEGIES.keys()
    assert all(text.strip() for text in DESCRIPTIONS.values())


@pytest.mark.parametrize(
    ("name", "history", "expected"),
    [
        ("tit_for_tat", [], C),
        ("tit_for_tat", [(C, D)], D),
        ("tit_for_tat", [(C, D), (D, C)], C),
        ("suspicious_tit_for_tat", [], D),
        ("suspicious_tit_for_tat", [(D, C)], C),
        ("tit_for_two_tats", [(C, D)], C),
        ("tit_for_two_tats", [(C, D), (C, D)], D),
        ("tit_for_two_tats", [(C, D), (C, C), (C, D)], C),
        ("grudger", [(C, D)] + [(D, C)] * 5, D),  # never forgives
        ("win_stay_lose_shift", [], C),
        ("win_stay_lose_shift", [(D, C)], D),  # temptation won: stay
        ("win_stay_lose_shift", [(C, C)], C),  # reward won: stay
        ("win_stay_lose_shift", [(D, D)], C),  # punishment lost: shift
        ("win_stay_lose_shift", [(C, D)], D),  # sucker lost: shift
        ("alternator", [], C),
        ("alternator", [(C, C)], D),
        ("alternator", [(C, C), (D, C)], C),
    ],
)
def test_decide(name: str, history: list[tuple[str, str]], expected: str) -> None:
    assert decide(name, history, random.Random(0)) == expected


@pytest.mark.parametrize("name", [name for name in STRATEGIES if name != "random"])
def test_only_random_consumes_the_rng(name: str) -> None:
    rng = random.Random(7)
    state = rng.getstate()
    decide(name, [(C, D), (D, D)], rng)
    assert rng.getstate() == state


def test_random_is_seeded() -> None:
    def draws(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [decide("random", [], rng) for _ in range(1000)]

    first = draws(42)
    assert first == draws(42)
    assert first != draws(43)
    assert 450 <= first.count(C) <= 550
    assert set(first) == {C, D}
