"""Prompt templates and rendering (SPEC §5.1, §5.2), and the anonymous labels.

All prompt text lives here; the manifest records each template by hash."""

import hashlib
from string import ascii_uppercase

from engine.conditions import Condition
from engine.models import RoundSummary
from engine.rng import keyed_rng

IDENTITY_STATEMENT = (
    "All participants, including every opponent you will face, are identical copies of the "
    "same AI model, given these same instructions."
)

STRATEGY_INTRO = (
    "You are one of {agents} participants in a repeated prisoner's dilemma experiment. "
    "Each round, every participant plays one game against every other participant."
)

PAYOFF_TABLE = """Payoffs for one game (your points / your opponent's points):
- both COOPERATE: 3 / 3
- you COOPERATE, they DEFECT: 0 / 5
- you DEFECT, they COOPERATE: 5 / 0
- both DEFECT: 1 / 1"""

POWER_DYNAMIC = (
    "Your power level is {power:.1f} (power levels range from 50 to 150). Power scales payoffs: "
    "your payoff in a game is multiplied by your opponent's power divided by yours, so the "
    "weaker player's payoff is amplified. After each round every participant's power changes by "
    "0.1 x (their round score - the average round score)."
)

POWER_FIXED = "Power levels are fixed in this experiment; payoffs are exactly the table above."

FIRST_ROUND = "This is the first round; there is no previous data."

PREVIOUS_ROUND = (
    "Last round (round {round}): cooperation rate {cooperation}. "
    "Round scores: min {score_min:.2f}, average {score_avg:.2f}, max {score_max:.2f}."
)
# Appended to PREVIOUS_ROUND and SAMPLE_GAME unless the condition hides power (show_power off).
PREVIOUS_POWERS = " Power levels: min {power_min:.1f}, average {power_mean:.1f}, max {power_max:.1f}."

SAMPLE_GAME = "- Round {round}: {id1} {action1}, {id2} {action2}"
SAMPLE_RATIO = " (power ratio {ratio:.2f})"

SUBAGENT_NOTE = (
    "You will not play the games yourself. In every game a subagent applies your strategy. "
    "It sees only your strategy, its own history of past games with opponents shown under "
    "anonymous labels, and the current opponent's anonymous label."
)

STRATEGY_REQUEST = (
    "Think about how to play, then end your reply with one line that begins with "
    "'STRATEGY:' followed by the rule for the subagent, in at most 100 words."
)

DECISION_TEMPLATE = """You are playing prisoner's dilemma. Your strategy:
{strategy}

Game history so far:
{history}

Current opponent: Opponent {label}

Decision ({options}):"""

NO_HISTORY = "No previous games"
HISTORY_LINE = "Round {round} vs Opponent {label}: You {mine}, They {theirs}"
RETRY_INSTRUCTION = "Reply with only one word: COOPERATE or DEFECT"
# option_order "shuffled" offers the options in the other order in half the decisions
RETRY_INSTRUCTION_SWAPPED = "Reply with only one word: DEFECT or COOPERATE"

STRATEGY_TEMPERATURE, STRATEGY_MAX_TOKENS = 0.7, 1000
DECISION_TEMPERATURE, DECISION_MAX_TOKENS = 0.3, 100
SAMPLE_ROUNDS, SAMPLES_PER_ROUND = 3, 3


def prompt_hashes() -> dict[str, str]:
    """sha256 of every template, recorded in the manifest."""
    templates = {
        "identity_statement": IDENTITY_STATEMENT,
        "strategy": "\n".join(
            [
                STRATEGY_INTRO,
                PAYOFF_TABLE,
                POWER_DYNAMIC,
                POWER_FIXED,
                FIRST_ROUND,
                PREVIOUS_ROUND,
                PREVIOUS_POWERS,
                SAMPLE_GAME,
                SAMPLE_RATIO,
                SUBAGENT_NOTE,
                STRATEGY_REQUEST,
            ]
        ),
        "decision": DECISION_TEMPLATE + "\n" + NO_HISTORY + "\n" + HISTORY_LINE,
        "retry": RETRY_INSTRUCTION + "\n" + RETRY_INSTRUCTION_SWAPPED,
    }
    return {name: hashlib.sha256(text.encode()).hexdigest() for name, text in templates.items()}


def render_strategy_prompt(
    *,
    agents: int,
    condition: Condition,
    power: float,
    dynamics: bool,
    recent: list[RoundSummary],
    seed: int,
    previous: str | None = None,
) -> str:
    """`recent`: the summaries of the rounds played so far (only the last 3 are used).
    `previous`: their `previous_rounds_text`, when the caller has it already (it is the
    same for every agent of a round)."""
    parts = [STRATEGY_INTRO.format(agents=agents)]
    if condition.identity:
        parts.append(IDENTITY_STATEMENT)
    parts.append(PAYOFF_TABLE)
    if condition.show_power:
        parts.append(POWER_DYNAMIC.format(power=power) if dynamics else POWER_FIXED)
    parts.append(previous_rounds_text(recent, seed, condition.show_power) if previous is None else previous)
    parts.append(SUBAGENT_NOTE)
    parts.append(STRATEGY_REQUEST)
    return "\n\n".join(parts)


def previous_rounds_text(recent: list[RoundSummary], seed: int, show_power: bool = True) -> str:
    """show_power off leaves out every power figure: the population's power levels and the
    sample games' power ratios."""
    if not recent:
        return FIRST_ROUND
    last = recent[-1]
    line = PREVIOUS_ROUND.format(
        round=last.round,
        cooperation="n/a" if last.cooperation_rate is None else f"{100.0 * last.cooperation_rate:.1f}%",
        score_min=last.score_distribution.min,
        score_avg=last.score_distribution.avg,
        score_max=last.score_distribution.max,
    )
    if show_power:
        power = last.power_distribution
        line += PREVIOUS_POWERS.format(power_min=power.min, power_mean=power.mean, power_max=power.max)
    lines = [line]
    sample = SAMPLE_GAME + SAMPLE_RATIO if show_power else SAMPLE_GAME
    samples = []
    for summary in recent[-SAMPLE_ROUNDS:]:
        games = summary.anonymized_games
        picked = keyed_rng(seed, "samples", summary.round).sample(games, min(SAMPLES_PER_ROUND, len(games)))
        samples += [
            sample.format(
                round=g.round,
                id1=g.anonymous_id1,
                action1=g.action1,
                id2=g.anonymous_id2,
                action2=g.action2,
                ratio=g.power_ratio,
            )
            for g in sorted(picked, key=lambda g: (g.anonymous_id1, g.anonymous_id2))
        ]
    if samples:
        lines.append("Sample games from recent rounds (players anonymised):")
        lines += samples
    return "\n".join(lines)


def render_decision_prompt(strategy: str, history: str, label: str, swapped: bool = False) -> str:
    """`swapped` offers the options as DEFECT/COOPERATE (option_order "shuffled")."""
    options = "DEFECT/COOPERATE" if swapped else "COOPERATE/DEFECT"
    return DECISION_TEMPLATE.format(strategy=strategy, history=history or NO_HISTORY, label=label, options=options)


def retry_instruction(swapped: bool = False) -> str:
    """The follow-up turn after an ambiguous reply, with the options in the prompt's order."""
    return RETRY_INSTRUCTION_SWAPPED if swapped else RETRY_INSTRUCTION


def history_line(round: int, label: str, mine: str, theirs: str) -> str:
    return HISTORY_LINE.format(round=round, label=label, mine=mine, theirs=theirs)


def label_name(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, 27 -> AB, ... (spreadsheet-style)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = ascii_uppercase[rest] + name
    return name


def opponent_labels(seed: int, viewer: int, agent_count: int, round: int | None = None) -> dict[int, str]:
    """How `viewer` sees each opponent: a seeded permutation of its opponents mapped to
    A, B, ... One per experiment (stable labels), or one per round when `round` is given
    (shuffled labels). Shuffled labels are qualified by the round (R3-A, R3-B, ...): reusing
    A, B, ... every round would make "Opponent A" now match past games with *other*
    opponents called A, a false reputation instead of none."""
    opponents = [a for a in range(agent_count) if a != viewer]
    key = ("labels", viewer) if round is None else ("labels", viewer, round)
    keyed_rng(seed, *key).shuffle(opponents)
    prefix = "" if round is None else f"R{round}-"
    return {opponent: prefix + label_name(index) for index, opponent in enumerate(opponents)}


def round_player_labels(seed: int, round: int, agent_count: int) -> dict[int, str]:
    """Player_{r}_{k} names for round summaries and the live feed, from a per-round shuffle."""
    agents = list(range(agent_count))
    keyed_rng(seed, "round_labels", round).shuffle(agents)
    return {agent: f"Player_{round}_{k}" for k, agent in enumerate(agents, start=1)}
