"""Every experiment under the results directory, newest first. Unreadable and partial
directories are listed as such; nothing in a results directory can crash the browser."""

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from acausal_tui.screens.compare import CompareScreen, checked_sweep, sweep_row
from acausal_tui.widgets.text import cells, literal, money, percent
from engine.config import ConfigError
from engine.lock import LockError, holder
from engine.providers.factory import make_provider
from engine.resume import ResumeError, open_resume, resume_runner
from engine.store import LoadedExperiment, list_experiments
from engine.sweep import LoadedSweep, list_sweeps

T = TypeVar("T")
COLUMNS = ("Experiment", "Started", "Status", "Rounds", "Agents", "Condition", "Provider",
           "Cooperation", "Cost", "Notes")


def row(loaded: LoadedExperiment) -> tuple[Text, ...]:
    """One table row; every cell degrades to '—' when its source file is missing or bad.
    Every cell is a Text: names from the files are shown as written, never as markup."""
    manifest, result = loaded.manifest, loaded.result
    notes = literal("; ".join(loaded.problems)[:120], style="red") if loaded.problems else Text("")
    if manifest is None:
        return cells(loaded.directory.name, "—", Text("unreadable", style="bold red"), "—", "—", "—",
                     "—", "—", "—", notes)
    if result is not None:
        status = Text(result.status, style="green" if result.status == "completed" else "yellow")
        cooperation = result.acausal_indicators.overall_cooperation_rate
        cost = money(result.total_cost, result.cost_is_estimate)
    else:
        # No final result file: still being written, or its process died mid-run.
        state = manifest.status
        if state == "running":
            pid = holder(loaded.directory)
            state = f"running (pid {pid})" if pid else "interrupted"
        status = Text(state, style="yellow")
        rates = [s.cooperation_rate for s in loaded.summaries.values()]
        cooperation = sum(rates) / len(rates) if rates else None  # every round has as many moves
        cost = "—"
        if not loaded.problems:
            notes = Text("no experiment_results.json", style="dim")
    return cells(
        loaded.directory.name,
        manifest.start_time[:16].replace("T", " "),
        status,
        f"{len(loaded.summaries)}/{manifest.config.rounds}",
        str(len(manifest.agents)),
        manifest.condition.name,
        manifest.provider,
        percent(cooperation),
        cost,
        notes,
    )


def guarded(make: Callable[[T], tuple[Text, ...]], item: T, directory: Path) -> tuple[Text, ...]:
    """`make(item)`, or an "unreadable" row saying why: one entry that makes no sense must
    not end the listing of the ones after it."""
    try:
        return make(item)
    except Exception as exc:  # any bad content: shown in the row
        return cells(directory.name, "—", Text("unreadable", style="bold red"), "—", "—", "—", "—",
                     "—", "—", literal(f"{type(exc).__name__}: {exc}"[:120], style="red"))


class BrowserScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="back"),
        Binding("r", "reload", "Reload", id="reload"),
        Binding("R", "resume", "Resume", id="resume"),  # shown on a resumable experiment
    ]

    def __init__(self, results_dir: Path) -> None:
        super().__init__()
        self.results_dir = results_dir
        self.experiments: dict[str, LoadedExperiment] = {}
        self.sweeps: dict[str, LoadedSweep] = {}
        self.resuming = False  # R pressed, the experiment being opened

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Experiments in ", "bold"), literal(str(self.results_dir))), id="browser-title")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="experiments")
        yield Static(id="browser-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(self.load(), group="browse", exclusive=True, exit_on_error=False)

    async def load(self) -> None:
        experiments = await anyio.to_thread.run_sync(list_experiments, self.results_dir)
        table = self.query_one(DataTable)
        table.clear()
        self.experiments = {e.directory.name: e for e in experiments}
        for loaded in experiments:
                table.add_row(*guarded(row, loaded, loaded.directory), key=loaded.directory.name)
        sweeps = await anyio.to_thread.run_sync(
            lambda: [checked_sweep(s) for s in list_sweeps(self.results_dir)])
        self.sweeps = {s.directory.name: s for s in sweeps}
        for sweep in sweeps:  # enter opens the comparison view
            table.add_row(*guarded(sweep_row, sweep, sweep.directory), key=sweep.directory.name)
        if not experiments and not sweeps:  # otherwise the highlighted row sets the hint
            self.query_one("#browser-hint", Static).update(Text("no experiments here yet", style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()
        loaded = self.experiments.get(str(event.row_key.value))
        hint = self.query_one("#browser-hint", Static)
        if loaded is not None and loaded.problems:
            hint.update(literal(f"{loaded.directory.name}: " + "; ".join(loaded.problems), style="red"))
        else:
            hint.update(Text(f"{len(self.experiments)} experiments · enter opens one", style="dim"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        sweep = self.sweeps.get(str(event.row_key.value))
        if sweep is not None:
            if sweep.result is None:
                self.notify(sweep.problem or "", title=f"{sweep.directory.name} is unreadable",
                            severity="error", markup=False)
            else:
                self.app.push_screen(CompareScreen(sweep))
            return
        loaded = self.experiments.get(str(event.row_key.value))
        if loaded is None:
            return
        if not loaded.readable:
            self.notify("; ".join(loaded.problems), title=f"{loaded.directory.name} is unreadable",
                        severity="error", markup=False)
            return
        from acausal_tui.screens.experiment import ExperimentScreen

        self.app.push_screen(ExperimentScreen(loaded))

    def highlighted(self) -> LoadedExperiment | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.experiments.get(str(key.value))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resume":  # not completed, and no live process is writing it
            loaded = self.highlighted()
            return (loaded is not None and loaded.manifest is not None
                    and loaded.manifest.status != "completed" and holder(loaded.directory) is None)
        return True

    def action_resume(self) -> None:
        """Continue the highlighted experiment on a run screen (engine/resume.py)."""
        loaded = self.highlighted()
        if loaded is None or self.resuming:
            return
        if self.app.run_in_progress:
            self.notify("A run is in progress: resume once it has ended", severity="warning")
            return
        self.resuming = True
        self.run_worker(self.resume(loaded.directory), group="resume", exit_on_error=False)

    async def resume(self, directory: Path) -> None:
        """open_resume reads the whole call log: off the event loop. Never cancelled while
        it runs (a cancelled open would leave the directory locked)."""
        try:
            try:
                resumable = await anyio.to_thread.run_sync(open_resume, directory)
            except (ResumeError, LockError, ConfigError) as exc:
                self.notify(str(exc), title=f"Cannot resume {directory.name}", severity="error",
                            markup=False)
                return
            try:
                warn = self.app.warn
                provider = make_provider(resumable.config, on_unknown_price=lambda model: warn(
                    f"no price known for model {model!r}: its cost counts as 0 (set provider.prices)"))
            except ConfigError as exc:
                resumable.store.close()
                self.notify(str(exc), title=f"Cannot resume {directory.name}", severity="error",
                            markup=False)
                return
            for note in resumable.notes:
                self.app.warn(note)
            self.app.start_run(resume_runner(resumable, provider))
        finally:
            self.resuming = False

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
