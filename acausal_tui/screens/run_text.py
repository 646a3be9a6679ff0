"""The run screen's text, made from its view and the engine's events and records: the
header, the stats panel, the game feed's and the error log's lines, and the end-of-run
result. Model and outside text goes in literally (never as markup)."""

from pathlib import Path

from rich.text import Text

from acausal_tui.screens.run_view import RunView, plural, validity_words
from acausal_tui.widgets.indicators import indicator_text
from acausal_tui.widgets.text import literal, money, percent
from engine.analysis import INDICATORS_NOTE
from engine.control import RunStats
from engine.events import CallRetried, ErrorLogged, GameFinished, RoundSummarised
from engine.models import ExperimentResult, Manifest
from engine.records import unclean_note
from engine.textsafe import visible
from engine.validity import guessed_note, verdict

MOVE_STYLE = {"COOPERATE": "green", "DEFECT": "red"}


def feed_line(event: GameFinished | RoundSummarised, reveal: bool = False) -> Text:
    """One game with the round's Player_r_k labels (real ids beside them only when the
    researcher asked, key i): C cooperate, D defect; a move drawn because no reply could be
    read (a fallback, not counted) in lower case: c, d."""
    if isinstance(event, RoundSummarised):
        s = event.summary
        drawn = f" · {percent(s.fallback_rate)} drawn" if s.fallback_decisions else ""  # not counted
        return Text(f"── round {s.round}: cooperation {percent(s.cooperation_rate)}{drawn}", style="dim")
    g = event.game
    label1, label2 = event.label1, event.label2
    if reveal:
        label1, label2 = f"{label1} #{g.player1_id}", f"{label2} #{g.player2_id}"
    text = Text(f"{g.game_id:<8} {label1:>12} ")
    text.append_text(move_text(g.player1_action, g.player1_fallback))
    text.append("·")
    text.append_text(move_text(g.player2_action, g.player2_fallback))
    text.append(f" {label2:<12} {g.player1_payoff:5.2f}/{g.player2_payoff:<5.2f}")
    return text


def move_text(action: str, fallback: str | None) -> Text:
    """C or D; a drawn move (fallback) in lower case on yellow: it is not the model's choice."""
    if fallback:
        return Text(action[0].lower(), style="bold black on yellow")
    return Text(action[0], style=MOVE_STYLE[action])


def error_line(event: CallRetried | ErrorLogged) -> Text:
    if isinstance(event, CallRetried):
        text = Text("retry  ", style="yellow")
        text.append(f"{event.key} attempt {event.attempt} failed: ")
        text.append_text(literal(event.reason))
        text.append(f"; next try in {event.delay_s:.1f}s")
        return text
    record = event.record
    text = Text(f"{record.type:<6} ", style="bold red")
    text.append_text(literal(record.message))
    return text


def header_text(manifest: Manifest | None) -> Text:
    """One line, the most important first (a narrow terminal cuts the models off; the seed,
    which reproduces the run, comes before the size the progress line shows again)."""
    if manifest is None:
        return Text("starting the experiment…")
    text = literal(manifest.experiment_id, style="bold")
    if manifest.simulated:
        text.append("  ")
        text.append(" SIMULATED ", style="bold black on yellow")
    text.append(
        visible(  # names from the config, as a file gives them: a bidi override is shown, not obeyed
            f"  {manifest.condition.name} · seed {manifest.seed} · {plural(len(manifest.agents), 'agent')}"
            f" × {plural(manifest.config.rounds, 'round')} · {manifest.provider}"
            f" · models {manifest.main_model} (main), {manifest.sub_model} (sub)",
            one_line=True,
        )
    )
    return text


def moves_drawn_text(view: RunView) -> Text:
    """After the state: the run's validity once it is over, or while it runs the share of
    moves drawn so far (fallbacks, not counted) when there are any."""
    result = view.result
    if result is not None:
        line = validity_words(result.validity, result.simulated)
        bad = result.validity is None or not result.validity.valid
        return Text(f" · {line}", style="bold red" if bad else "green")
    if view.fallback_share:
        return Text(f" · fallback moves {percent(view.fallback_share)} so far (drawn, not counted)", style="yellow")
    return Text()


def stats_text(view: RunView, stats: RunStats) -> Text:
    """Five lines of at most 40 cells (the width of the pane at 80 columns). The cost is
    marked `~` when some of it is an estimate, and "unpriced" when a model has no price (it
    counts as $0)."""
    summary = view.summary
    text = Text()
    text.append("Coop   ", style="bold")
    text.append(f"this round {percent(view.round_cooperation())} · overall {percent(view.overall_cooperation())}\n")
    text.append("Score  ", style="bold")
    text.append(f"avg {summary.average_score:.2f} (round {summary.round})\n" if summary else "—\n")
    text.append("Power  ", style="bold")
    if summary:
        p = summary.power_distribution
        text.append(f"min {p.min:.1f} · mean {p.mean:.1f} · max {p.max:.1f}\n")
    elif view.manifest:
        powers = [a.initial_power for a in view.manifest.agents]
        text.append(f"min {min(powers):.1f} · mean {sum(powers) / len(powers):.1f} · max {max(powers):.1f}\n")
    else:
        text.append("—\n")
    text.append("Calls  ", style="bold")
    text.append(f"{stats.calls} · {plural(stats.retries, 'retry')} · {stats.in_flight} in flight\n")
    text.append("Cost   ", style="bold")
    budget = "no budget" if stats.budget_usd is None else f"budget ${stats.budget_usd:.2f}"
    text.append(f"{money(stats.cost, stats.cost_is_estimate)} of {budget}")
    if view.unpriced:
        text.append(" · unpriced", style="bold yellow")
    return text


BUDGET_RULE = (
    "A call is sent only while spent + the worst case of the calls in flight + its own "
    "worst case (prompt estimate + max_tokens at list price) stays within the budget, "
    "so a run stops before the spent cost reaches it."
)


def result_text(result: ExperimentResult, directory: Path | None) -> Text:
    """The end-of-run summary: totals, validity, the results path, then the acausal indicators
    (the part that may need scrolling at 80x24)."""
    text = Text()
    text.append(f"{result.status}", style="bold")
    text.append(
        f" · {plural(result.total_rounds, 'round')} · {plural(result.total_games, 'game')} · "
        f"{plural(result.total_api_calls, 'call')} ({plural(result.total_retries, 'retry')}) · "
        f"cost {money(result.total_cost, result.cost_is_estimate)} · "
        f"{plural(result.error_count, 'error')}\n"
    )
    if result.status == "budget_exceeded":
        text.append("Budget: ", style="bold yellow")
        text.append(BUDGET_RULE + "\n")
    if (unclean := unclean_note(result.unclean_stops)) is not None:
        text.append(unclean + "\n", style="yellow")
    text.append_text(validity_text(result))
    text.append("\nResults: ", style="bold")
    text.append(f"{directory}\n" if directory else "—\n")
    text.append("Press b to browse, q to quit; ↑↓ scroll.\n", style="dim")
    text.append("Acausal indicators ", style="bold")
    text.append(f"({INDICATORS_NOTE})\n", style="dim")
    text.append_text(indicator_text(result.acausal_indicators, formulas=False))
    return text


def feed_title(reveal: bool) -> str:
    """The Games pane's title: which ids its lines show."""
    ids = "real ids (i: anonymised)" if reveal else "anonymised"
    return f"Games ({ids}; C/D, drawn c/d)"


def validity_text(result: ExperimentResult) -> Text:
    """The validity line (SPEC §6), with the shares it is judged on."""
    text = Text()
    validity = result.validity
    line = validity_words(validity, result.simulated)
    judged = verdict(validity)
    style = "bold red" if validity is None or judged is False else "bold green" if judged else "bold yellow"
    text.append(line + "\n", style=style)
    if validity is not None:
        text.append(
            f"fallback moves {percent(validity.fallback_share)} · follow-ups {percent(validity.follow_up_share)}"
            f" · cut-off replies {validity.cut_off_replies} · strategies fresh {validity.strategies_fresh}, "
            f"carried over {validity.strategies_carried_over}, fallback {validity.strategies_fallback}\n",
            style="dim",
        )
        if (note := guessed_note(validity)) is not None:
            text.append(note + "\n", style="yellow")
    return text
