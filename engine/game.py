"""The game: payoff matrix, power scaling and update, round-robin pairing, initial powers."""

from typing import Literal

from engine.rng import keyed_rng

Action = Literal["COOPERATE", "DEFECT"]

POWER_MIN, POWER_MAX = 50.0, 150.0
POWER_RATE = 0.1  # p_i += 0.1 * (s_i - mean s)

# (R, S, T, P) = (3, 0, 5, 1): payoffs (player 1, player 2) by (action 1, action 2)
BASE_PAYOFFS: dict[tuple[str, str], tuple[float, float]] = {
    ("COOPERATE", "COOPERATE"): (3.0, 3.0),
    ("COOPERATE", "DEFECT"): (0.0, 5.0),
    ("DEFECT", "COOPERATE"): (5.0, 0.0),
    ("DEFECT", "DEFECT"): (1.0, 1.0),
}


def payoffs(action1: str, action2: str, power1: float, power2: float, dynamics: bool) -> tuple[float, float]:
    """With dynamics on, the weaker player's payoff is amplified:
    payoff_1 = base_1 * p2 / p1, payoff_2 = base_2 * p1 / p2."""
    base1, base2 = BASE_PAYOFFS[(action1, action2)]
    if not dynamics:
        return base1, base2
    return base1 * power2 / power1, base2 * power1 / power2


def clamp_power(power: float) -> float:
    return min(POWER_MAX, max(POWER_MIN, power))


def update_powers(powers: list[float], scores: list[float]) -> list[float]:
    """p_i <- clamp(p_i + 0.1 * (s_i - mean(s)), 50, 150), all from the same round's scores."""
    mean = sum(scores) / len(scores)
    return [clamp_power(p + POWER_RATE * (s - mean)) for p, s in zip(powers, scores, strict=True)]


def pairings(agent_count: int) -> list[tuple[int, int]]:
    """Every pair (i, j), i < j, in order; game k (1-based) is pairings[k - 1]."""
    return [(i, j) for i in range(agent_count) for j in range(i + 1, agent_count)]


def initial_powers(seed: int, agent_count: int, mode: str) -> list[float]:
    """random: N(100, 15) clamped to [50, 150], one generator per agent; equal: all 100."""
    if mode == "equal":
        return [100.0] * agent_count
    return [clamp_power(keyed_rng(seed, "power", agent).gauss(100.0, 15.0)) for agent in range(agent_count)]
