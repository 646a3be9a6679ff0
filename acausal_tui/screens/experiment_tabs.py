"""What the experiment screen shows, built from its files: the overview, a round's row, a
round's games, what an agent's decisions saw, a round's strategies and the indicators."""

from collections.abc import Iterator

import msgspec
from rich.text import Text

from acausal_tui.screens.experiment_files import RoundFiles
from acausal_tui.screens.run_view import validity_words
from acausal_tui.widgets.indicators import indicator_value
from acausal_tui.widgets.strategy import strategy_text
from acausal_tui.widgets.text import cells, literal, money, money_at_least, percent
from engine.analysis import INDICATOR_DOCS, INDICATORS_NOTE, compute_indicators
from engine.calllog import Spend
from engine.lock import unfinished_state
from engine.models import GameResult, RoundSummary
from engine.prompts import NO_HISTORY, round_player_labels
from engine.records import unclean_note
from engine.store import LoadedExperiment
from engine.textsafe import visible
from engine.validity import guessed_note
from engine.views import agent_lines, game_number, opponents_in_round, seen_history, shown_later

ALL = -1  # the games of every agent
ROUND_COLUMNS = (
    "Round",
    "Cooperation",
    "Mutual C",
    "Avg score",
    "Score var",
    "Power min",
    "Power mean",
    "Power max",
    "Similarity",
    "Fallbacks",
    "Duration",
)
GAME_COLUMNS = (
    "Game",
    "Player 1",
    "Player 2",
    "Move 1",
    "Move 2",
    "Payoff 1",
    "Payoff 2",
    "Power 1",
    "Power 2",
    "Fallback",
)
INDICATOR_COLUMNS = ("Indicator", "Value", "Formula")


def overview(loaded: LoadedExperiment, rounds: int, spent: Spend | None = None) -> Text:
    """The title: status, size, condition, models, cost, directory and what went wrong.
    `spent`: what calls.jsonl says, for an experiment with no result file."""
    m, result = loaded.manifest, loaded.current_result
    assert m is not None
    status = result.status if result else f"partial: {unfinished_state(m.status, loaded.directory)}"
    text = literal(m.experiment_id, style="bold")
    text.append(f"  {status}")
    if m.simulated:
        text.append("  ")
        text.append(" SIMULATED ", style="bold black on yellow")
    text.append(
        f"\n{rounds}/{m.config.rounds} rounds · {len(m.agents)} agents · condition "
        + visible(
            f"{m.condition.name} (identity {'on' if m.condition.identity else 'off'}, history "
            f"{m.condition.history}, labels {m.condition.labels}) · seed {m.seed}",
            one_line=True,
        )
        + "\n"
    )  # names as a file gives them: a bidi override is shown (<U+202E>), not obeyed
    text.append(visible(f"provider {m.provider} · models {m.main_model} (main), {m.sub_model} (sub)", one_line=True))
    if result:
        text.append(f" · {result.total_api_calls} calls · cost {money(result.total_cost, result.cost_is_estimate)}")
        if (unclean := unclean_note(result.unclean_stops)) is not None:
            text.append(f"\n{unclean}", style="yellow")
    elif spent is not None:  # calls in flight when it stopped are not logged: a lower bound
        text.append(f" · {spent.calls} calls · cost {money_at_least(spent.cost, spent.estimate)} so far (calls.jsonl)")
    text.append("\n" + visible(str(loaded.directory), one_line=True), style="dim")
    message = (result.message if result else None) or m.message
    if message:
        text.append("\n")
        text.append_text(literal(message, style="yellow"))
    for problem in loaded.problems:
        text.append("\n")
        text.append_text(literal(problem, style="red"))
    return text


def round_row(round: int, s: RoundSummary) -> tuple[Text, ...]:
    p = s.power_distribution
    similarity = "—" if s.strategy_similarity is None else f"{s.strategy_similarity:.3f}"
    return cells(
        str(round),
        percent(s.cooperation_rate),
        percent(s.mutual_cooperation_rate),
        f"{s.average_score:.2f}",
        f"{s.score_variance:.2f}",
        f"{p.min:.1f}",
        f"{p.mean:.1f}",
        f"{p.max:.1f}",
        similarity,
        str(s.fallback_decisions),
        f"{s.duration_s:.2f}s",
    )


def game_rows(files: RoundFiles, seed: int, round: int, agent: int) -> Iterator[tuple[str, tuple[Text, ...]]]:
    """(game id, cells) of the round's games `agent` played (ALL: every game)."""
    labels = round_player_labels(seed, round, files.agents)
    for g in files.games(round):
        if agent not in (ALL, g.player1_id, g.player2_id):
            continue
        fallback = ", ".join(
            f"p{n}: {reason}" for n, reason in ((1, g.player1_fallback), (2, g.player2_fallback)) if reason
        )
        yield (
            g.game_id,
            cells(
                g.game_id,
                f"{g.player1_id} ({labels.get(g.player1_id, '?')})",
                f"{g.player2_id} ({labels.get(g.player2_id, '?')})",
                g.player1_action,
                g.player2_action,
                f"{g.player1_payoff:.2f}",
                f"{g.player2_payoff:.2f}",
                f"{g.player1_power_before:.1f}",
                f"{g.player2_power_before:.1f}",
                fallback,
            ),
        )


def history_text(files: RoundFiles, rounds: list[int], agent: int, round: int) -> Text:
    """What agent `agent`'s decisions in round `round` were shown, as they saw it."""
    m = files.loaded.manifest
    assert m is not None
    by_round = {r: files.games(r) for r in rounds if r <= round}
    lines = agent_lines(by_round, agent, m.seed, files.agents, m.condition)
    info = next(a for a in m.agents if a.id == agent)
    # A scripted rule reads every earlier game with its opponent, whatever the LLMs' window.
    seen = m.condition if info.kind == "llm" else msgspec.structs.replace(m.condition, history="full")
    history = seen_history(lines, round, seen)
    strategy = next((s for s in files.strategies(round) if s.agent_id == agent), None)
    text = Text(f"Agent {agent} ({info.kind}) — what its decisions in round {round} saw\n", style="bold")
    text.append(
        f"labels {m.condition.labels} · history {m.condition.history}; opponents appear "
        "under the labels this agent saw, never by id\n",
        style="dim",
    )
    if info.kind == "scripted":
        text.append(
            f"scripted ({info.strategy}): it decides from its history with the current "
            "opponent only, every earlier round of it (the history switch is for the LLM "
            "agents' prompts); the lines below are its whole history in prompt form\n",
            style="dim",
        )
    text.append("\nYour strategy:\n", style="bold")
    text.append_text(literal(strategy.strategy_text) if strategy else Text("—", style="dim"))
    text.append("\n\nGame history so far:\n", style="bold")
    text.append(history or NO_HISTORY)
    opponents = opponents_in_round(files.games(round), agent, m.seed, files.agents, m.condition, round)
    text.append(f"\n\nCurrent opponents in round {round}, one game each:\n", style="bold")
    text.append(", ".join(f"Opponent {label}" for label in opponents) or "—")
    later = shown_later(round, m.config.rounds, seen)
    text.append(f"\n\nIts round {round} games ({later}):\n", style="bold")
    text.append("\n".join(line for r, line in lines if r == round) or "—")
    text.append_text(files.problems(*(f"games_r{r}.json" for r in by_round), f"strategies_r{round}.json"))
    return text


def agent_games(files: RoundFiles, agent: int, round: int) -> list[tuple[GameResult, str, str]]:
    """The round's games of `agent` as (game, label 1, label 2), under the labels it saw
    them by ("you" for itself)."""
    m = files.loaded.manifest
    assert m is not None
    games = sorted((g for g in files.games(round) if agent in (g.player1_id, g.player2_id)), key=game_number)
    labels = opponents_in_round(games, agent, m.seed, files.agents, m.condition, round)
    return [
        (g, "you", f"Opponent {label}") if g.player1_id == agent else (g, f"Opponent {label}", "you")
        for g, label in zip(games, labels, strict=True)
    ]


def strategies_text(files: RoundFiles, round: int) -> Text:
    text = Text()
    for record in files.strategies(round):
        text.append_text(strategy_text(record))
        text.append("\n\n" + "─" * 60 + "\n\n", style="dim")
    text.append_text(files.problems(f"strategies_r{round}.json"))
    return text


def indicators(files: RoundFiles, rounds: list[int]) -> tuple[Text, list[tuple[str, tuple[Text, ...]]]]:
    """The indicators' source line and (name, cells) rows: from the result file, or (none)
    computed from every round file that could be read."""
    loaded, result = files.loaded, files.loaded.current_result
    if result is not None:
        values = result.acausal_indicators
        source = "From experiment_results.json"
    else:
        strategies = [s for r in rounds for s in files.strategies(r)]
        games = [g for r in rounds for g in files.games(r)]
        values = compute_indicators(strategies, games, [loaded.summaries[r] for r in rounds])
        source = "No result file: computed from the round files that could be read"
    source += f"\n{INDICATORS_NOTE}"
    if result is not None:
        source += f"\n{validity_words(result.validity, result.simulated)}"
        if (note := guessed_note(result.validity)) is not None:
            source += f"\n{note}"
    rows = [
        (name, cells(name, indicator_value(name, getattr(values, name)), INDICATOR_DOCS.get(name, "")))
        for name in values.__struct_fields__
    ]
    return Text(source, style="dim"), rows
