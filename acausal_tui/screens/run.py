"""The live run screen: the engine runs as the screen's worker (see EngineScreen); its
events are folded into a RunView and shown at most 10 times a second."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, ProgressBar, RichLog, Static

from acausal_tui.screens.engine_screen import (
    ERROR_LINES,
    EngineScreen,
    EventBuffer,
    collect_frozen,
    control_bindings,
    freeze_survivors,
)
from acausal_tui.screens.transcript import GamePicker
from acausal_tui.widgets.agents import AgentsTable
from acausal_tui.widgets.chart import CoopChart
from acausal_tui.widgets.indicators import indicator_text
from acausal_tui.widgets.strategy import StrategyPane
from acausal_tui.widgets.tail import Tail
from acausal_tui.widgets.text import duration, literal, money, percent
from engine.analysis import INDICATORS_NOTE
from engine.control import RunControl
from engine.events import (
    CallRetried,
    ErrorLogged,
    Event,
    GameFinished,
    Observer,
    PhaseStarted,
    RoundStarted,
    RoundSummarised,
    RunFinished,
    RunStarted,
    StrategyCollected,
)
from engine.models import ExperimentResult, Manifest, RoundSummary
from engine.store import load_experiment
from engine.validity import validity_line

RunFn = Callable[[Observer, RunControl], Awaitable[ExperimentResult]]
FEED_LINES = 100  # more than a terminal shows
FEED_PAINT_S = 0.25  # the feed is repainted at most 4 times a second
NARROW = 110  # columns below which the panes drop their extras (an 80-column terminal)
SHORT = 36  # rows below which the error log and the chart shrink (a 24-row terminal)
MOVE_STYLE = {"COOPERATE": "green", "DEFECT": "red"}


@dataclass
class RunView:
    """What the run screen shows, folded from the engine's events."""

    manifest: Manifest | None = None
    directory: Path | None = None
    round: int = 0
    total_rounds: int = 0
    completed: int = 0
    phase: str = "starting"
    phase_total: int = 0
    phase_done: int = 0
    durations: list[float] = field(default_factory=list)
    rates: list[float | None] = field(default_factory=list)  # cooperation of rounds 1, 2, …
    round_moves: int = 0
    round_cooperate: int = 0
    overall_at_round_end: float | None = None
    counted_before: int = 0  # moves that count (fallbacks left out) in the summarised rounds
    summary: RoundSummary | None = None
    result: ExperimentResult | None = None

    def apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.manifest, self.directory = event.manifest, event.directory
            self.total_rounds = event.manifest.config.rounds
            self.completed = event.first_round - 1
        elif isinstance(event, RoundStarted):
            self.round, self.total_rounds = event.round, event.total_rounds
            self.round_moves = self.round_cooperate = 0
        elif isinstance(event, PhaseStarted):
            self.phase, self.phase_total, self.phase_done = event.phase, event.total, 0
        elif isinstance(event, StrategyCollected | GameFinished):
            self.phase_done += 1
            if isinstance(event, GameFinished):
                g = event.game  # fallback moves are not the model's choice: not counted
                moves = [a for a, f in ((g.player1_action, g.player1_fallback), (g.player2_action, g.player2_fallback))
                         if f is None]
                self.round_moves += len(moves)
                self.round_cooperate += moves.count("COOPERATE")
        elif isinstance(event, RoundSummarised):
            self.summary = event.summary
            self.completed = event.summary.round
            self.durations.append(event.summary.duration_s)
            self.rates.append(event.summary.cooperation_rate)
            self.overall_at_round_end = event.overall_cooperation_rate
            self.counted_before += self.counted_moves(event.summary)
            self.round_moves = self.round_cooperate = 0
        elif isinstance(event, RunFinished):
            # An unfinished round's games are not part of the result: show the saved figures.
            self.result, self.directory = event.result, event.directory
            self.overall_at_round_end = event.result.acausal_indicators.overall_cooperation_rate
            self.round_moves = self.round_cooperate = 0

    def resumed(self, summaries: list[RoundSummary], first_round: int) -> None:
        """A resumed run: the rounds done before it, from their summary files (read off the
        event loop, so rounds played since may already be in the view: they stay)."""
        done = sorted((s for s in summaries if s.round < first_round), key=lambda s: s.round)
        self.rates = [s.cooperation_rate for s in done] + self.rates
        self.durations = [s.duration_s for s in done] + self.durations
        self.counted_before += sum(self.counted_moves(s) for s in done)
        if done and self.summary is None:  # no round summarised since the resume
            self.summary = done[-1]
            if self.overall_at_round_end is None:
                counted = [(s.cooperation_rate, self.counted_moves(s)) for s in done if s.cooperation_rate is not None]
                total = sum(n for _, n in counted)
                self.overall_at_round_end = sum(r * n for r, n in counted) / total if total else None

    def counted_moves(self, summary: RoundSummary) -> int:
        """Every round has 2 moves x n(n-1)/2 games; the fallbacks among them do not count."""
        return self.agents * (self.agents - 1) - summary.fallback_decisions

    @property
    def agents(self) -> int:
        return len(self.manifest.agents) if self.manifest else 0

    def eta(self) -> float | None:
        """Mean of the last 3 round durations x rounds left."""
        recent = self.durations[-3:]
        return sum(recent) / len(recent) * (self.total_rounds - self.completed) if recent else None

    def round_cooperation(self) -> float | None:
        """This round's so far; once it is summarised, its final figure."""
        if self.round_moves:
            return self.round_cooperate / self.round_moves
        if self.summary is not None and self.summary.round == self.round:
            return self.summary.cooperation_rate
        return None

    def overall_cooperation(self) -> float | None:
        """The engine's figure at the last round end, extended by this round's moves so far."""
        before = self.counted_before if self.overall_at_round_end is not None else 0
        base = self.overall_at_round_end or 0.0
        moves = before + self.round_moves if self.overall_at_round_end is not None else self.round_moves
        if not moves:
            return None
        cooperate = base * before if self.overall_at_round_end is not None else 0.0
        return (cooperate + self.round_cooperate) / moves

    def progress(self) -> float:
        within = self.phase_done / self.phase_total if self.phase == "games" and self.phase_total else 0.0
        return min(self.total_rounds, self.completed + within)


def feed_line(event: GameFinished | RoundSummarised, reveal: bool = False) -> Text:
    """One game with the round's Player_r_k labels (real ids beside them only when the
    researcher asked, key i): C cooperate, D defect."""
    if isinstance(event, RoundSummarised):
        s = event.summary
        fallbacks = f" · fallbacks {percent(s.fallback_rate)} (not counted)" if s.fallback_decisions else ""
        return Text(f"── round {s.round} done: cooperation {percent(s.cooperation_rate)}{fallbacks}", style="dim")
    g = event.game
    label1, label2 = event.label1, event.label2
    if reveal:
        label1, label2 = f"{label1} #{g.player1_id}", f"{label2} #{g.player2_id}"
    text = Text(f"{g.game_id:<8} {label1:>12} ")
    text.append(g.player1_action[0], style=MOVE_STYLE[g.player1_action])
    text.append("·")
    text.append(g.player2_action[0], style=MOVE_STYLE[g.player2_action])
    text.append(f" {label2:<12} {g.player1_payoff:5.2f}/{g.player2_payoff:<5.2f}")
    if g.player1_fallback or g.player2_fallback:
        text.append(" fallback", style="yellow")
    return text


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
    """One line, the most important first (a narrow terminal cuts the models off)."""
    if manifest is None:
        return Text("starting the experiment…")
    text = literal(manifest.experiment_id, style="bold")
    if manifest.simulated:
        text.append("  ")
        text.append(" SIMULATED ", style="bold black on yellow")
    text.append(
        f"  {manifest.condition.name} · {plural(len(manifest.agents), 'agent')}"
        f" × {plural(manifest.config.rounds, 'round')} · seed {manifest.seed} · {manifest.provider}"
        f" · models {manifest.main_model} (main), {manifest.sub_model} (sub)"
    )
    return text


class RunScreen(EngineScreen):
    BINDINGS = [
        *control_bindings("Pause", "Resume", "Abort"),
        Binding("b", "browse", "Browse", id="browse"),
        Binding("left_square_bracket", "agent(-1)", "Agent", key_display="[ ]", id="prev_agent"),
        Binding("right_square_bracket", "agent(1)", "Next agent", show=False, id="next_agent"),
        Binding("g", "games", "Games", id="games"),  # transcripts of the feed's games
        Binding("t", "agents_table", "Agents", id="agents_table"),
        Binding("i", "reveal_ids", "Real ids", show=False, id="reveal_ids"),
    ]

    control: RunControl
    buffer: EventBuffer[Event]
    view: RunView
    WORKER_NAME = "experiment"
    ABORT_QUESTION = ("Abort the run? In-flight calls are cancelled and the rounds done so far "
                      "are saved with status 'aborted'.")

    def __init__(self, run: RunFn, results_dir: Path) -> None:
        super().__init__(run, RunControl(), RunView())
        self.results_dir = results_dir
        self.reveal = False  # real ids beside the labels in the feed (SPEC §4 allows it)

    def compose(self) -> ComposeResult:
        yield Static(id="run-header")
        with Horizontal(id="progress-row"):
            yield Static(id="round-label")
            # A total from the start: an indeterminate bar animates at 15 fps.
            yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="round-progress")
            yield Static(id="phase-label")
        yield Static(id="run-status")
        with Horizontal(id="top-row"):
            yield Static(id="stats", classes="panel")
            yield CoopChart(id="chart")
        with Horizontal(id="middle-row"):
            yield Tail(FEED_LINES, feed_line, min_interval=FEED_PAINT_S, id="feed", classes="panel")
            yield AgentsTable(id="agents", classes="panel")
            with VerticalScroll(id="final", classes="panel"):
                yield Static(id="final-text")
            yield StrategyPane(id="strategies", classes="panel")
        yield RichLog(max_lines=ERROR_LINES, wrap=True, id="errors", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stats").border_title = "Stats"
        self.query_one("#feed").border_title = "Games (anonymised; C cooperate, D defect)"
        self.query_one("#final").border_title = "Result"
        self.query_one("#strategies").border_title = "Strategies"
        self.query_one("#errors").border_title = "Retries and errors"
        self.query_one("#final").display = False
        self.start_engine()

    def on_resize(self, event: events.Resize) -> None:
        """Design for 80x24 first; wider and taller terminals add the extras (app.tcss)."""
        self.set_class(event.size.width < NARROW, "narrow")
        self.set_class(event.size.height < SHORT, "short")
        self.refresh_bindings()

    async def load_resumed(self, directory: Path, first_round: int) -> None:
        """The rounds done before a resume, from their summary files, read off the loop."""
        loaded = await anyio.to_thread.run_sync(load_experiment, directory)
        self.view.resumed(list(loaded.summaries.values()), first_round)
        self.redraw()

    # -- rendering ------------------------------------------------------------------

    def flush(self) -> None:
        """Fold the buffered events into the view and redraw what changed."""
        events = self.buffer.drain()
        feed: list[GameFinished | RoundSummarised] = []  # made into lines when they are drawn
        errors: list[Text] = []
        pane = self.query_one(StrategyPane)
        for event in events:
            self.view.apply(event)
            if isinstance(event, RunStarted):
                if event.first_round > 1:
                    self.run_worker(self.load_resumed(event.directory, event.first_round),
                                    group="resumed", exit_on_error=False)
                pane.set_agents([f"Agent {a.id}" + (" (s)" if a.kind == "scripted" else "")
                                 for a in event.manifest.agents])
                errors += [Text("warning ", style="bold yellow") + literal(w) for w in event.manifest.warnings]
            elif isinstance(event, RoundStarted):
                pane.start_round(event.round)
                freeze_survivors()
            elif isinstance(event, StrategyCollected):
                pane.add(event.record)
            elif isinstance(event, GameFinished | RoundSummarised):
                feed.append(event)
            elif isinstance(event, CallRetried | ErrorLogged):
                errors.append(error_line(event))
            elif isinstance(event, RunFinished):
                pane.keep_rounds(event.result.total_rounds)
                self.finished(event.result)
        self.query_one(AgentsTable).apply(events)
        pane.show(force=self.view.result is not None)
        if feed:
            self.query_one(Tail).write(feed[-FEED_LINES:])
        if errors:
            self.query_one("#errors", RichLog).write(Text("\n").join(errors[-ERROR_LINES:]), expand=True)
        self.redraw()

    def redraw(self) -> None:
        view = self.view
        self.set_text("run-header", header_text(view.manifest))
        self.set_text("round-label", Text(f"Round {view.round}/{view.total_rounds or '?'}"))
        bar = self.query_one(ProgressBar)
        if view.total_rounds and (bar.total != view.total_rounds or bar.progress != view.progress()):
            bar.update(total=view.total_rounds, progress=view.progress())
        total = view.phase_total
        phase = f"{view.phase} {view.phase_done:>{len(str(total))}}/{total}" if total else view.phase
        done = f"{100 * view.progress() / view.total_rounds:.0f}%" if view.total_rounds else ""
        self.set_text("phase-label", Text(f"{done:>4} · {phase} · ETA {duration(view.eta()):>6}"))
        self.set_text("run-status", self.status_text())
        self.set_text("stats", self.stats_text())
        self.query_one(CoopChart).set_rates(view.rates)

    def in_flight(self) -> int:
        return self.control.stats.in_flight

    def log_errors(self, text: Text) -> None:
        self.query_one("#errors", RichLog).write(text)

    def stats_text(self) -> Text:
        """Five lines of at most 40 cells (the width of the pane at 80 columns)."""
        view, stats = self.view, self.control.stats
        summary = view.summary
        text = Text()
        text.append("Coop   ", style="bold")
        text.append(f"this round {percent(view.round_cooperation())} · overall "
                    f"{percent(view.overall_cooperation())}\n")
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
        text.append(f"{money(stats.cost)} of {budget}")
        return text

    def finished(self, result: ExperimentResult) -> None:
        self.call_after_refresh(collect_frozen)  # once the result is on screen
        self.add_class("finished")
        self.refresh_bindings()
        self.query_one("#feed").display = False
        final = self.query_one("#final", VerticalScroll)
        final.display = True
        self.query_one("#final-text", Static).update(result_text(result, self.view.directory))
        final.focus()  # the arrow keys scroll the indicators
        errors = self.query_one("#errors", RichLog)
        errors.display = bool(errors.lines)  # an empty log gives its rows to the result
        self.query_one("#strategies").border_title = "Strategies (last saved round)"

    # -- actions --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "agent":  # the strategy pane is hidden after a run at 80 columns
            return self.query_one(StrategyPane).display and not (
                self.has_class("narrow") and self.has_class("finished"))
        return super().check_action(action, parameters)

    def action_browse(self) -> None:
        from acausal_tui.screens.browser import BrowserScreen

        self.app.push_screen(BrowserScreen(self.results_dir))

    def action_agent(self, step: int) -> None:
        self.query_one(StrategyPane).select(step)

    def action_games(self) -> None:
        """The feed's recent games in a list: enter opens one's transcript."""
        games = [(e.game, e.label1, e.label2) for e in self.query_one(Tail).items if isinstance(e, GameFinished)]
        if self.view.directory is not None and games:
            self.app.push_screen(GamePicker(self.view.directory, games, self.reveal))

    def action_agents_table(self) -> None:
        """t: the per-agent table in place of the feed, and back."""
        table = self.query_one(AgentsTable)
        table.display = not table.display
        self.query_one("#feed").display = not table.display and self.view.result is None
        self.query_one("#final").display = not table.display and self.view.result is not None
        table.border_title = "Agents (power over rounds on a 50-150 scale)"

    def action_reveal_ids(self) -> None:
        self.reveal = not self.reveal
        self.query_one(Tail).redraw(partial(feed_line, reveal=self.reveal))


def plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word[:-1]}ies" if word.endswith("y") else f"{count} {word}s"


BUDGET_RULE = ("A call is sent only while spent + the worst case of the calls in flight + its own "
               "worst case (prompt estimate + max_tokens at list price) stays within the budget, "
               "so a run stops before the spent cost reaches it.")


def result_text(result: ExperimentResult, directory: Path | None) -> Text:
    """The end-of-run summary: totals, validity, the results path, then the acausal indicators
    (the part that may need scrolling at 80x24)."""
    text = Text()
    text.append(f"{result.status}", style="bold")
    text.append(f" · {plural(result.total_rounds, 'round')} · {plural(result.total_games, 'game')} · "
                f"{plural(result.total_api_calls, 'call')} ({plural(result.total_retries, 'retry')}) · "
                f"cost {money(result.total_cost, result.cost_is_estimate)} · "
                f"{plural(result.error_count, 'error')}\n")
    if result.status == "budget_exceeded":
        text.append("Budget: ", style="bold yellow")
        text.append(BUDGET_RULE + "\n")
    text.append_text(validity_text(result))
    text.append("\nResults: ", style="bold")
    text.append(f"{directory}\n" if directory else "—\n")
    text.append("Press b to browse, q to quit; ↑↓ scroll.\n", style="dim")
    text.append("Acausal indicators ", style="bold")
    text.append(f"({INDICATORS_NOTE})\n", style="dim")
    text.append_text(indicator_text(result.acausal_indicators, formulas=False))
    return text


def validity_text(result: ExperimentResult) -> Text:
    """The validity line (SPEC §6), with the shares it is judged on."""
    text = Text()
    validity = result.validity
    line = validity_line(validity, result.simulated)
    text.append(line + "\n", style="bold green" if validity and validity.valid else "bold red")
    if validity is not None:
        text.append(f"fallback moves {percent(validity.fallback_share)} · follow-ups {percent(validity.follow_up_share)}"
                    f" · cut-off replies {validity.cut_off_replies} · strategies fresh {validity.strategies_fresh}, "
                    f"carried over {validity.strategies_carried_over}, fallback {validity.strategies_fallback}\n",
                    style="dim")
    return text
