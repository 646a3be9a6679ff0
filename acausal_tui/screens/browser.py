"""Every experiment under the results directory, newest first. Unreadable and partial
directories are listed as such; nothing in a results directory can crash the browser."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio
from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from acausal_tui.screens.compare import CompareScreen, sweep_row
from acausal_tui.widgets.text import cells, literal, money, percent
from engine.config import ConfigError
from engine.index import IndexEntry, read_index
from engine.lock import LockError, holder
from engine.providers.factory import make_provider
from engine.resume import ResumeError, open_resume, resume_runner
from engine.store import load_experiment
from engine.sweep import LoadedSweep, list_sweeps

T = TypeVar("T")
COLUMNS = ("Experiment", "Started", "Status", "Rounds", "Agents", "Condition", "Provider",
           "Cooperation", "Cost", "Notes")
# The order on screen: what a row is for (status, rounds, cooperation and validity, cost)
# first, so 80 columns show it; the rest scroll in from the right.
SHOWN = (0, 2, 3, 7, 8, 1, 5, 6, 4, 9)


def row(entry: IndexEntry | None, directory: Path, problems: list[str]) -> tuple[Text, ...]:
    """One table row from the experiment's index (engine/index.py); every cell degrades to
    '—' when its source file is missing or bad. Every cell is a Text: names from the files
    are shown as written, never as markup."""
    problems = problems or (entry.problems if entry else [])
    notes = literal("; ".join(problems)[:120], style="red") if problems else Text("")
    if entry is None:
        return cells(directory.name, "—", Text("unreadable", style="bold red"), "—", "—", "—",
                     "—", "—", "—", notes)
    if entry.has_result:
        status = Text(entry.status, style="green" if entry.status == "completed" else "yellow")
        cost = money(entry.cost, entry.cost_is_estimate)
    else:
        # No final result file: still being written, or its process died mid-run.
        state = entry.status
        if state == "running":
            pid = holder(directory)
            state = f"running (pid {pid})" if pid else "interrupted"
        status = Text(state, style="yellow")
        cost = "—"
        if not problems:
            notes = Text("no experiment_results.json", style="dim")
    if entry.valid is False:
        notes = Text("INVALID: " + "; ".join(entry.validity_reasons), style="bold red") + notes
    return cells(
        directory.name,
        entry.start_time[:16].replace("T", " "),
        status,
        f"{entry.rounds_done}/{entry.rounds}",
        str(entry.agents),
        entry.condition,
        entry.provider,
        cooperation_cell(entry),
        cost,
        notes,
    )


def cooperation_cell(entry: IndexEntry) -> Text:
    """The overall rate of model-decided moves and, beside it, whether the run is valid (files
    written before validity checks say nothing)."""
    cell = Text(percent(entry.cooperation))
    if entry.valid is not None:
        cell.append(" valid" if entry.valid else " INVALID", style="green" if entry.valid else "bold red")
    return cell


def guarded(make: Callable[[T], tuple[Text, ...]], item: T, directory: Path) -> tuple[Text, ...]:
    """`make(item)`, or an "unreadable" row saying why: one entry that makes no sense must
    not end the listing of the ones after it."""
    try:
        return make(item)
    except Exception as exc:  # any bad content: shown in the row
        return unreadable(directory, f"{type(exc).__name__}: {exc}")


def unreadable(directory: Path, problem: str) -> tuple[Text, ...]:
    return cells(directory.name, "—", Text("unreadable", style="bold red"), "—", "—", "—", "—",
                 "—", "—", literal(problem[:120], style="red"))


@dataclass
class Listed:
    """One row of the browser: an experiment (top level or in a sweep) or a sweep."""

    key: str
    directory: Path
    cells: tuple[Text, ...]
    entry: IndexEntry | None = None
    problems: list[str] = field(default_factory=list)
    sweep: LoadedSweep | None = None
    parent: str | None = None  # the sweep's key, for an experiment of a sweep

    def fields(self) -> dict[str, str]:
        """What `key:value` filter words match (besides free words over every cell)."""
        e = self.entry
        out = {"status": self.cells[2].plain, "condition": self.cells[5].plain,
               "provider": self.cells[6].plain, "id": self.key}
        if e is not None:
            out["model"] = f"{e.main_model} {e.sub_model}"
            out["valid"] = {True: "yes", False: "no", None: "unknown"}[e.valid]
        if self.sweep is not None and self.sweep.result is not None:
            out["model"] = f"{self.sweep.result.config.models.main} {self.sweep.result.config.models.sub}"
        return out

    def matches(self, words: list[str]) -> bool:
        text = " ".join(c.plain for c in self.cells).lower()
        fields = {k: v.lower() for k, v in self.fields().items()}
        for word in words:
            name, sep, value = word.partition(":")
            if sep and name in FILTER_FIELDS:
                if value not in fields.get(name, ""):
                    return False
            elif word not in text:
                return False
        return True

    def sort_value(self, column: int) -> tuple[int, float, str]:
        """Numbers sort as numbers, '—' last; the rest as text."""
        plain = self.cells[column].plain
        number = plain.split("/")[0].replace("$", "").replace("~", "").replace("%", "").strip()
        try:
            return (0, float(number), "")
        except ValueError:
            return (1 if plain not in ("—", "") else 2, 0.0, plain.lower())


FILTER_FIELDS = ("status", "condition", "provider", "model", "valid", "id")


def list_rows(results_dir: Path) -> list[Listed]:
    """Every experiment (read through its index) and every sweep with its experiments.
    Runs in a worker thread."""
    rows: list[Listed] = []
    if results_dir.is_dir():
        dirs = sorted((p for p in results_dir.iterdir() if p.is_dir() and p.name.startswith("exp_")),
                      key=lambda p: p.name, reverse=True)
        rows += [indexed(p, p.name) for p in dirs]
    for sweep in list_sweeps(results_dir):
        key = sweep.directory.name
        rows.append(Listed(key, sweep.directory, guarded(sweep_row, sweep, sweep.directory), sweep=sweep))
        for run in sweep.result.experiments if sweep.result else []:
            child = indexed(sweep.directory / run.directory, f"{key}/{run.directory}", parent=key)
            child.cells = (Text("  └ ", style="dim") + child.cells[0], *child.cells[1:])
            rows.append(child)
    return rows


def indexed(directory: Path, key: str, parent: str | None = None) -> Listed:
    try:
        entry, problems = read_index(directory)
        return Listed(key, directory, row(entry, directory, problems), entry, problems, parent=parent)
    except Exception as exc:  # any bad content: shown in the row, the listing goes on
        problem = f"{type(exc).__name__}: {exc}"
        return Listed(key, directory, unreadable(directory, problem), problems=[problem], parent=parent)


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
        Binding("escape", "back", "Back", id="back"),
        Binding("r", "reload", "Reload", id="reload"),
        Binding("R", "resume", "Resume", id="resume"),  # shown on a resumable experiment
        Binding("slash", "filter", "Filter", key_display="/", id="filter"),
        Binding("o", "sort(1)", "Sort", id="sort"),
        Binding("O", "sort(-1)", "Sort back", show=False, id="sort_back"),
        Binding("n", "new('run')", "New", id="new_run"),
        Binding("s", "new('sweep')", "Sweep", id="new_sweep"),
    ]

    def __init__(self, results_dir: Path) -> None:
        super().__init__()
        self.results_dir = results_dir
        self.rows: dict[str, Listed] = {}
        self.filter_words: list[str] = []
        self.sort_column: int | None = None  # None: newest first, as listed
        self.sort_reverse = False
        self.resuming = False  # R pressed, the experiment being opened

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Experiments in ", "bold"), literal(str(self.results_dir))), id="browser-title")
        yield Input(placeholder="filter: words, status:… condition:… provider:… model:… valid:no",
                    id="browser-filter", compact=True)
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

    def shown(self) -> list[Listed]:
        """The rows that pass the filter, sorted; a sweep's experiments stay under it (a
        sweep is shown when one of its experiments matches)."""
        matched = {r.key for r in self.rows.values() if r.matches(self.filter_words)}
        children: dict[str, list[Listed]] = {}
        for r in self.rows.values():
            if r.parent is not None:
                children.setdefault(r.parent, []).append(r)
        tops = [r for r in self.rows.values() if r.parent is None and (
            r.key in matched or any(c.key in matched for c in children.get(r.key, [])))]
        order = self.sort_column

        def arrange(rows: list[Listed]) -> list[Listed]:
            if order is None:
                return rows
            return sorted(rows, key=lambda r: r.sort_value(order), reverse=self.sort_reverse)

        out: list[Listed] = []
        for top in arrange(tops):
            out.append(top)
            kids = children.get(top.key, [])
            hits = [c for c in kids if c.key in matched]
            out += arrange(hits or kids)  # the matching experiments, or all when only the sweep matched
        return out

    def draw(self) -> None:
        """Column widths are computed here, from the plain text: DataTable would measure
        every cell through the console, the most of the time a 500-row table takes."""
        shown = self.shown()
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for n in SHOWN:
            name = COLUMNS[n]
            width = max([cell_len(name), *(cell_len(r.cells[n].plain) for r in shown)])
            table.add_column(name, width=width, key=name)
        for listed in shown:
            table.add_row(*(listed.cells[n] for n in SHOWN), key=listed.key)
        self.hint()

    def hint(self) -> None:
        hint = self.query_one("#browser-hint", Static)
        listed = self.highlighted()
        experiments = sum(r.sweep is None for r in self.rows.values())
        if not self.rows:
            missing = not self.results_dir.is_dir()
            hint.update(Text(f"{self.results_dir} does not exist (yet): no experiments" if missing else
                             "no experiments here yet", style="bold yellow" if missing else "dim"))
        elif listed is not None and listed.problems:
            hint.update(literal(f"{listed.directory.name}: " + "; ".join(listed.problems), style="red"))
        else:
            text = (f"{experiments} experiment{'' if experiments == 1 else 's'} · enter opens one"
                    " · / filter · o sort")
            if self.filter_words:
                text = (f"{self.query_one(DataTable).row_count} of {len(self.rows)} rows match "
                        f"{' '.join(self.filter_words)}")
            if self.sort_column is not None:
                text += f" · sorted by {COLUMNS[self.sort_column]}{' ↓' if self.sort_reverse else ' ↑'}"
            hint.update(literal(text, style="dim"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()
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
        from acausal_tui.screens.new_run import NewRunScreen

        self.app.push_screen(NewRunScreen(kind, self.results_dir))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        listed = self.rows.get(str(event.row_key.value))
        if listed is None:
            return
        sweep = listed.sweep
        if sweep is not None:
            if sweep.result is None:
                self.notify(sweep.problem or "", title=f"{sweep.directory.name} is unreadable",
                            severity="error", markup=False)
            else:
                self.app.push_screen(CompareScreen(sweep))
            return
        if listed.entry is None:
            self.notify("; ".join(listed.problems), title=f"{listed.directory.name} is unreadable",
                        severity="error", markup=False)
            return
        self.run_worker(self.open(listed.directory), group="open", exclusive=True, exit_on_error=False)

    async def open(self, directory: Path) -> None:
        loaded = await anyio.to_thread.run_sync(load_experiment, directory)
        if not loaded.readable:
            self.notify("; ".join(loaded.problems), title=f"{directory.name} is unreadable",
                        severity="error", markup=False)
            return
        from acausal_tui.screens.experiment import ExperimentScreen

        self.app.push_screen(ExperimentScreen(loaded))

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
            listed = self.highlighted()
            return (listed is not None and listed.entry is not None
                    and listed.entry.status != "completed" and holder(listed.directory) is None)
        return True

    def action_resume(self) -> None:
        """Continue the highlighted experiment on a run screen (engine/resume.py)."""
        loaded = self.highlighted()
        if loaded is None or loaded.sweep is not None or self.resuming:
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
