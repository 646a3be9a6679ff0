"""The new-experiment form through the real app: a bad value shows the CLI's own message
for it, a good one starts the run on the run screen and it finishes; the form remembers
the last values; the sweep form starts a sweep."""

import asyncio
import json
import sys
from io import StringIO
from pathlib import Path

import pytest
from textual.widgets import Input, Select, Static

from acausal_tui.app import AcausalApp
from acausal_tui.cli import main
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.new_run import STATE_FILE, NewRunScreen, validate
from acausal_tui.screens.run import RunScreen
from acausal_tui.screens.sweep import SweepScreen
from engine.sweep import SweepPlan
from tests.tui.conftest import SIZE, wait_until


def cli_error(*flags: str) -> str:
    """What the command line says about `flags` (its one error line, prefix removed)."""
    stderr, sys.stderr = sys.stderr, StringIO()
    try:
        code = main(["run", "--headless", *flags])
        said = sys.stderr.getvalue()
    finally:
        sys.stderr = stderr
    assert code == 2
    return said.strip().removeprefix("acausal-tui: error: ")


async def open_form(pilot, key: str = "n") -> NewRunScreen:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, NewRunScreen))
    return pilot.app.screen


def fill(form: NewRunScreen, **values: str) -> None:
    for name, value in values.items():
        widget = form.query_one(f"#f-{name}")
        assert isinstance(widget, Input | Select)
        widget.value = value


@pytest.mark.parametrize(
    ("field", "value", "flags"),
    [  # every flag's message: tests/test_config_errors.py
        ("agents", "x", ("--agents", "x")),  # the flag parser's
        ("agents", "1", ("--agents", "1")),  # the validator's
        ("history", "last:0", None),  # a switch, not a flag
        ("provider", "openrouter", ("--provider", "openrouter")),  # no API key: found when it starts
    ],
)
async def test_a_bad_value_shows_the_clis_message(tmp_path, monkeypatch, field, value, flags):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    results = tmp_path / "results"
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        fill(form, **{field: value})
        await pilot.press("ctrl+s")
        await pilot.pause()
        shown = str(form.query_one("#form-error", Static).render())
        # in a thread: the CLI runs its own event loop
        expected = (
            await asyncio.to_thread(cli_error, *flags, "--results-dir", str(results))
            if flags
            else "switches.history: 'last:0' is not full, none or last:K with K >= 1"
        )
        assert shown == expected
        assert isinstance(app.screen, NewRunScreen)  # nothing started
    assert not results.exists() or not any(results.glob("exp_*"))


async def test_a_budget_no_call_fits_in_is_refused_by_the_form_as_by_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-form-budget-0123456789abcdef")
    results = tmp_path / "results"
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        fill(form, provider="openrouter", max_cost="0.0001")
        await pilot.press("ctrl+s")
        await pilot.pause()
        shown = str(form.query_one("#form-error", Static).render())
        flags = ("--provider", "openrouter", "--max-cost", "0.0001", "--results-dir", str(results))
        assert shown == await asyncio.to_thread(cli_error, *flags)
        assert "is below what the first call can cost" in shown
        assert isinstance(app.screen, NewRunScreen)
    assert not results.exists() or not any(results.glob("exp_*"))


async def test_start_an_experiment_from_the_form_and_see_it_finish(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    results = tmp_path / "results"
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        fill(form, agents="3", rounds="2", seed="11", condition="baseline", labels="shuffled")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen))
        await wait_until(pilot, lambda: app.status is not None, timeout=60)
        assert app.status == "completed"
        manifest = json.loads((Path(app.directory) / "manifest.json").read_text())
        assert (manifest["seed"], manifest["condition"]["name"], manifest["condition"]["labels"]) == (
            11,
            "baseline",
            "shuffled",
        )
        assert len(manifest["agents"]) == 3 and manifest["config"]["rounds"] == 2
    state = json.loads((results / STATE_FILE).read_text())
    assert state["agents"] == "3" and state["condition"] == "baseline"

    # the next form opens with the values last started
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot)
        assert form.query_one("#f-agents", Input).value == "3"
        assert form.query_one("#f-labels", Select).value == "shuffled"
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_start_a_sweep_from_the_form(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    app = AcausalApp(results_dir=tmp_path / "results")
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, "s")
        fill(form, agents="2", rounds="1", seed="3", conditions="baseline,nonsense", seeds="1")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "--conditions: nonsense: condition: unknown condition 'nonsense'" in str(
            form.query_one("#form-error", Static).render()
        )
        fill(form, conditions="baseline,identity")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen))
        await wait_until(pilot, lambda: app.status is not None, timeout=60)
        assert app.status == "completed"


@pytest.mark.parametrize("kind", ["run", "sweep"])
async def test_each_drawn_placeholder_is_what_a_blank_field_runs(tmp_path, monkeypatch, kind):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    results = tmp_path / "results"
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, "n" if kind == "run" else "s")
        await pilot.pause()
        target = validate(kind, form.values(), {})  # every field blank but the results dir
        config = target.base if isinstance(target, SweepPlan) else target
        ran = {
            "agents": config.agents,
            "rounds": config.rounds,
            "main_model": config.models.main,
            "sub_model": config.models.sub,
            "max_concurrency": config.provider.max_concurrency,
            "max_cost": config.provider.max_cost_usd,
        }
        if isinstance(target, SweepPlan):
            ran["seeds"] = len(target.seeds)
        for name, value in ran.items():
            drawn = form.query_one(f"#f-{name}", Input).render_line(0).text.strip()
            assert drawn == str(value), name
