"""The command palette's project commands, typed into the real palette (ctrl+p)."""

import shutil
from pathlib import Path

import pytest
from textual.command import CommandPalette

from acausal_tui.app import AcausalApp
from acausal_tui.commands import audit_available, desk_commands
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.new_run import NewRunScreen
from acausal_tui.screens.run import RunScreen
from acausal_tui.screens.transcript import ReportScreen
from acausal_tui.widgets.tail import Tail
from tests.tui.conftest import FIXTURE_RESULTS, SIZE, settle, wait_until

COMPLETED = "exp_20250101_090000"


@pytest.fixture
def results(tmp_path) -> Path:
    """A results directory holding a copy of the fixtures' completed experiment."""
    shutil.copytree(FIXTURE_RESULTS / COMPLETED, tmp_path / "results" / COMPLETED)
    return tmp_path / "results"


async def run_command(pilot, name: str) -> None:
    await pilot.press("ctrl+p")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette))
    await pilot.press(*name)
    await pilot.pause(0.3)  # the palette searches in a worker
    await pilot.press("enter")
    await pilot.pause()


async def test_browser_commands(results):
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        names = [name for name, _, _ in desk_commands(app, app.screen)]
        audit = ["Audit the selected"] if audit_available() else []  # once `audit` is merged
        assert names == [
            "New experiment",
            "New sweep",
            "Export the selected to CSV",
            "Copy the results path",
            *audit,
            "Switch theme",
        ]  # completed: nothing to resume

        copied: list[str] = []
        app.copy_to_clipboard = copied.append
        await run_command(pilot, "Copy the results path")
        assert copied == [str(results / COMPLETED)]

        await run_command(pilot, "Export the selected to CSV")
        await app.workers.wait_for_complete()
        assert (results / COMPLETED / "export" / "games.csv").is_file()

        await run_command(pilot, "New sweep")
        assert isinstance(app.screen, NewRunScreen) and app.screen.kind == "sweep"
        await pilot.press("escape")
        await run_command(pilot, "New experiment")
        assert isinstance(app.screen, NewRunScreen) and app.screen.kind == "run"
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)

        await run_command(pilot, "Switch theme")
        assert isinstance(app.screen, CommandPalette)  # Textual's theme picker
        await pilot.press("escape")


async def test_run_screen_commands_toggle_real_ids_and_browse(run_app):
    app = run_app(agents=3, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunScreen)
        names = [name for name, _, _ in desk_commands(app, app.screen)]
        assert "Toggle real ids in the feed" in names and "Browse experiments" in names
        screen.action_agents_table()  # the feed is hidden once the run is over: show it back
        screen.action_agents_table()
        await run_command(pilot, "Toggle real ids in the feed")
        assert screen.reveal
        assert all(" #" in str(line) for line in screen.query_one(Tail).lines if "r1_g" in str(line))
        await run_command(pilot, "Browse experiments")
        assert isinstance(app.screen, BrowserScreen)


async def test_audit_the_selected_shows_the_report(results):
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await run_command(pilot, "Audit the selected")
        await wait_until(pilot, lambda: isinstance(app.screen, ReportScreen))
        assert "decisions:" in str(app.screen.query_one("#report-text").render())


async def test_a_report_is_shown_literally():
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ReportScreen("r", "[bold red]x[/] \x1b[2J"))
        await pilot.pause()
        shown = app.screen.query_one("#report-text").render()
        assert str(shown) == "[bold red]x[/] \\x1b[2J" and not shown.spans
