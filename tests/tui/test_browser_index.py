"""index.json: written with each round and at the end, built on first open for older
experiments, rebuilt when stale; the browser reads it, filters, sorts and groups sweeps."""

import os
import shutil
from pathlib import Path

import anyio
import msgspec
from textual.widgets import DataTable, Input

from acausal_tui.app import AcausalApp
from acausal_tui.screens import browser
from engine import index as index_module
from engine.index import INDEX_FILE, IndexEntry, read_index
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment, utc_now
from engine.store import ExperimentStore, new_experiment_dir, read_json
from engine.sweep import plan_sweep, run_sweep
from tests.tui.conftest import FIXTURE_RESULTS, SIZE, cells, screen_text

COMPLETED = "exp_20250101_090000"


class IndexAfterEachRound:
    """Observer: the index as it is when each round is summarised."""

    def __init__(self) -> None:
        self.seen: list[IndexEntry] = []
        self.directory: Path | None = None

    def on_event(self, event) -> None:
        from engine.events import RoundSummarised, RunStarted

        if isinstance(event, RunStarted):
            self.directory = event.directory
        if isinstance(event, RoundSummarised) and self.directory is not None:
            self.seen.append(read_json(self.directory / INDEX_FILE, IndexEntry))


def test_the_run_writes_the_index_each_round_and_at_the_end(make_config):
    config = make_config(agents=3, rounds=3)
    store = ExperimentStore(new_experiment_dir(Path(config.results_dir), utc_now()))
    watcher = IndexAfterEachRound()
    try:
        result = anyio.run(
            lambda: run_experiment(config, provider=SimulatedProvider(seed=7), observer=watcher, store=store)
        )
    finally:
        store.close()
    assert [(e.status, e.rounds_done) for e in watcher.seen] == [("running", 1), ("running", 2), ("running", 3)]
    final = read_json(store.directory / INDEX_FILE, IndexEntry)
    assert (final.status, final.rounds_done, final.rounds, final.agents) == ("completed", 3, 3, 3)
    assert final.cooperation == result.acausal_indicators.overall_cooperation_rate
    assert final.has_result and final.simulated and final.provider == "simulated"
    assert final.valid == (result.validity.valid if result.validity else None)


def test_an_old_experiment_is_indexed_on_first_open_and_read_from_it_after(tmp_path, monkeypatch):
    directory = tmp_path / COMPLETED
    shutil.copytree(FIXTURE_RESULTS / COMPLETED, directory, ignore=shutil.ignore_patterns(INDEX_FILE))
    assert not (directory / INDEX_FILE).exists()
    entry, problems = read_index(directory)
    assert entry is not None and not problems and (directory / INDEX_FILE).exists()
    assert (entry.status, entry.rounds_done, entry.condition) == ("completed", 3, "identity")

    def no_full_load(_: Path):
        raise AssertionError("the full results were read although the index is fresh")

    monkeypatch.setattr(index_module, "load_experiment", no_full_load)
    assert read_index(directory)[0] == entry


def test_a_stale_index_is_rebuilt(tmp_path):
    directory = tmp_path / COMPLETED
    shutil.copytree(FIXTURE_RESULTS / COMPLETED, directory, ignore=shutil.ignore_patterns(INDEX_FILE))
    read_index(directory)
    stale = msgspec.structs.replace(read_json(directory / INDEX_FILE, IndexEntry), condition="old")
    (directory / INDEX_FILE).write_bytes(msgspec.json.encode(stale))
    assert read_index(directory)[0].condition == "old"  # fresh: trusted
    later = (directory / INDEX_FILE).stat().st_mtime + 10
    os.utime(directory / "experiment_results.json", (later, later))
    assert read_index(directory)[0].condition == "identity"


async def test_filter_sort_and_sweeps_grouped(tmp_path):
    results = tmp_path / "results"
    for name in ("exp_20250101_090000", "exp_20250102_093000", "exp_20250103_100000"):
        shutil.copytree(FIXTURE_RESULTS / name, results / name)
    plan = plan_sweep(
        None,
        {"agents": 2, "rounds": 1, "seed": 5, "provider": {"name": "simulated"}, "results_dir": str(results)},
        "baseline,identity",
        1,
        env={},
    )
    providers = [SimulatedProvider(seed=c.seed or 0) for _, c in plan.runs()]
    _, sweep = await run_sweep(plan, providers)
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        names = cells(table, 0)
        assert names[:3] == ["exp_20250103_100000", "exp_20250102_093000", "exp_20250101_090000"]
        assert names[3:] == [sweep.name, "  └ exp_baseline_s5", "  └ exp_identity_s5"]

        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"status:aborted")
        await pilot.pause()
        assert cells(table, 0) == ["exp_20250102_093000"]
        app.focused.value = "condition:baseline"
        await pilot.pause()
        # the sweep is shown with its matching experiment
        assert cells(table, 0) == ["exp_20250102_093000", sweep.name, "  └ exp_baseline_s5"]
        app.focused.value = "model:gemini interrupted"
        await pilot.pause()
        assert cells(table, 0) == ["exp_20250103_100000"]
        app.focused.value = ""
        await pilot.press("enter")  # back to the table
        assert isinstance(app.focused, DataTable)

        await pilot.press(*"o" * 3)  # Experiment, Status, Rounds (the order on screen)
        assert browser.COLUMNS[app.screen.sort_column] == "Rounds"
        rounds = cells(table, 3)
        top = [r for r, name in zip(rounds, cells(table, 0), strict=True) if not name.startswith("  └")]
        assert top == sorted(top, key=lambda r: float(r.split("/")[0]))
        assert "sorted by Rounds" in screen_text(app)
        names = cells(table, 0)
        assert names[names.index(sweep.name) + 1].startswith("  └")  # children follow their sweep
