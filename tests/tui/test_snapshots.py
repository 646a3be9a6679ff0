"""Snapshot tests (pytest-textual-snapshot): a fixed terminal size, seed and clock.

Update after an intended change: `.venv/bin/python -m pytest tests/tui --snapshot-update`."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from acausal_tui.app import AcausalApp, experiment_runner
from acausal_tui.widgets.strategy import StrategyPane
from engine import runner
from tests.tui.conftest import FIXTURE_RESULTS, HeldProvider, wait_until

SIZE = (120, 40)


class SteppingClock:
    """Stands in for the `time` module in the runner: every round takes exactly 1 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def browse_fixtures(monkeypatch):
    """The fixture results directory under a relative name, so no absolute path is shown."""
    monkeypatch.chdir(FIXTURE_RESULTS.parent)
    return AcausalApp(results_dir=Path("results"))


def test_run_screen_mid_run(snap_compare, make_config, monkeypatch):
    """Round 4 of 8: its strategy calls are held in flight; rounds 1-3 are done."""
    monkeypatch.setattr(runner, "time", SteppingClock())
    config = make_config(agents=6, rounds=8, seed=3)
    held = HeldProvider(seed=3, hold_from=4)
    start = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    app = AcausalApp(run=experiment_runner(config, held, now=lambda: start), results_dir=Path("results"))

    async def run_before(pilot) -> None:
        def settled() -> bool:
            screen = pilot.app.screen
            return not screen.buffer.events and screen.query_one(StrategyPane).up_to_date

        # Held in flight, every event drawn, and the strategy text (redrawn at most once a
        # second) caught up.
        await wait_until(pilot, lambda: held.held == 6 and settled())
        await pilot.pause(0.3)  # a few 10 Hz redraws

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_browser_over_the_fixture_results(snap_compare, browse_fixtures):
    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()

    assert snap_compare(browse_fixtures, terminal_size=SIZE, run_before=run_before)


def test_one_agents_history(snap_compare, browse_fixtures):
    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+end", "enter", "3")
        await pilot.app.workers.wait_for_complete()  # the round files, read off the event loop
        await pilot.pause()

    assert snap_compare(browse_fixtures, terminal_size=SIZE, run_before=run_before)
