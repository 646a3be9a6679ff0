"""An agent's game history exactly as its decisions saw it, rebuilt from the games files
with the engine's own label and line functions (the same as `Experiment.record_history`
and `Experiment.history_text`)."""

from engine.conditions import Condition, history_window
from engine.models import GameResult
from engine.prompts import history_line, opponent_labels


def game_number(game: GameResult) -> int:
    """r3_g12 -> 12; the engine records history in game order."""
    return int(game.game_id.rsplit("_g", 1)[-1])


def agent_lines(
    games_by_round: dict[int, list[GameResult]], agent: int, seed: int, agents: int, condition: Condition
) -> list[tuple[int, str]]:
    """(round, history line) for every game the agent played, oldest first, with the labels
    it saw (one permutation per experiment, or per round when labels are shuffled)."""
    shuffled = condition.labels == "shuffled"
    lines: list[tuple[int, str]] = []
    for round in sorted(games_by_round):
        labels = opponent_labels(seed, agent, agents, round if shuffled else None)
        for g in sorted(games_by_round[round], key=game_number):
            if g.player1_id == agent:
                lines.append((round, history_line(round, labels[g.player2_id], g.player1_action, g.player2_action)))
            elif g.player2_id == agent:
                lines.append((round, history_line(round, labels[g.player1_id], g.player2_action, g.player1_action)))
    return lines


def seen_history(lines: list[tuple[int, str]], round: int, condition: Condition) -> str:
    """The `{history}` block of the agent's round-`round` decision prompts (empty: no games)."""
    window = history_window(condition.history)
    seen = [(r, line) for r, line in lines if r < round]
    if window is not None:
        seen = [(r, line) for r, line in seen if r >= round - window]
    return "\n".join(line for _, line in seen)


def opponents_in_round(
    games: list[GameResult], agent: int, seed: int, agents: int, condition: Condition, round: int
) -> list[str]:
    """The labels under which the agent met its opponents in `round`, in game order."""
    labels = opponent_labels(seed, agent, agents, round if condition.labels == "shuffled" else None)
    out = []
    for g in sorted(games, key=game_number):
        if agent in (g.player1_id, g.player2_id):
            out.append(labels[g.player2_id if g.player1_id == agent else g.player1_id])
    return out
