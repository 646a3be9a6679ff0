"""The browser's rows: every experiment and sweep under a results directory as table cells
(read through each experiment's index), and the filter and sort over them."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from rich.text import Text

from acausal_tui.widgets.text import cells, literal, money, money_at_least, percent
from engine.calllog import logged_spend
from engine.index import IndexEntry, read_index
from engine.lock import unfinished_state
from engine.sweep import LoadedSweep, list_sweeps

T = TypeVar("T")
COLUMNS = (
    "Experiment",
    "Started",
    "Status",
    "Rounds",
    "Agents",
    "Condition",
    "Provider",
    "Cooperation",
    "Cost",
    "Notes",
)
# The order on screen: what a row is for (status, rounds, cooperation and validity, cost)
# first, so 80 columns show it, then the notes (why a row is damaged or INVALID: cut off at
# the far right they read "ma"); the rest scroll in from the right.
SHOWN = (0, 2, 3, 7, 8, 9, 1, 5, 6, 4)


def row(entry: IndexEntry | None, directory: Path, problems: list[str]) -> tuple[Text, ...]:
    """One table row from the experiment's index (engine/index.py); every cell degrades to
    '—' when its source file is missing or bad. Every cell is a Text: names from the files
    are shown as written, never as markup."""
    problems = problems or (entry.problems if entry else [])
    notes = literal("; ".join(problems)[:120], style="red") if problems else Text("")
    if entry is None:
        return cells(directory.name, "—", Text("unreadable", style="bold red"), "—", "—", "—", "—", "—", "—", notes)
    if entry.has_result:
        status = Text(entry.status, style="green" if entry.status == "completed" else "yellow")
        cost = money(entry.cost, entry.cost_is_estimate)
    else:
        state = unfinished_state(entry.status, directory)
        status = Text(state, style="yellow")
        spent = logged_spend(directory) if state == "interrupted" else None
        cost = "—" if spent is None else money_at_least(spent.cost, spent.estimate)
        if not problems:
            said = "no result file; cost so far from calls.jsonl" if spent else "no experiment_results.json"
            notes = Text(said, style="dim")
    if problems:  # a file that could not be read: the figures shown may not be the experiment's
        status = Text(f"{status.plain} (damaged)", style="red")
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
    return simulated_mark(cell, entry.simulated)


def simulated_mark(cell: Text, simulated: bool) -> Text:
    """A number from the simulated provider says so where it is shown (SPEC §7: the browser's
    row too, whose Provider column a narrow terminal cuts off)."""
    if simulated:
        cell.append(" SIMULATED", style="bold black on yellow")
    return cell


def guarded(make: Callable[[T], tuple[Text, ...]], item: T, directory: Path) -> tuple[Text, ...]:
    """`make(item)`, or an "unreadable" row saying why: one entry that makes no sense must
    not end the listing of the ones after it."""
    try:
        return make(item)
    except Exception as exc:  # any bad content: shown in the row
        return unreadable(directory, f"{type(exc).__name__}: {exc}")


def unreadable(directory: Path, problem: str) -> tuple[Text, ...]:
    return cells(
        directory.name,
        "—",
        Text("unreadable", style="bold red"),
        "—",
        "—",
        "—",
        "—",
        "—",
        "—",
        literal(problem[:120], style="red"),
    )


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
        out = {
            "status": self.cells[2].plain,
            "condition": self.cells[5].plain,
            "provider": self.cells[6].plain,
            "id": self.key,
        }
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
        number = plain.split("/")[0].replace("$", "").replace("~", "").replace("%", "").replace("≥", "").strip()
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
        dirs = sorted(
            (p for p in results_dir.iterdir() if p.is_dir() and p.name.startswith("exp_")),
            key=lambda p: p.name,
            reverse=True,
        )
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


def shown(rows: list[Listed], words: list[str], column: int | None, reverse: bool) -> list[Listed]:
    """The rows that pass the filter `words`, sorted by `column` (None: as listed, newest
    first); a sweep's experiments stay under it (a sweep is shown when one of its
    experiments matches)."""
    matched = {r.key for r in rows if r.matches(words)}
    children: dict[str, list[Listed]] = {}
    for r in rows:
        if r.parent is not None:
            children.setdefault(r.parent, []).append(r)
    tops = [
        r
        for r in rows
        if r.parent is None and (r.key in matched or any(c.key in matched for c in children.get(r.key, [])))
    ]

    def arrange(some: list[Listed]) -> list[Listed]:
        if column is None:
            return some
        return sorted(some, key=lambda r: r.sort_value(column), reverse=reverse)

    out: list[Listed] = []
    for top in arrange(tops):
        out.append(top)
        kids = children.get(top.key, [])
        hits = [c for c in kids if c.key in matched]
        out += arrange(hits or kids)  # the matching experiments, or all when only the sweep matched
    return out


def sweep_row(loaded: LoadedSweep) -> tuple[Text, ...]:
    """A row for the browser's table (its columns: Experiment, Started, Status, Rounds, Agents,
    Condition, Provider, Cooperation, Cost, Notes)."""
    name = loaded.directory.name
    result = loaded.result
    if result is None:
        return unreadable(loaded.directory, loaded.problem or "")
    done = sum(run.status != "pending" for run in result.experiments)
    cooperation = " vs ".join(percent(stats.metrics["overall_cooperation_rate"].mean) for stats in result.summary)
    return cells(
        name,
        result.start_time[:16].replace("T", " "),
        Text(f"sweep {result.status}", style="green" if result.status == "completed" else "yellow"),
        f"{done}/{len(result.experiments)} exp",
        str(result.config.agents),
        ", ".join(result.conditions),
        result.config.provider.name or "—",
        simulated_mark(Text(cooperation or "—"), result.simulated),
        "—",
        Text(f"{len(result.seeds)} seeds · enter compares", style="dim"),
    )
