"""What agent i saw in round r: its opponents' labels, its history lines and the
`{history}` block of its decision prompts — one implementation for the runner, which
builds them as the games end, and the browser, which rebuilds them from the games files."""

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from operator import itemgetter

from engine.conditions import Condition, history_window
from engine.models import GameResult
from engine.prompts import history_line, opponent_labels

Line = tuple[int, str]  # (round, history line)


def labels_seen(seed: int, viewer: int, agents: int, condition: Condition, round: int) -> dict[int, str]:
    """How `viewer` saw each opponent in `round`: one permutation per experiment, or one
    per round when the condition shuffles labels."""
    return opponent_labels(seed, viewer, agents, round if condition.labels == "shuffled" else None)


def game_line(round: int, g: GameResult, me: int, labels: Mapping[int, str]) -> str:
    """Game `g` as a line of player `me`'s history (its opponent under the label it saw)."""
    if g.player1_id == me:
        return history_line(round, labels[g.player2_id], g.player1_action, g.player2_action)
    return history_line(round, labels[g.player1_id], g.player2_action, g.player1_action)


def seen_text(lines: list[Line], round: int, window: int | None) -> str:
    """The `{history}` block of a round-`round` decision (empty: no games): the lines of
    rounds < round, cut to the last `window` rounds. `lines` are in round order (one
    entry per line, or per round with its lines joined)."""
    rounds = itemgetter(0)
    end = bisect_left(lines, round, key=rounds)
    start = 0 if window is None else bisect_left(lines, round - window, key=rounds, hi=end)
    return "\n".join(line for _, line in lines[start:end])


class History:
    """Every reading agent's history, added a round at a time as the runner saves it: one
    text per agent and round (its lines of that round, joined), and only the rounds its next
    decisions can still show (the condition's window); with the full history, one text per
    agent, grown a round at a time, which the round's decisions show as it is (no copy per
    round). Labels are computed once per viewer (per round when shuffled). `text` is asked
    for the round being played: every round added is before it."""

    def __init__(self, seed: int, agents: int, condition: Condition, readers: Iterable[int]) -> None:
        self.seed = seed
        self.agents = agents
        self.condition = condition
        self.window = history_window(condition.history)
        self.readers = frozenset(readers)  # the agents whose prompts show a history
        self.lines: list[list[Line]] = [[] for _ in range(agents)]  # (round, its lines joined)
        self._labels: dict[tuple[int, int], dict[int, str]] = {}
        self._shuffled = condition.labels == "shuffled"

    def labels(self, viewer: int, round: int) -> dict[int, str]:
        key = (viewer, round if self._shuffled else 0)
        found = self._labels.get(key)
        if found is None:
            found = self._labels[key] = labels_seen(self.seed, viewer, self.agents, self.condition, round)
        return found

    def add_round(self, round: int, games: list[GameResult]) -> None:
        """Add the round's games to each reader's history, in game order; drop the rounds
        that no later decision shows."""
        added: dict[int, list[str]] = {}
        for g in games if self.window != 0 else ():
            for me in (g.player1_id, g.player2_id):
                if me in self.readers:
                    added.setdefault(me, []).append(game_line(round, g, me, self.labels(me, round)))
        for me, lines in added.items():
            kept, text = self.lines[me], "\n".join(lines)
            if self.window is None and kept:  # the whole history: one text
                kept[-1] = (round, f"{kept[-1][1]}\n{text}")
            else:
                kept.append((round, text))
        if self.window is not None:  # round r + 1 shows rounds r + 1 - window .. r
            for lines in self.lines:
                del lines[: bisect_left(lines, round + 1 - self.window, key=itemgetter(0))]
        if self._shuffled:  # a round's own labels are not needed again
            self._labels.clear()

    def text(self, agent: int, round: int) -> str:
        return seen_text(self.lines[agent], round, self.window)


# -- the browser: the same, rebuilt from the games files ------------------------------------


def game_number(game: GameResult) -> int:
    """r3_g12 -> 12; histories are in game order."""
    return int(game.game_id.rsplit("_g", 1)[-1])


def agent_lines(
    games_by_round: Mapping[int, list[GameResult]], agent: int, seed: int, agents: int, condition: Condition
) -> list[Line]:
    """(round, history line) for every game the agent played, oldest first, with the labels
    it saw."""
    lines: list[Line] = []
    for round in sorted(games_by_round):
        labels = labels_seen(seed, agent, agents, condition, round)
        for g in sorted(games_by_round[round], key=game_number):
            if agent in (g.player1_id, g.player2_id):
                lines.append((round, game_line(round, g, agent, labels)))
    return lines


def seen_history(lines: list[Line], round: int, condition: Condition) -> str:
    """The `{history}` block of the agent's round-`round` decision prompts (empty: no games)."""
    return seen_text(lines, round, history_window(condition.history))


def shown_later(round: int, rounds: int, condition: Condition) -> str:
    """Which later decisions see round `round`'s games in their history, of an experiment
    of `rounds` rounds: "history from round 3 on", "history of rounds 3 to 4", or why none."""
    window = history_window(condition.history)
    if window == 0:
        return "history none: no decision sees them"
    if round >= rounds:
        return "the last round: no later decision sees them"
    last = rounds if window is None else min(rounds, round + window)
    if last == round + 1:
        return f"history of round {last}"
    if window is None:
        return f"history from round {round + 1} on"
    return f"history of rounds {round + 1} to {last}"


def opponents_in_round(
    games: list[GameResult], agent: int, seed: int, agents: int, condition: Condition, round: int
) -> list[str]:
    """The labels under which the agent met its opponents in `round`, in game order."""
    labels = labels_seen(seed, agent, agents, condition, round)
    return [
        labels[g.player2_id if g.player1_id == agent else g.player1_id]
        for g in sorted(games, key=game_number)
        if agent in (g.player1_id, g.player2_id)
    ]
