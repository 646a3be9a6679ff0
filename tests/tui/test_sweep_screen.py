"""The sweep screen on the real app: the simulated provider, the whole sweep as the app's worker."""

from pathlib import Path

import pytest
from textual.widgets import DataTable, ProgressBar, RichLog

from acausal_tui.app import AcausalApp, sweep_runner
from acausal_tui.cli import main
from acausal_tui.screens.compare import CompareScreen
from acausal_tui.screens.dialogs import ConfirmScreen, HelpScreen
from acausal_tui.screens.run import RunView
from acausal_tui.screens.sweep import SweepScreen, SweepView
from engine.models import ExperimentResult, Manifest
from engine.providers.simulated import SimulatedProvider
from engine.store import read_json
from engine.sweep import METRICS, SWEEP_FILE, SweepControl, SweepResult, SweepRun, plan_sweep
from tests.support.experiment_files import assert_files_valid
from tests.tui.conftest import (
    SIZE,
    FlakyProvider,
    HeldProvider,
    abort_after_changing_mind,
    screen_text,
    static_text,
    wait_until,
)


@pytest.fixture
def sweep_app(tmp_path):
    """An app that starts a simulated sweep at once (results under tmp_path). `provider`
    makes each experiment's provider from its config (default: the config's own)."""

    def make(provider=None, conditions: str = "baseline,identity", seeds: int = 2, **overrides) -> AcausalApp:
        settings = {
            "agents": 3,
            "rounds": 2,
            "seed": 7,
            "provider": {"name": "simulated"},
            "results_dir": str(tmp_path / "results"),
            **overrides,
        }
        plan = plan_sweep(None, settings, conditions, seeds, env={})
        providers = [provider(config) for _, config in plan.runs()] if provider else None
        return AcausalApp(sweep=sweep_runner(plan, providers), results_dir=tmp_path / "results")

    return make


def sweep_screen(app: AcausalApp) -> SweepScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, SweepScreen)
    return screen


def rows(app: AcausalApp) -> dict[str, list[str]]:
    """The experiments table: row key -> its cells as plain text."""
    table = sweep_screen(app).query_one("#sweep-experiments", DataTable)
    return {key.value: [str(cell) for cell in table.get_row(key)] for key in table.rows}


async def test_a_sweep_starts_at_once_and_ends_with_its_summary(sweep_app):
    app = sweep_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = sweep_screen(app)
        table = screen.query_one("#sweep-experiments", DataTable)
        refills: list[str] = []
        table.clear = lambda *args, **kwargs: refills.append("clear")  # rows are updated by key
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.status == "completed" and refills == []
        header = static_text(app, "#sweep-header")
        assert header.startswith(app.directory.name) and "SIMULATED" in header
        assert "2 conditions × 2 seeds = 4 experiments" in header
        assert static_text(app, "#sweep-label") == "Experiments 4/4 finished"
        assert "rounds 8/8 across all experiments" in static_text(app, "#sweep-rounds")
        bar = screen.query_one(ProgressBar)
        assert bar.total == bar.progress == 8
        assert "Finished: completed" in static_text(app, "#sweep-status")
        result = read_json(app.directory / SWEEP_FILE, SweepResult)
        assert list(rows(app)) == [run.directory for run in result.experiments]
        for run in result.experiments:
            cooperation = f"{100 * run.metrics['overall_cooperation_rate']:.1f}%"
            assert rows(app)[run.directory] == [run.condition, str(run.seed), "completed", "2/2", cooperation]
        # The summary: every metric per condition with its interval, and the difference.
        assert screen.query_one("#sweep-summary").display
        assert str(app.directory / SWEEP_FILE) in static_text(app, "#sweep-result")
        metrics = screen.query_one("#sweep-metrics", DataTable)
        assert metrics.row_count == len(METRICS)
        assert [str(c.label) for c in metrics.columns.values()] == [
            "metric",
            "baseline (n=2)",
            "identity (n=2)",
            "identity − baseline",
        ]
        # c opens the full comparison view; esc comes back; the app stays open until q.
        await pilot.press("c")
        assert isinstance(app.screen, CompareScreen)
        await pilot.pause()
        drawn = screen_text(app)
        assert "identity_reasoning_frequency (keywords)" in drawn  # markers count words, says so
        assert "SIMULATED" in drawn
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("q")
    assert app.return_code == 0


async def test_pause_stops_new_calls_and_resume_finishes_the_sweep(sweep_app):
    held: list[HeldProvider] = []

    def provider(config):
        held.append(HeldProvider(seed=config.seed, hold_from=2))
        return held[-1]

    app = sweep_app(provider, rounds=3)
    async with app.run_test(size=SIZE) as pilot:
        screen = sweep_screen(app)
        control = screen.control

        def counters() -> tuple[int, int]:
            return sum(c.stats.calls for c in control.controls), sum(c.stats.in_flight for c in control.controls)

        # Every experiment's round-2 strategy calls are in flight (4 experiments x 3 agents).
        await wait_until(pilot, lambda: sum(h.held for h in held) == 12)
        assert screen.check_action("pause", ()) and not screen.check_action("resume", ())
        await pilot.press("p")
        assert control.paused and all(c.paused for c in control.controls)
        assert not screen.check_action("pause", ()) and screen.check_action("resume", ())
        await wait_until(
            pilot,
            lambda: "Paused — no new calls are sent; 12 calls still in flight" in static_text(app, "#sweep-status"),
        )
        assert {cells[2] for cells in rows(app).values()} == {"paused"}
        for provider_ in held:
            provider_.release()  # the in-flight calls finish; no new one may start
        await wait_until(pilot, lambda: counters()[1] == 0)
        calls, _ = counters()
        for _ in range(5):
            await pilot.pause(0.05)
            assert counters() == (calls, 0)
        assert app.status is None and screen.running
        await pilot.press("p")
        assert not control.paused
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.status == "completed"
        assert counters()[0] > calls
        assert {cells[2] for cells in rows(app).values()} == {"completed"}


async def test_abort_asks_first_then_saves_every_experiment(sweep_app):
    """baseline finishes; identity is held in round 2 when the sweep is aborted."""
    held: list[HeldProvider] = []

    def provider(config):
        if config.condition == "baseline":
            return SimulatedProvider(seed=config.seed)
        held.append(HeldProvider(seed=config.seed, hold_from=2))
        return held[-1]

    app = sweep_app(provider, rounds=4)
    async with app.run_test(size=SIZE) as pilot:
        screen = sweep_screen(app)
        await wait_until(pilot, lambda: screen.view.finished == 2 and sum(h.held for h in held) == 6)
        await abort_after_changing_mind(pilot, app, screen)
        assert app.status == "aborted"
        assert "Finished: aborted" in static_text(app, "#sweep-status")
        assert not screen.check_action("abort", ()) and not screen.check_action("pause", ())
        statuses = {key: cells[2] for key, cells in rows(app).items()}
        metrics = screen.query_one("#sweep-metrics", DataTable)
        assert [str(c.label) for c in metrics.columns.values()][1:3] == ["baseline (n=2)", "identity (n=0)"]
    result = read_json(app.directory / SWEEP_FILE, SweepResult)
    assert result.status == "aborted"
    assert {run.directory: run.status for run in result.experiments} == statuses
    for run in result.experiments:
        directory = app.directory / run.directory
        assert_files_valid(directory)
        experiment = read_json(directory / "experiment_results.json", ExperimentResult)
        assert read_json(directory / "manifest.json", Manifest).status == experiment.status == run.status
        if run.condition == "baseline":
            assert run.status == "completed" and experiment.total_rounds == 4
        else:
            assert run.status == "aborted" and experiment.total_rounds == 1


async def test_quit_while_running_asks_and_aborts_every_experiment(sweep_app):
    held: list[HeldProvider] = []

    def provider(config):
        held.append(HeldProvider(seed=config.seed, hold_from=2))
        return held[-1]

    app = sweep_app(provider)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: sum(h.held for h in held) == 12)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        assert "A sweep is in progress" in screen_text(app)
        await pilot.press("n")
        assert app.is_running and sweep_screen(app).running
        await pilot.press("q")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running)
    assert app.status == "aborted"
    result = read_json(app.directory / SWEEP_FILE, SweepResult)
    assert {run.status for run in result.experiments} == {"aborted"}
    for run in result.experiments:
        assert_files_valid(app.directory / run.directory)


async def test_help_lists_the_sweep_keys(sweep_app):
    app = sweep_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "pause / resume every experiment" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, SweepScreen)


async def test_the_error_log_tags_each_retry_with_its_experiment(sweep_app):
    def provider(config):
        if config.condition == "identity" and config.seed == 8:
            return FlakyProvider(config.seed, transient={"strategy/r1/a0"})
        return SimulatedProvider(seed=config.seed)

    app = sweep_app(provider)
    async with app.run_test(size=SIZE) as pilot:
        log = sweep_screen(app).query_one("#sweep-errors", RichLog)
        assert not log.display  # no room taken until there is something to show
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert log.display
        text = "\n".join(line.text for line in log.lines)
    assert "[identity s8] retry  strategy/r1/a0 attempt 1 failed: HTTP 503: upstream overloaded" in text
    assert app.status == "completed"


def test_labels_are_shown_literally():
    view = SweepView(runs={"exp_x_s1": RunView(total_rounds=3)})
    run = SweepRun(condition="[bold]x[/]", seed=1, directory="exp_x_s1")
    cells = view.row(run, SweepControl())
    assert [cell.plain for cell in cells] == ["[bold]x[/]", "1", "pending", "0/3", "—"]
    assert not cells[0].spans


def test_sweep_without_headless_opens_the_app_and_starts_at_once(opened, tmp_path, capsys):
    code = main(
        [
            "sweep",
            "--conditions",
            "baseline,identity",
            "--seeds",
            "2",
            "--agents",
            "3",
            "--rounds",
            "2",
            "--seed",
            "5",
            "--provider",
            "simulated",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    (app,) = opened
    assert app.sweep_fn is not None and app.status == "completed"
    out, err = capsys.readouterr()
    assert out.strip() == str(app.directory) and "not built" not in err
    assert Path(app.directory).parent == tmp_path
    result = read_json(Path(app.directory) / SWEEP_FILE, SweepResult)
    assert result.status == "completed" and len(result.experiments) == 4


def test_a_sweep_without_its_api_key_exits_2_before_the_app_opens(opened, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    assert main(["sweep", "--provider", "openrouter", "--results-dir", str(tmp_path)]) == 2
    assert "OPENROUTER_API_KEY" in capsys.readouterr().err
    assert opened == [] and not any(tmp_path.iterdir())
