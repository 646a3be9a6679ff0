"""Snapshots of the desk's screens at 80x24 and 160x48: a game's transcript, the new
experiment form and the browser with a filter. Everything shown is fixed: a seeded
simulated run under a fixed directory name with its latencies zeroed, relative paths.

Update after an intended change: `.venv/bin/python -m pytest tests/tui/test_desk_snapshots.py --snapshot-update`."""

import json
import shutil
from pathlib import Path

import anyio
import pytest
from textual.widgets import DataTable

from acausal_tui.app import AcausalApp
from acausal_tui.screens.transcript import TranscriptScreen
from engine.config import load_config
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment
from engine.store import ExperimentStore
from tests.tui.conftest import FIXTURE_RESULTS, wait_until

SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def one_run(tmp_path, monkeypatch) -> Path:
    """results/exp_20250101_120000: 3 agents x 1 round, its call log's latencies zeroed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    config = load_config(None, {"agents": 3, "rounds": 1, "seed": 4, "provider": {"name": "simulated"}}, env={})
    store = ExperimentStore(Path("results") / "exp_20250101_120000")
    try:
        anyio.run(lambda: run_experiment(config, provider=SimulatedProvider(seed=4), store=store))
    finally:
        store.close()
    calls = store.directory / "calls.jsonl"
    lines = [json.loads(line) | {"latency_s": 0.0, "time": ""} for line in calls.read_text().splitlines()]
    calls.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return Path("results")


@pytest.mark.parametrize("size", SIZES)
def test_transcript(snap_compare, one_run, size):
    async def run_before(pilot) -> None:
        app = pilot.app
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("2")
        await app.workers.wait_for_complete()
        app.screen.query_one("#games-table", DataTable).focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, TranscriptScreen))
        await app.workers.wait_for_complete()
        await pilot.pause()

    assert snap_compare(AcausalApp(results_dir=one_run), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_new_experiment_form(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)

    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.press("n")
        await pilot.pause()
        pilot.app.screen.query_one("#f-agents").value = "1"
        await pilot.press("ctrl+s")  # a bad value: the CLI's message under the form
        await pilot.pause()

    assert snap_compare(AcausalApp(results_dir=Path("results")), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_browser_with_a_filter(snap_compare, tmp_path, monkeypatch, size):
    shutil.copytree(FIXTURE_RESULTS, tmp_path / "results", ignore=shutil.ignore_patterns("index.json"))
    monkeypatch.chdir(tmp_path)

    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("slash", *"condition:identity", "enter")
        await pilot.pause()

    assert snap_compare(AcausalApp(results_dir=Path("results")), terminal_size=size, run_before=run_before)
