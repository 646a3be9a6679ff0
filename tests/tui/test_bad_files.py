"""Files that decode but make no sense, and names with Rich markup in them: shown as they
are or reported in place, never mangled and never a crash. Round files are read off the
event loop."""

import json
import shutil
import threading
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable, Select, Static

from acausal_tui.app import AcausalApp
from acausal_tui.screens import listing
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.compare import CompareScreen
from acausal_tui.screens.experiment import ExperimentScreen
from engine.analysis import INDICATOR_DOCS
from engine.store import LoadedExperiment
from engine.sweep import SWEEP_FILE
from tests.support.sweeps import finished_simulated_sweep
from tests.tui.conftest import (
    FIXTURE_RESULTS,
    SIZE,
    cells,
    open_browser,
    screen_text,
    settle,
    wait_until,
)

COMPLETED = "exp_20250101_090000"


def copy_experiment(results: Path, name: str = COMPLETED, source: str = COMPLETED) -> Path:
    shutil.copytree(FIXTURE_RESULTS / source, results / name)
    return results / name


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


async def open_first(pilot) -> ExperimentScreen:
    """The browser's first row, opened, with its round files read."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ExperimentScreen)
    return screen


# -- 1. Rich markup in table cells ------------------------------------------------------


async def test_indicator_formulas_are_shown_exactly():
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=(200, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+end")
        detail = await open_first(pilot)
        await pilot.press("5")
        await settle(pilot)
        formula = INDICATOR_DOCS["rounds_to_convergence"]
        assert "|sim[r+1] - sim[r]| < 0.02" in formula
        assert formula in screen_text(app)
        cell = detail.query_one("#indicators-table", DataTable).get_row("rounds_to_convergence")[2]
        assert isinstance(cell, Text) and cell.plain == formula and not cell.spans


async def test_directory_and_condition_names_with_markup_are_shown_literally(tmp_path):
    results = tmp_path / "results"
    odd = copy_experiment(results, "exp_20250101_[reverse]X")
    edit_json(odd / "manifest.json", lambda m: m["condition"].update(name="[bold]odd[/]"))
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "exp_20250101_[reverse]X" in screen_text(app))  # rows load in a worker
        assert "[bold]odd[/]" in screen_text(app)
        await open_first(pilot)
        assert "condition [bold]odd[/]" in screen_text(app)


# -- 2. inconsistent sweep files ----------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A finished 2-condition sweep (simulated), to copy and spoil."""
    return finished_simulated_sweep(tmp_path_factory.mktemp("sweep"))


async def test_bad_sweep_files_are_listed_as_unreadable_and_the_rest_still_shown(tmp_path, sweep_dir, notifications):
    results = tmp_path / "results"
    for name in ("sweep_20250101_000000", "sweep_20250102_000000", "sweep_20250103_000000"):
        shutil.copytree(sweep_dir, results / name)
    edit_json(
        results / "sweep_20250103_000000" / SWEEP_FILE,
        lambda s: s["summary"][0]["metrics"].pop("overall_cooperation_rate"),
    )
    edit_json(
        results / "sweep_20250102_000000" / SWEEP_FILE, lambda s: s["differences"][0].update(cooperation_per_round=[])
    )
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        # a readable sweep's experiments are listed under it (indented)
        assert cells(table, 0)[:3] == ["sweep_20250103_000000", "sweep_20250102_000000", "sweep_20250101_000000"]
        assert all(name.startswith("  └ exp_") for name in cells(table, 0)[3:])
        assert cells(table, 2)[:3] == ["unreadable", "unreadable", "sweep completed"]
        notes = cells(table, 9)
        assert "overall_cooperation_rate" in notes[0] and "cooperation_per_round" in notes[1]
        await pilot.press("down", "enter")  # the one whose lists do not match: explained, not opened
        await pilot.pause()
        assert isinstance(app.screen, BrowserScreen)
        assert "sweep_20250102_000000 is unreadable" in [title for title, _ in notifications]
        await pilot.press("down", "enter")
        await pilot.pause()
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        # enter on one of its experiments opens it (read off the event loop)
        compare.query_one("#compare-experiments", DataTable).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExperimentScreen)
    assert app.return_code in (None, 0)


async def test_a_row_that_cannot_be_made_does_not_end_the_listing(tmp_path, monkeypatch):
    results = tmp_path / "results"
    copy_experiment(results, "exp_20250102_000000")
    copy_experiment(results, "exp_20250101_000000")
    made = listing.row

    def row(entry, directory: Path, problems: list[str]):
        if directory.name == "exp_20250102_000000":
            raise KeyError("overall_cooperation_rate")
        return made(entry, directory, problems)

    monkeypatch.setattr(listing, "row", row)
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        assert cells(table, 0) == ["exp_20250102_000000", "exp_20250101_000000"]
        assert cells(table, 2) == ["unreadable", "completed"]
        assert "KeyError" in cells(table, 9)[0]


# -- 3. experiment files that decode but make no sense ----------------------------------


async def test_an_agent_id_out_of_range_is_reported_in_place(tmp_path):
    results = tmp_path / "results"
    spoiled = copy_experiment(results)
    edit_json(spoiled / "rounds" / "games_r1.json", lambda games: games[0].update(player2_id=99))
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_first(pilot)
        await pilot.press("3")
        history = str(detail.query_one("#history-text", Static).content)
        assert "games_r1.json could not be read: r1_g1: agent id 99 is not one of the 4 agents" in history
        assert "Round 2 vs Opponent " in history  # the other rounds are still shown
        await pilot.press("2")
        detail.query_one("#games-round", Select).value = 1
        await settle(pilot)
        assert "agent id 99" in str(detail.query_one("#games-problem", Static).content)
        assert detail.query_one("#games-table", DataTable).row_count == 0
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_a_manifest_without_agents_opens(tmp_path):
    results = tmp_path / "results"
    spoiled = copy_experiment(results)
    edit_json(spoiled / "manifest.json", lambda m: m.update(agents=[]))
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        detail = await open_first(pilot)
        await pilot.press("3")
        assert str(detail.query_one("#history-text", Static).content) == "no agent"
        await pilot.press("2")
        assert "is not one of the 0 agents" in str(detail.query_one("#games-problem", Static).content)
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


# -- 4. files read off the event loop ---------------------------------------------------


async def test_round_files_are_read_off_the_event_loop(tmp_path, monkeypatch):
    results = tmp_path / "results"
    copy_experiment(results)
    gate = threading.Event()
    readers: set[str] = set()
    read = LoadedExperiment.games

    def slow_games(self: LoadedExperiment, round: int):
        readers.add(threading.current_thread().name)
        gate.wait(timeout=5)
        return read(self, round)

    monkeypatch.setattr(LoadedExperiment, "games", slow_games)
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("enter", "3")
        detail = app.screen
        assert isinstance(detail, ExperimentScreen)
        # The reads are blocked, yet the screen is up, answers keys and says it is loading.
        assert str(detail.query_one("#history-problem", Static).content) == "loading…"
        await pilot.press("2")
        assert str(detail.query_one("#games-problem", Static).content) == "loading…"
        gate.set()
        await settle(pilot)
        assert not detail.query_one("#games-problem", Static).display
        assert detail.query_one("#games-table", DataTable).row_count == 6
        await pilot.press("3")
        assert "Game history so far:" in str(detail.query_one("#history-text", Static).content)
    assert readers and threading.main_thread().name not in readers
