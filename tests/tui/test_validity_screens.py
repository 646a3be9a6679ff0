"""Validity on screen: the run screen's result pane, the TUI's exit code, the browser row and
the experiment screen's Indicators tab."""

from pathlib import Path

from textual.widgets import Static

from acausal_tui.app import AcausalApp
from acausal_tui.cli import app_exit_code
from acausal_tui.screens.experiment import ExperimentScreen
from acausal_tui.screens.listing import row
from acausal_tui.screens.run import RunScreen
from engine.analysis import INDICATORS_NOTE
from engine.index import entry_from
from engine.store import load_experiment
from tests.support.fakes import FakeProvider, strategy_or
from tests.tui.conftest import SIZE, screen_text


async def test_a_run_of_unreadable_replies_shows_invalid_no_rate_and_exits_4(run_app):
    app = run_app(backend=FakeProvider(strategy_or("Coopérer.")), agents=3, rounds=2)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen_stack[0]
        assert isinstance(screen, RunScreen)
        final = str(app.screen.query_one("#final-text", Static).content)
        assert "SIMULATED INVALID: fallback moves 100% > 5%" in final
        assert "fallback moves 100.0% · follow-ups 0.0%" in final
        assert INDICATORS_NOTE in final
        assert screen.view.rates == [None, None]  # no counted move: no rate, never 0
        assert screen.view.overall_cooperation() is None
        code = app_exit_code(app)
        directory = Path(app.directory)
        await pilot.press("q")
    assert app.status == "completed" and code == 4

    cells = [str(cell) for cell in row(entry_from(load_experiment(directory)), directory, [])]
    assert cells[7] == "— INVALID SIMULATED"  # SPEC §7: the browser row says it too
    assert cells[9] == "INVALID: fallback moves 100% > 5%"

    # the experiment screen's Indicators tab: the keyword note and the validity line
    browser = AcausalApp(results_dir=directory.parent)
    async with browser.run_test(size=(160, 48)) as pilot:
        await browser.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(browser.screen, ExperimentScreen)
        await pilot.press("5")
        await browser.workers.wait_for_complete()
        await pilot.pause()
        drawn = " ".join(screen_text(browser).split())
        assert "count keywords, not reasoning" in drawn
        assert "SIMULATED INVALID: fallback moves 100% > 5%" in drawn


async def test_a_valid_run_says_valid_and_exits_0(run_app):
    app = run_app(backend=FakeProvider(strategy_or("COOPERATE")), agents=3, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        final = str(app.screen.query_one("#final-text", Static).content)
        assert "SIMULATED valid\n" in final
        code = app_exit_code(app)
        directory = Path(app.directory)
        await pilot.press("q")
    assert code == 0
    assert str(row(entry_from(load_experiment(directory)), directory, [])[7]) == "100.0% valid SIMULATED"
