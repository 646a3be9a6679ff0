"""Classic iterated prisoner's dilemma strategies (SPEC §5.3), no model calls.

Each strategy sees only its history with the current opponent, as (my_action,
their_action) pairs, oldest first, so a round-robin of scripted agents reproduces a
standard iterated-PD tournament.
"""

import random
from collections.abc import Callable, Sequence

from engine.game import Action

History = Sequence[tuple[str, str]]
ScriptedStrategy = Callable[[History, random.Random], Action]


def _copy(move: str) -> Action:
    return "DEFECT" if move == "DEFECT" else "COOPERATE"


def _other(move: str) -> Action:
    return "COOPERATE" if move == "DEFECT" else "DEFECT"


def always_cooperate(history: History, rng: random.Random) -> Action:
    return "COOPERATE"


def always_defect(history: History, rng: random.Random) -> Action:
    return "DEFECT"


def tit_for_tat(history: History, rng: random.Random) -> Action:
    return _copy(history[-1][1]) if history else "COOPERATE"


def suspicious_tit_for_tat(history: History, rng: random.Random) -> Action:
    return _copy(history[-1][1]) if history else "DEFECT"


def tit_for_two_tats(history: History, rng: random.Random) -> Action:
    last_two = [theirs for _, theirs in history[-2:]]
    return "DEFECT" if last_two == ["DEFECT", "DEFECT"] else "COOPERATE"


def grudger(history: History, rng: random.Random) -> Action:
    return "DEFECT" if any(theirs == "DEFECT" for _, theirs in history) else "COOPERATE"


def win_stay_lose_shift(history: History, rng: random.Random) -> Action:
    if not history:
        return "COOPERATE"
    mine, theirs = history[-1]
    # The opponent cooperating means a good payoff (R or T): keep the move; else switch.
    return _copy(mine) if theirs == "COOPERATE" else _other(mine)


def alternator(history: History, rng: random.Random) -> Action:
    return "COOPERATE" if len(history) % 2 == 0 else "DEFECT"


def random_choice(history: History, rng: random.Random) -> Action:
    return "COOPERATE" if rng.random() < 0.5 else "DEFECT"


STRATEGIES: dict[str, ScriptedStrategy] = {
    "always_cooperate": always_cooperate,
    "always_defect": always_defect,
    "tit_for_tat": tit_for_tat,
    "suspicious_tit_for_tat": suspicious_tit_for_tat,
    "tit_for_two_tats": tit_for_two_tats,
    "grudger": grudger,
    "win_stay_lose_shift": win_stay_lose_shift,
    "alternator": alternator,
    "random": random_choice,
}

# The scripted agent's strategy_text: fixed prose, the same every round.
DESCRIPTIONS: dict[str, str] = {
    "always_cooperate": "Always cooperate, whatever the opponent does.",
    "always_defect": "Always defect, whatever the opponent does.",
    "tit_for_tat": "Cooperate in the first game with an opponent, then copy the opponent's previous move.",
    "suspicious_tit_for_tat": "Defect in the first game with an opponent, then copy the opponent's previous move.",
    "tit_for_two_tats": "Cooperate unless the opponent defected in both of the last two games with me, then defect.",
    "grudger": "Cooperate until the opponent defects once, then defect against that opponent forever.",
    "win_stay_lose_shift": "Cooperate first; afterwards repeat my previous move if the "
    "opponent cooperated last time, otherwise switch to the other move.",
    "alternator": "Alternate with each opponent: cooperate, defect, cooperate, defect, and so on.",
    "random": "Cooperate or defect at random, each with probability one half.",
}


def decide(name: str, history: History, rng: random.Random) -> Action:
    """The move of scripted strategy `name` given its history with this opponent.

    `rng` is consumed only by `random`, so the other strategies never shift the stream
    of a generator the caller shares with them.
    """
    return STRATEGIES[name](history, rng)
