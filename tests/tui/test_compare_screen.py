"""The sweep comparison view: conditions side by side with their intervals, the rounds and
experiments of the sweep, INVALID experiments named; reached from the browser."""

from textual.app import App

from acausal_tui.app import AcausalApp
from acausal_tui.screens.browser import SHOWN
from acausal_tui.screens.compare import CompareScreen
from engine.sweep import INTERVAL_METRICS, load_sweep
from tests.support.sweeps import INVALID_REASON, judge_some_invalid, plan, sweep
from tests.tui.conftest import settle


def host(directory) -> App:
    """An app showing only the comparison of the sweep in `directory`."""

    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(CompareScreen(load_sweep(directory)))

    return Host()


async def test_compare_view_shows_conditions_side_by_side(tmp_path):
    _, directory = await sweep(plan(tmp_path))
    app = AcausalApp(results_dir=directory.parent)  # it opens the experiment the comparison asks for
    async with app.run_test(size=(160, 60)) as pilot:
        await app.push_screen(CompareScreen(load_sweep(directory)))
        await pilot.pause()
        screen = app.screen
        metrics = screen.query_one("#compare-metrics")
        assert metrics.row_count == len(INTERVAL_METRICS) + 1  # and convergence as k of n
        assert [str(c.label) for c in metrics.columns.values()] == [
            "metric",
            "baseline (n=3)",
            "identity (n=3)",
            "identity − baseline",
        ]
        overall = metrics.get_row_at(INTERVAL_METRICS.index("overall_cooperation_rate"))
        assert str(overall[2]).startswith("100.0%") and str(overall[3]).startswith("+")
        assert screen.query_one("#compare-rounds").row_count == 3
        assert len(screen.query("CoopChart")) == 2
        experiments = screen.query_one("#compare-experiments")
        assert experiments.row_count == 6
        experiments.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert type(app.screen).__name__ == "ExperimentScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen


async def test_invalid_experiments_are_named_in_the_comparison(tmp_path, monkeypatch):
    judge_some_invalid(monkeypatch)
    _, directory = await sweep(plan(tmp_path, seeds=4))
    app = host(directory)
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        title = str(app.screen.query_one("#compare-title").render())
        assert "SIMULATED" in title
        assert f"Left out as INVALID (1): identity s41 ({INVALID_REASON})" in title
        assert "Counted without a validity record: 1 experiment(s)" in title
        experiments = app.screen.query_one("#compare-experiments")
        assert str(experiments.get_row("exp_identity_s41")[2]) == "completed INVALID"


async def test_the_browser_lists_sweeps_and_opens_the_comparison(tmp_path):
    _, directory = await sweep(plan(tmp_path, rounds=1))
    app = AcausalApp(results_dir=directory.parent)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#experiments")
        assert str(table.get_row(directory.name)[SHOWN.index(2)]) == "sweep completed"
        table.move_cursor(row=table.get_row_index(directory.name))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)


def test_a_cell_says_how_many_seeds_it_is_over_when_not_its_columns():
    """A seed with nothing to count for a metric (no unequal game, say) is left out of it:
    the cell says so rather than sit under a header's n it does not have."""
    from acausal_tui.screens.compare import interval_cell
    from engine.stats import t_interval

    assert interval_cell(t_interval([0.7, 0.72]), True, seeds=3) == "71.0% (n=2, too small)"
    four = t_interval([0.5, 0.6, 0.7, 0.8])
    assert interval_cell(four, True, seeds=4).startswith("65.0% [") and "n=" not in interval_cell(four, True, seeds=4)
    assert interval_cell(four, True, seeds=5).endswith("] n=4")
