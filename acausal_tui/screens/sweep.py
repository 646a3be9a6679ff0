"""The live sweep screen: every experiment of a sweep, run concurrently as one async worker.
As on the run screen the observer only appends events and a 10 Hz timer folds them into
the view; the experiments table is updated cell by cell, by row key. When the sweep ends
the summary (per-condition means with intervals and the differences) appears below it."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, ProgressBar, RichLog, Static

from acausal_tui.screens.compare import CompareScreen, fill_metrics
from acausal_tui.screens.engine_screen import (
    ERROR_LINES,
    EngineScreen,
    EventBuffer,
    control_bindings,
)
from acausal_tui.screens.run import RunView, error_line
from acausal_tui.widgets.footer import Footer
from acausal_tui.widgets.text import literal, money, percent
from engine.conditions import set_switches
from engine.control import RunStats
from engine.events import CallRetried, ErrorLogged
from engine.sweep import (
    SWEEP_FILE,
    ExperimentDone,
    ExperimentEvent,
    LoadedSweep,
    SweepControl,
    SweepEvent,
    SweepFinished,
    SweepObserver,
    SweepResult,
    SweepRun,
    SweepStarted,
)

SweepFn = Callable[[SweepObserver, SweepControl], Awaitable[SweepResult]]
COLUMNS = ("condition", "seed", "status", "round", "cooperation")
STATUS_STYLE = {"completed": "green", "running": "cyan", "paused": "yellow", "pending": "dim"}


@dataclass
class SweepView:
    """What the sweep screen shows, folded from the sweep's events: one RunView per
    experiment (keyed by its directory name), and the runs that have finished."""

    started: SweepResult | None = None
    directory: Path | None = None
    runs: dict[str, RunView] = field(default_factory=dict)
    done: dict[str, SweepRun] = field(default_factory=dict)
    finished: int = 0
    result: SweepResult | None = None  # the final one

    def apply(self, event: SweepEvent) -> None:
        if isinstance(event, SweepStarted):
            self.started, self.directory = event.result, event.directory
            rounds = event.result.config.rounds
            self.runs = {run.directory: RunView(total_rounds=rounds) for run in event.result.experiments}
            # a resumed sweep starts with some experiments already finished
            self.done = {run.directory: run for run in event.result.experiments if run.status != "pending"}
            self.finished = len(self.done)
        elif isinstance(event, ExperimentEvent):
            self.runs[event.run.directory].apply(event.event)
        elif isinstance(event, ExperimentDone):
            self.done[event.run.directory] = event.run
            self.finished = event.finished
        elif isinstance(event, SweepFinished):
            self.result, self.directory = event.result, event.directory

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def total_rounds(self) -> int:
        return sum(view.total_rounds for view in self.runs.values())

    def rounds_done(self) -> float:
        """Rounds done across all experiments, the share of each current round's games included."""
        return sum(
            done.rounds if (done := self.done.get(key)) is not None else view.progress()
            for key, view in self.runs.items()
        )

    def row(self, run: SweepRun, control: SweepControl) -> tuple[Text, ...]:
        """One experiment's cells, in COLUMNS order."""
        view = self.runs[run.directory]
        done = self.done.get(run.directory)
        if done is not None:
            status, round = done.status, done.rounds
            cooperation = done.metrics.get("overall_cooperation_rate")
        else:
            if view.manifest is None:
                status = "pending"
            elif control.aborted:
                status = "aborting"
            else:
                status = "paused" if control.paused else "running"
            round, cooperation = view.round, view.overall_cooperation()
        return (
            literal(run.condition),
            Text(str(run.seed)),
            Text(status, style=STATUS_STYLE.get(status, "bold red")),
            Text(f"{round}/{view.total_rounds}"),
            Text(percent(cooperation)),
        )


def sweep_header(started: SweepResult | None) -> Text:
    if started is None:
        return Text("starting the sweep…")
    text = Text(started.sweep_id, style="bold")
    config = started.config
    if config.provider.name == "simulated":
        text.append("  ")
        text.append(" SIMULATED ", style="bold black on yellow")
    text.append(
        f"  {len(started.conditions)} conditions × {len(started.seeds)} seeds = "
        f"{len(started.experiments)} experiments · conditions "
    )
    text.append_text(literal(", ".join(started.conditions)))
    text.append(
        f" · seeds {started.seeds[0]}…{started.seeds[-1]} · provider {config.provider.name}"
        f" · {config.agents} agents × {config.rounds} rounds"
    )
    if shared := set_switches(config.switches, started.resolved_conditions.values()):
        text.append_text(literal(f" · every condition with {shared}"))
    return text


def total_stats(control: SweepControl) -> RunStats:
    """The experiments' counters added up (they share one budget)."""
    total = RunStats()
    for stats in (c.stats for c in control.controls):
        total.calls += stats.calls
        total.retries += stats.retries
        total.cost += stats.cost
        total.in_flight += stats.in_flight
        total.budget_usd = total.budget_usd if stats.budget_usd is None else stats.budget_usd
    return total


class SweepScreen(EngineScreen):
    # Its CSS: sweep.tcss beside this file (loaded by the app's CSS_PATH).
    BINDINGS = [
        *control_bindings("Pause all", "Resume all", "Abort all", "every experiment"),
        Binding("c", "compare", "Compare", id="compare", tooltip="the full comparison view, once the sweep is over"),
    ]

    control: SweepControl
    buffer: EventBuffer[SweepEvent]
    view: SweepView
    WORKER_NAME = "sweep"
    ABORT_QUESTION = (
        "Abort the sweep? Every experiment's in-flight calls are cancelled and the "
        "rounds done so far are saved with status 'aborted'."
    )
    ABORT_YES = "Abort all"

    def __init__(self, sweep: SweepFn) -> None:
        super().__init__(sweep, SweepControl(), SweepView())
        self._cells: dict[str, tuple[str, ...]] = {}  # row key -> the cells shown

    def compose(self) -> ComposeResult:
        yield Static(id="sweep-header")
        with Horizontal(id="sweep-progress-row"):
            yield Static(id="sweep-label")
            yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="sweep-progress")
            yield Static(id="sweep-rounds")
        yield Static(id="sweep-status")
        yield Static(id="sweep-stats")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="sweep-experiments", classes="panel")
        with Vertical(id="sweep-summary", classes="panel"):
            yield Static(id="sweep-result")
            yield DataTable(zebra_stripes=True, id="sweep-metrics")
        yield RichLog(max_lines=ERROR_LINES, id="sweep-errors", classes="panel")  # a line an error
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sweep-experiments", DataTable)
        table.border_title = "Experiments"
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.query_one("#sweep-summary").border_title = "Summary"
        self.query_one("#sweep-errors").border_title = "Retries and errors"
        self.start_engine()

    # -- rendering ------------------------------------------------------------------

    def flush(self) -> None:
        """Fold the buffered events into the view and redraw what changed."""
        errors: list[Text] = []
        for event in self.buffer.drain():
            self.view.apply(event)
            if isinstance(event, SweepStarted):
                self.add_rows(event.result)
            elif isinstance(event, ExperimentEvent) and isinstance(event.event, CallRetried | ErrorLogged):
                errors.append(literal(f"[{event.run.condition} s{event.run.seed}] ") + error_line(event.event))
            elif isinstance(event, SweepFinished):
                self.show_summary(event.result, event.directory)
        if errors:
            self.log_errors(Text("\n").join(errors[-ERROR_LINES:]))
        self.redraw()

    def log_errors(self, text: Text) -> None:
        """The error log takes room only once there is something in it."""
        log = self.query_one("#sweep-errors", RichLog)
        log.display = True
        log.write(text, expand=True)

    def add_rows(self, started: SweepResult) -> None:
        table = self.query_one("#sweep-experiments", DataTable)
        for run in started.experiments:
            cells = self.view.row(run, self.control)
            self._cells[run.directory] = tuple(cell.markup for cell in cells)
            table.add_row(*cells, key=run.directory)

    def update_rows(self) -> None:
        """Only the cells whose text changed, by row and column key (a pause changes every
        unfinished row's status, so every row is looked at; the rows are few)."""
        started = self.view.started
        if started is None:
            return
        table = self.query_one("#sweep-experiments", DataTable)
        for run in started.experiments:
            cells = self.view.row(run, self.control)
            shown = self._cells[run.directory]
            for column, cell, before in zip(COLUMNS, cells, shown, strict=True):
                if cell.markup != before:
                    table.update_cell(run.directory, column, cell, update_width=True)
            self._cells[run.directory] = tuple(cell.markup for cell in cells)

    def redraw(self) -> None:
        view = self.view
        self.set_text("sweep-header", sweep_header(view.started), layout=True)
        self.set_text("sweep-label", Text(f"Experiments {view.finished}/{view.total or '?'} finished"))
        total, done = view.total_rounds, view.rounds_done()
        bar = self.query_one(ProgressBar)
        if total and (bar.total != total or bar.progress != done):
            bar.update(total=total, progress=done)
        share = f"{100 * done / total:.0f}%" if total else ""
        self.set_text("sweep-rounds", Text(f"{share:>4} · rounds {done:.0f}/{total} across all experiments"))
        self.set_text("sweep-status", self.status_text())
        stats = total_stats(self.control)
        budget = "no budget" if stats.budget_usd is None else f"budget ${stats.budget_usd:.2f}"
        self.set_text(
            "sweep-stats",
            Text(
                f"Calls {stats.calls} · retries {stats.retries} · in flight "
                f"{stats.in_flight} · cost {money(stats.cost)} of {budget} (shared)"
            ),
        )
        self.update_rows()

    def in_flight(self) -> int:
        return total_stats(self.control).in_flight

    def show_summary(self, result: SweepResult, directory: Path) -> None:
        text = Text(
            "Per condition: mean [95% Student-t interval] over valid completed seeds; differences from ", style="dim"
        )
        text.append_text(literal(result.conditions[0], style="dim"))
        text.append(" paired by seed.\n", style="dim")
        if result.excluded:
            text.append(
                f"Left out as INVALID: {len(result.excluded)} experiment(s) (listed in the comparison).\n",
                style="bold red",
            )
        text.append("Results: ", style="bold")
        text.append(f"{directory / SWEEP_FILE}\n")
        text.append("Press c for the full comparison (cooperation per round, experiments), q to quit.", style="dim")
        self.query_one("#sweep-result", Static).update(text)
        fill_metrics(self.query_one("#sweep-metrics", DataTable), result)
        self.query_one("#sweep-summary").display = True

    # -- actions --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "compare":
            return self.view.result is not None
        return super().check_action(action, parameters)

    def action_compare(self) -> None:
        if self.view.result is not None and self.view.directory is not None:
            self.app.push_screen(CompareScreen(LoadedSweep(self.view.directory, self.view.result)))
