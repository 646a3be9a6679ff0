"""Resuming a sweep in the app: the sweep screen opens on the sweep as saved, the
experiments already completed shown as such, and finishes the rest."""

import json
import shutil

from textual.widgets import DataTable, Static

from acausal_tui.app import AcausalApp
from acausal_tui.screens.sweep import SweepScreen
from engine.providers.factory import make_provider
from engine.store import read_json
from engine.sweep import SWEEP_FILE, SweepResult, plan_resume, plan_sweep, resume_sweep, run_sweep
from tests.tui.conftest import SIZE


async def test_the_sweep_screen_finishes_a_resumed_sweep(tmp_path):
    results = tmp_path / "results"
    settings = {"agents": 3, "rounds": 2, "seed": 7, "provider": {"name": "simulated"}, "results_dir": str(results)}
    sweep = plan_sweep(None, settings, "baseline,identity", 3, env={})
    whole, directory = await run_sweep(sweep, [make_provider(config) for _, config in sweep.runs()])
    data = json.loads((directory / SWEEP_FILE).read_text())
    for index in (1, 4):  # as if killed before these two started
        data["experiments"][index]["status"] = "pending"
        shutil.rmtree(directory / data["experiments"][index]["directory"])
    data["status"] = "running"
    (directory / SWEEP_FILE).write_text(json.dumps(data))

    plan = plan_resume(directory)
    assert [(run.directory, resume) for run, _, resume in plan.todo] == [
        ("exp_baseline_s8", False),
        ("exp_identity_s8", False),
    ]
    providers = [make_provider(config) for _, config, _ in plan.todo]

    async def run(observer, control):
        return await resume_sweep(plan, providers, observer=observer, control=control)

    app = AcausalApp(sweep=run, results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen_stack[0]
        assert isinstance(screen, SweepScreen) and app.status == "completed"
        assert str(screen.query_one("#sweep-label", Static).content) == "Experiments 6/6 finished"
        table = screen.query_one("#sweep-experiments", DataTable)
        assert {str(table.get_row(key)[2]) for key in table.rows} == {"completed"}
    resumed = read_json(directory / SWEEP_FILE, SweepResult)
    assert resumed.summary == whole.summary and resumed.differences == whole.differences
