"""What screens ask of the app (messages: start a run from the form, resume from the
browser, open an experiment), through the real app, read from what is drawn; and the
browser's footer following its highlighted row."""

import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from acausal_tui.app import AcausalApp, experiment_runner
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.experiment import ExperimentScreen
from acausal_tui.screens.new_run import NewRunScreen
from acausal_tui.screens.run import RunScreen
from tests.tui.conftest import FIXTURE_RESULTS, SIZE, HeldProvider, screen_text, wait_until
from tests.tui.test_drawn_state import drawn_rows

INTERRUPTED = "exp_20250103_100000"  # after round 1 of 3: resumable


def footer(app: AcausalApp) -> str:
    return screen_text(app).rstrip().splitlines()[-1]


def toasts(app: AcausalApp) -> str:
    """The notifications as drawn (run_test(notifications=True)), their wrapped lines joined."""
    return " ".join(" ".join(" ".join(drawn_rows(toast)).split()) for toast in app.screen.query("Toast"))


@asynccontextmanager
async def held_run(app: AcausalApp, held: HeldProvider) -> AsyncIterator[Pilot]:
    """The app under Pilot; its held calls released at the end, whatever happened."""
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        try:
            yield pilot
        finally:
            held.release()


async def browse_while_running(pilot, held: HeldProvider) -> BrowserScreen:
    """From a run held mid-round, b: the browser over the run's results directory."""
    await wait_until(pilot, lambda: held.held > 0)
    await pilot.press("b")
    await wait_until(
        pilot,
        lambda: isinstance(pilot.app.screen, BrowserScreen) and pilot.app.screen.query_one(DataTable).row_count > 0,
    )
    return pilot.app.screen


async def test_the_footer_offers_resume_only_on_a_resumable_row(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS, results)
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "Resume" not in footer(app)  # the unreadable one
        await pilot.press("down")  # the interrupted one
        await pilot.pause()
        assert "R Resume" in footer(app)
        await pilot.press("down")  # aborted: resumable too
        await pilot.pause()
        assert "R Resume" in footer(app)
        await pilot.press("down")  # completed
        await pilot.pause()
        assert "Resume" not in footer(app)
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, BrowserScreen) and app.status is None


async def test_a_new_run_is_refused_on_the_form_while_one_is_going_then_starts(make_config, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    config = make_config(agents=3, rounds=2)
    held = HeldProvider(seed=7, hold_from=1)
    app = AcausalApp(run=experiment_runner(config, held), results_dir=Path(config.results_dir))
    async with held_run(app, held) as pilot:
        first = app.screen
        await browse_while_running(pilot, held)
        await pilot.press("n")
        await wait_until(pilot, lambda: isinstance(app.screen, NewRunScreen))
        form = app.screen
        for name, value in {"agents": "2", "rounds": "1", "seed": "3"}.items():
            form.query_one(f"#f-{name}", Input).value = value
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: bool(str(form.query_one("#form-error", Static).render())))
        assert "a run is in progress: start the new one once it has ended" in screen_text(app)
        assert app.screen is form and len(list(Path(config.results_dir).glob("exp_*"))) == 1

        held.release()
        await wait_until(pilot, lambda: app.status is not None, timeout=60)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen is not first)
        await wait_until(pilot, lambda: app.status == "completed", timeout=60)
        assert "Round 1/1" in screen_text(app)
    assert len(list(Path(config.results_dir).glob("exp_*"))) == 2


async def test_resume_is_refused_while_a_run_is_going(make_config):
    config = make_config(agents=3, rounds=2)
    shutil.copytree(FIXTURE_RESULTS / INTERRUPTED, Path(config.results_dir) / INTERRUPTED)
    directory = Path(config.results_dir) / INTERRUPTED
    before = experiment_files(directory)
    held = HeldProvider(seed=7, hold_from=1)
    app = AcausalApp(run=experiment_runner(config, held), results_dir=Path(config.results_dir))
    async with held_run(app, held) as pilot:
        await browse_while_running(pilot, held)
        await pilot.press("ctrl+end")  # the oldest: the interrupted experiment
        await pilot.pause()
        assert "R Resume" in footer(app)
        await pilot.press("R")
        await wait_until(pilot, lambda: "A run is in progress: resume once it has ended" in toasts(app))
        assert isinstance(app.screen, BrowserScreen)
        held.release()
        await wait_until(pilot, lambda: app.status is not None, timeout=60)
    assert experiment_files(directory) == before


def experiment_files(directory: Path) -> dict[str, bytes]:
    """Every file of the experiment and its bytes, but the browser's index.json cache (the
    listing may write it: it is not the experiment's record)."""
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "index.json"
    }


async def test_a_refused_resume_says_why(tmp_path):
    results = tmp_path / "results"
    directory = results / INTERRUPTED
    shutil.copytree(FIXTURE_RESULTS / INTERRUPTED, directory)
    manifest = directory / "manifest.json"
    data = json.loads(manifest.read_text())
    data["prompt_hashes"]["decision"] = "0" * 64  # as if made with other prompts
    manifest.write_text(json.dumps(data))
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("R")
        await wait_until(pilot, lambda: f"Cannot resume {INTERRUPTED}" in toasts(app))
        assert "the prompt templates changed since the experiment started (decision)" in toasts(app)
        assert isinstance(app.screen, BrowserScreen) and app.status is None


async def test_the_browser_opens_an_experiment_and_says_when_it_became_unreadable(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS / INTERRUPTED, results / INTERRUPTED)
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ExperimentScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert INTERRUPTED in screen_text(app) and "partial" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        (results / INTERRUPTED / "manifest.json").write_text("{")  # gone bad since it was listed
        await pilot.press("enter")
        await wait_until(pilot, lambda: f"{INTERRUPTED} is unreadable" in toasts(app))
        assert "manifest.json" in toasts(app)
        assert isinstance(app.screen, BrowserScreen)
