"""Every experiment under the results directory, newest first. Unreadable and partial
directories are listed as such; nothing in a results directory can crash the browser."""

from pathlib import Path

import anyio
from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from acausal_tui.messages import OpenExperiment
from acausal_tui.screens.compare import CompareScreen
from acausal_tui.screens.listing import COLUMNS, SHOWN, Listed, list_rows, shown
from acausal_tui.screens.new_run import NewRunScreen
from acausal_tui.widgets.footer import Footer
from acausal_tui.widgets.text import literal
from engine.lock import holder


class ExperimentTable(DataTable):
    """The browser's table: Home and End move the row cursor to the first and last row."""

    def action_scroll_home(self) -> None:
        self.action_scroll_top()

    def action_scroll_end(self) -> None:
        self.action_scroll_bottom()


class BrowserScreen(Screen):
    # Its CSS: browser.tcss beside this file (loaded by the app's CSS_PATH).
    AUTO_FOCUS = "#experiments"
    BINDINGS = [
        Binding("escape", "back", "Back", id="back", tooltip="back (to the screen that opened the browser)"),
        Binding("r", "reload", "Reload", id="reload", tooltip="reload the results directory"),
        # shown on a resumable experiment
        Binding("R", "resume", "Resume", id="resume", tooltip="resume the highlighted experiment on a run screen"),
        Binding("slash", "filter", "Filter", key_display="/", id="filter", tooltip="filter the list by text"),
        Binding("o", "sort(1)", "Sort", id="sort", tooltip="sort by the next column (past the last: newest first)"),
        Binding("O", "sort(-1)", "Sort back", show=False, id="sort_back", tooltip="sort by the previous column"),
        Binding("n", "new('run')", "New", id="new_run", tooltip="start a new experiment (a form)"),
        Binding("s", "new('sweep')", "Sweep", id="new_sweep", tooltip="start a new sweep: conditions x seeds (a form)"),
    ]

    # The highlighted row, set on every move and redraw: the footer's Resume follows it.
    cursor_row: reactive[Listed | None] = reactive(None, always_update=True, bindings=True)

    class Resume(Message):
        """Continue the experiment in `directory` on a run screen (engine/resume.py)."""

        def __init__(self, directory: Path) -> None:
            super().__init__()
            self.directory = directory

    def __init__(self, results_dir: Path) -> None:
        super().__init__()
        self.results_dir = results_dir
        self.rows: dict[str, Listed] = {}
        self.filter_words: list[str] = []
        self.sort_column: int | None = None  # None: newest first, as listed
        self.sort_reverse = False

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Experiments in ", "bold"), literal(str(self.results_dir))), id="browser-title")
        yield Input(
            placeholder="filter: words, status:… condition:… provider:… model:… valid:no",
            id="browser-filter",
            compact=True,
        )
        yield ExperimentTable(cursor_type="row", zebra_stripes=True, id="experiments")
        yield Static(id="browser-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(self.load(), group="browse", exclusive=True, exit_on_error=False)

    async def load(self) -> None:
        rows = await anyio.to_thread.run_sync(list_rows, self.results_dir)
        self.rows = {r.key: r for r in rows}
        self.draw()

    def draw(self) -> None:
        """Column widths are computed here, from the plain text: DataTable would measure
        every cell through the console, the most of the time a 500-row table takes."""
        rows = shown(list(self.rows.values()), self.filter_words, self.sort_column, self.sort_reverse)
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for n in SHOWN:
            name = COLUMNS[n]
            width = max([cell_len(name), *(cell_len(r.cells[n].plain) for r in rows)])
            table.add_column(name, width=width, key=name)
        for listed in rows:
            table.add_row(*(listed.cells[n] for n in SHOWN), key=listed.key)
        self.cursor_row = self.highlighted()
        self.hint()

    def hint(self) -> None:
        hint = self.query_one("#browser-hint", Static)
        listed = self.highlighted()
        experiments = sum(r.sweep is None for r in self.rows.values())
        if not self.rows:
            missing = not self.results_dir.is_dir()
            hint.update(
                Text(
                    f"{self.results_dir} does not exist (yet): no experiments"
                    if missing
                    else "no experiments here yet",
                    style="bold yellow" if missing else "dim",
                )
            )
        elif listed is not None and listed.problems:
            hint.update(literal(f"{listed.directory.name}: " + "; ".join(listed.problems), style="red"))
        else:
            text = f"{experiments} experiment{'' if experiments == 1 else 's'} · enter opens one · / filter · o sort"
            if self.filter_words:
                text = (
                    f"{self.query_one(DataTable).row_count} of {len(self.rows)} rows match "
                    f"{' '.join(self.filter_words)}"
                )
            if self.sort_column is not None:
                text += f" · sorted by {COLUMNS[self.sort_column]}{' ↓' if self.sort_reverse else ' ↑'}"
            hint.update(literal(text, style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.cursor_row = self.highlighted()
        self.hint()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column header sorts by it; again: the other way."""
        column = SHOWN[event.column_index]
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self.draw()

    def action_sort(self, step: int) -> None:
        """o: sort by the next column (O: the previous); past the last: back to newest first."""
        order = [None, *SHOWN]
        self.sort_column = order[(order.index(self.sort_column) + step) % len(order)]
        self.draw()

    def action_filter(self) -> None:
        box = self.query_one("#browser-filter", Input)
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_words = event.value.lower().split()
        self.draw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()
        event.input.display = bool(event.value)

    def action_new(self, kind: str) -> None:
        self.app.push_screen(NewRunScreen(kind, self.results_dir))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        listed = self.rows.get(str(event.row_key.value))
        if listed is None:
            return
        sweep = listed.sweep
        if sweep is not None:
            if sweep.result is None:
                self.notify(
                    sweep.problem or "", title=f"{sweep.directory.name} is unreadable", severity="error", markup=False
                )
            else:
                self.app.push_screen(CompareScreen(sweep))
            return
        if listed.entry is None:
            self.notify(
                "; ".join(listed.problems),
                title=f"{listed.directory.name} is unreadable",
                severity="error",
                markup=False,
            )
            return
        self.post_message(OpenExperiment(listed.directory))

    def highlighted(self) -> Listed | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.rows.get(str(key.value))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":  # hidden on the screen the app opened on: nothing to go back to
            return len(self.app.screen_stack) > 1
        if action == "resume":  # not completed, and no live process is writing it
            listed = self.cursor_row
            return (
                listed is not None
                and listed.entry is not None
                and listed.entry.status != "completed"
                and holder(listed.directory) is None
            )
        return True

    def action_resume(self) -> None:
        """Continue the highlighted experiment on a run screen (asks the app)."""
        listed = self.highlighted()
        if listed is not None and listed.sweep is None:
            self.post_message(self.Resume(listed.directory))

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()
