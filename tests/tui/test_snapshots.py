"""Snapshot tests (pytest-textual-snapshot) of every screen at 80x24 (the default terminal)
and 160x48: a fixed seed, the simulated provider, a fixed clock wherever a time is shown.

Update after an intended change, having looked at the SVG diff:
`.venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update`."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from acausal_tui.app import AcausalApp, experiment_runner, sweep_runner
from acausal_tui.widgets.strategy import StrategyPane
from acausal_tui.widgets.tail import Tail
from engine import runner, sweep
from engine.sweep import plan_sweep
from tests.tui.conftest import FIXTURE_RESULTS, HeldProvider, wait_until

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]
START = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
CONCURRENCY = 8


class SteppingClock:
    """Stands in for the `time` module in the runner: every round takes exactly 1 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def fixed_run(make_config, monkeypatch, tmp_path):
    """A run of 6 agents x 8 rounds under tmp_path/results (shown as "results/…"), every
    round 1 s long; with `hold_from`, the calls of that round wait in flight."""
    monkeypatch.setattr(runner, "time", SteppingClock())
    monkeypatch.chdir(tmp_path)

    def make(hold_from: int = 99) -> tuple[AcausalApp, HeldProvider]:
        config = make_config(
            agents=6,
            rounds=8,
            seed=3,
            results_dir="results",
            provider={"name": "simulated", "max_concurrency": CONCURRENCY},
        )
        held = HeldProvider(seed=3, hold_from=hold_from, kind="decision")
        app = AcausalApp(run=experiment_runner(config, held, now=lambda: START), results_dir=Path("results"))
        return app, held

    return make


async def settle_mid_run(pilot, held: HeldProvider) -> None:
    """Round 4's decision calls held in flight (as many as max_concurrency lets start), every
    event drawn, the strategy text (redrawn at most once a second) caught up."""

    def settled() -> bool:
        screen = pilot.app.screen
        return (
            not screen.buffer.events
            and screen.query_one(StrategyPane).up_to_date
            and not screen.query_one(Tail).paint_pending
        )

    await wait_until(pilot, lambda: held.held == CONCURRENCY and settled())
    await pilot.pause(0.3)  # a few 10 Hz redraws


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(
    "keys",
    [
        pytest.param((), id="mid_run"),
        pytest.param(("p",), id="paused"),
        pytest.param(("a",), id="abort_dialog"),
        pytest.param(("question_mark",), id="help"),
    ],
)
def test_run_screen(snap_compare, fixed_run, size, keys):
    app, held = fixed_run(hold_from=4)

    async def run_before(pilot) -> None:
        await settle_mid_run(pilot, held)
        await pilot.press(*keys)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_run_screen_finished(snap_compare, fixed_run, size):
    app, _ = fixed_run()

    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.fixture
def browse_fixtures(monkeypatch):
    """The fixture results directory under a relative name, so no absolute path is shown."""
    monkeypatch.chdir(FIXTURE_RESULTS.parent)
    return AcausalApp(results_dir=Path("results"))


@pytest.mark.parametrize("size", SIZES)
def test_browser(snap_compare, browse_fixtures, size):
    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(browse_fixtures, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tab", ["1", "2", "3", "4", "5"])
def test_experiment_tabs(snap_compare, browse_fixtures, size, tab):
    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+end", "enter", tab)
        await pilot.app.workers.wait_for_complete()  # the round files, read off the event loop
        await pilot.pause()

    assert snap_compare(browse_fixtures, terminal_size=size, run_before=run_before)


@pytest.fixture
def fixed_sweep(monkeypatch, tmp_path):
    """A finished simulated sweep (2 conditions x 3 seeds) with a fixed clock."""
    monkeypatch.setattr(runner, "time", SteppingClock())
    monkeypatch.setattr(sweep, "utc_now", lambda: START)
    monkeypatch.setattr(sweep, "now_iso", lambda: START.isoformat())
    monkeypatch.setattr(runner, "utc_now", lambda: START)
    monkeypatch.chdir(tmp_path)
    settings = {"agents": 3, "rounds": 3, "seed": 7, "provider": {"name": "simulated"}, "results_dir": "results"}
    plan = plan_sweep(None, settings, "baseline,identity", 3, env={})
    return AcausalApp(sweep=sweep_runner(plan, None), results_dir=Path("results"))


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("keys", [pytest.param((), id="sweep"), pytest.param(("c",), id="comparison")])
def test_sweep_screens(snap_compare, fixed_sweep, size, keys):
    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.3)
        for _ in range(3):  # under the snapshot harness the first key here is sometimes lost
            if not keys or len(pilot.app.screen_stack) > 1:
                break
            await pilot.press(*keys)
            await pilot.pause(0.3)

    assert snap_compare(fixed_sweep, terminal_size=size, run_before=run_before)
