"""The live run screen: the engine runs as the screen's worker (see EngineScreen); its
events are folded into a RunView and shown at most 10 times a second."""

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import anyio
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.reactive import reactive
from textual.widgets import ProgressBar, RichLog, Static

from acausal_tui.screens.engine_screen import (
    ERROR_LINES,
    EngineScreen,
    EventBuffer,
    control_bindings,
    freeze_survivors,
)
from acausal_tui.screens.run_text import (
    error_line,
    feed_line,
    feed_title,
    header_text,
    moves_drawn_text,
    result_text,
    stats_text,
)
from acausal_tui.screens.run_view import RunView, plural
from acausal_tui.screens.transcript import GamePicker
from acausal_tui.widgets.agents import AgentsTable
from acausal_tui.widgets.chart import CoopChart
from acausal_tui.widgets.footer import Footer
from acausal_tui.widgets.strategy import StrategyPane
from acausal_tui.widgets.tail import Tail
from acausal_tui.widgets.text import duration, literal
from engine.control import RunControl
from engine.events import (
    CallRetried,
    ErrorLogged,
    Event,
    GameFinished,
    Observer,
    RoundStarted,
    RoundSummarised,
    RunFinished,
    RunStarted,
    StrategyCollected,
)
from engine.models import ExperimentResult
from engine.store import load_experiment

RunFn = Callable[[Observer, RunControl], Awaitable[ExperimentResult]]
FEED_LINES = 100  # more than a terminal shows
FEED_PAINT_S = 0.25  # the feed is repainted at most 4 times a second, at a flush
NARROW = 110  # columns below which the panes drop their extras (an 80-column terminal)
SHORT = 36  # rows below which the error log and the chart shrink (a 24-row terminal)


class RunScreen(EngineScreen):
    BINDINGS = [
        *control_bindings("Pause", "Resume", "Abort", "the run"),
        Binding("b", "browse", "Browse", id="browse", tooltip="browse past experiments (the run goes on)"),
        Binding(
            "left_square_bracket",
            "agent(-1)",
            "Agent",
            key_display="[ ]",
            id="prev_agent",
            tooltip="previous / next agent in the strategy pane",
        ),
        Binding(
            "right_square_bracket",
            "agent(1)",
            "Next agent",
            show=False,
            id="next_agent",
            tooltip="previous / next agent in the strategy pane",
        ),
        Binding(
            "g", "games", "Games", id="games", tooltip="the feed's recent games in a list: enter opens a transcript"
        ),
        Binding(
            "t",
            "agents_table",
            "Agents",
            id="agents_table",
            tooltip="the per-agent table in place of the feed, and back",
        ),
        Binding(
            "i",
            "reveal_ids",
            "Real ids",
            show=False,
            id="reveal_ids",
            tooltip="the feed with real agent ids, and back (models see only labels)",
        ),
    ]

    control: RunControl
    buffer: EventBuffer[Event]
    view: RunView
    # The layout's classes (run.tcss); the strategy pane, and so its keys, is hidden after
    # a run at 80 columns.
    narrow: reactive[bool] = reactive(False, bindings=True)
    short: reactive[bool] = reactive(False)
    has_result: reactive[bool] = reactive(False, bindings=True)
    WORKER_NAME = "experiment"
    ABORT_QUESTION = (
        "Abort the run? In-flight calls are cancelled and the rounds done so far are saved with status 'aborted'."
    )

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
        yield RichLog(max_lines=ERROR_LINES, id="errors", classes="panel")  # a line an error: its start shows
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stats").border_title = "Stats"
        self.query_one("#feed").border_title = feed_title(reveal=False)
        self.query_one("#final").border_title = "Result"
        self.query_one("#strategies").border_title = "Strategies"
        self.query_one("#errors").border_title = "Retries and errors"
        self.query_one("#final").display = False
        self.start_engine()

    def on_resize(self, event: events.Resize) -> None:
        """Design for 80x24 first; wider and taller terminals add the extras (run.tcss)."""
        self.narrow = event.size.width < NARROW
        self.short = event.size.height < SHORT

    def watch_narrow(self, narrow: bool) -> None:
        self.set_class(narrow, "narrow")

    def watch_short(self, short: bool) -> None:
        self.set_class(short, "short")

    def watch_has_result(self, has_result: bool) -> None:
        # On the pane, not the screen: a screen class restyles every widget on it (~35 ms
        # at 100 agents, in the frame that shows the result).
        self.query_one("#strategies").set_class(has_result, "finished")

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
                    self.run_worker(
                        self.load_resumed(event.directory, event.first_round), group="resumed", exit_on_error=False
                    )
                pane.set_agents(
                    [f"Agent {a.id}" + (" (s)" if a.kind == "scripted" else "") for a in event.manifest.agents]
                )
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
        tail = self.query_one(Tail)
        if feed:
            tail.write(feed[-FEED_LINES:])
        else:
            tail.paint_if_due()  # a paint its interval held back, in this flush's frame
        if errors:
            self.query_one("#errors", RichLog).write(Text("\n").join(errors[-ERROR_LINES:]), expand=True)
        self.redraw()

    def redraw(self) -> None:
        view = self.view
        self.set_text("run-header", header_text(view.manifest))
        shown = view.result.total_rounds if view.result is not None else view.round  # once over: the saved rounds
        self.set_text("round-label", Text(f"Round {shown}/{view.total_rounds or '?'}"))
        bar = self.query_one(ProgressBar)
        if view.total_rounds and (bar.total != view.total_rounds or bar.progress != view.progress()):
            bar.update(total=view.total_rounds, progress=view.progress())
        done = f"{100 * view.progress() / view.total_rounds:.0f}%" if view.total_rounds else ""
        if view.result is not None:
            self.set_text("phase-label", Text(f"{done:>4} · {plural(view.result.total_rounds, 'round')} saved"))
        else:
            total = view.phase_total
            phase = f"{view.phase} {view.phase_done:>{len(str(total))}}/{total}" if total else view.phase
            self.set_text("phase-label", Text(f"{done:>4} · {phase} · ETA {duration(view.eta()):>6}"))
        self.set_text("run-status", self.status_text() + moves_drawn_text(view))
        self.set_text("stats", stats_text(self.view, self.control.stats))
        self.query_one(CoopChart).set_rates(view.rates)

    def in_flight(self) -> int:
        return self.control.stats.in_flight

    def log_errors(self, text: Text) -> None:
        self.query_one("#errors", RichLog).write(text)

    def finished(self, result: ExperimentResult) -> None:
        self.has_result = True
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
            return not (self.narrow and self.has_result)
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
        self.query_one("#feed").border_title = feed_title(self.reveal)
        self.query_one(Tail).redraw(partial(feed_line, reveal=self.reveal))
