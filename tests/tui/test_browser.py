"""The experiment browser over the fixture results directory (which includes a corrupt, an
aborted and an interrupted experiment), and in-app navigation down to one agent's history."""

import json
import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable, Select, Static, TabbedContent

from acausal_tui.app import AcausalApp
from acausal_tui.cli import main
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.experiment import ExperimentScreen
from acausal_tui.screens.run import RunScreen
from acausal_tui.widgets.text import money_at_least
from tests.tui.conftest import FIXTURE_RESULTS, SIZE, cells, open_browser, screen_text, wait_until


async def test_every_experiment_is_listed_newest_first_even_broken_ones(notifications):
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        assert cells(table, 0) == [
            "exp_20250104_110000",
            "exp_20250103_100000",
            "exp_20250102_093000",
            "exp_20250101_090000",
        ]
        assert cells(table, 2) == ["unreadable", "interrupted", "aborted", "completed"]
        assert cells(table, 3) == ["—", "1/3", "2/3", "3/3"]
        assert "manifest.json" in cells(table, 9)[0]
        assert "exp_20250104_110000: manifest.json: Input data was truncated" in screen_text(app)
        # Opening the unreadable one explains why instead of opening it.
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, BrowserScreen)
        assert [title for title, _ in notifications] == ["exp_20250104_110000 is unreadable"]


async def test_navigation_down_to_one_agents_history_and_back():
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot)
        await pilot.press("ctrl+end", "enter")  # the oldest: the completed experiment
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, ExperimentScreen)
        assert detail.query_one("#rounds-table", DataTable).row_count == 3

        await pilot.press("2")
        assert detail.query_one(TabbedContent).active == "games"
        games = detail.query_one("#games-table", DataTable)
        assert games.row_count == 6  # 4 agents: 6 games in round 3
        detail.query_one("#games-agent", Select).value = 3
        await pilot.pause()
        assert games.row_count == 3
        assert all("3 " in (a[:2], b[:2]) for a, b in zip(cells(games, 1), cells(games, 2), strict=True))

        await pilot.press("3")
        detail.query_one("#history-agent", Select).value = 1
        detail.query_one("#history-round", Select).value = 3
        await pilot.pause()
        history = str(detail.query_one("#history-text", Static).content)
        assert history.startswith("Agent 1 (llm) — what its decisions in round 3 saw")
        assert "Round 1 vs Opponent " in history and "Round 2 vs Opponent " in history
        assert "Round 3 vs Opponent" in history.split("Its round 3 games")[1]

        await pilot.press("4")
        assert "Full reasoning:" in str(detail.query_one("#strategies-text", Static).content)
        await pilot.press("5")
        assert "From experiment_results.json" in screen_text(app)

        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)
        await pilot.press("escape")  # the browser is the first screen here: nothing to go back to
        assert isinstance(app.screen, BrowserScreen)


async def test_an_interrupted_experiment_opens_with_indicators_from_its_round_files():
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ExperimentScreen)
        assert "partial: interrupted" in screen_text(app)  # as the list says: no process holds it
        await pilot.press("5")
        assert "No result file: computed from the round files" in screen_text(app)


async def test_an_interrupted_experiment_shows_what_its_call_log_says_it_cost(tmp_path):
    """No result file: the row's cost and the detail's title come from calls.jsonl, as a
    lower bound ("≥": calls in flight when it died are not logged)."""
    name = "exp_20250103_100000"
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS / name, results / name)
    log = results / name / "calls.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for line in lines:
        line["cost"] = 0.001
    lines[0]["cost_is_estimate"] = True
    log.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"key": "torn')
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        assert cells(table, 8) == [f"≥~${0.001 * len(lines):.4f}"]
        assert "no result file; cost so far from calls.jsonl" in screen_text(app)
        await pilot.press("enter")
        shown = f"{len(lines)} calls · cost ≥~${0.001 * len(lines):.4f} so"  # the title wraps at 120 columns
        await wait_until(pilot, lambda: shown in screen_text(app))
        assert "far (calls.jsonl)" in screen_text(app)


async def test_a_resume_killed_before_its_result_shows_as_interrupted_not_the_stale_result(tmp_path):
    """A result file beside a manifest saying `running` is the result of the stop the resume
    went on from: the title says partial and takes its calls and cost from calls.jsonl."""
    name = "exp_20250101_090000"
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS / name, results / name)
    manifest = json.loads((results / name / "manifest.json").read_text())
    manifest["status"], manifest["unclean_stops"] = "running", 1
    (results / name / "manifest.json").write_text(json.dumps(manifest))
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        assert cells(table, 2) == ["interrupted"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: "(calls.jsonl)" in screen_text(app))  # the title may wrap before it
        assert "partial: interrupted" in screen_text(app) and "cost ≥$0.0000" in screen_text(app)


async def test_a_result_resumed_after_a_kill_says_so_in_the_title(tmp_path):
    name = "exp_20250101_090000"
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS / name, results / name)
    path = results / name / "experiment_results.json"
    result = json.loads(path.read_text())
    result["unclean_stops"] = 1
    path.write_text(json.dumps(result))
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot)
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: "resumed after a kill or crash once: any calls in flight then" in screen_text(app)
        )


async def test_an_interrupted_cost_sorts_among_the_numbers(tmp_path):
    """Sorted by cost, "≥$0.0000" goes before "$0.5000", as the number it is (it sorted as
    text, after every figure)."""
    results = tmp_path / "results"
    for each in ("exp_20250103_100000", "exp_20250102_093000"):
        shutil.copytree(FIXTURE_RESULTS / each, results / each)
    aborted = results / "exp_20250102_093000"
    result = json.loads((aborted / "experiment_results.json").read_text())
    result["total_cost"] = 0.5
    (aborted / "experiment_results.json").write_text(json.dumps(result))
    (aborted / "index.json").unlink()  # rebuilt from the files
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        screen.sort_column = 8  # Cost
        screen.draw()
        await pilot.pause()
        assert cells(table, 8) == ["≥$0.0000", "$0.5000"]


@pytest.fixture
def guessed_run(tmp_path, monkeypatch) -> Path:
    """Results with one experiment: seed 1 at 6 x 4 on the simulated provider, where one
    strategy has no STRATEGY: line (run headless, outside the test's event loop)."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    results = tmp_path / "results"
    assert (
        main(["run", "--headless", "--agents", "6", "--rounds", "4", "--seed", "1", "--results-dir", str(results)]) == 0
    )
    return results


async def test_the_indicators_tab_says_how_many_rules_were_guessed(guessed_run):
    """A result whose validity counted guessed rules says so under the indicators' source."""
    app = AcausalApp(results_dir=guessed_run)
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ExperimentScreen))
        await pilot.press("5")
        await wait_until(pilot, lambda: "rule guessed in 1 of 24 fresh strategies" in screen_text(app))


@pytest.fixture
def scripted_without_history(tmp_path, monkeypatch) -> Path:
    """3 LLM agents (0-2) and 2 tit-for-tat agents (3-4), `history = "none"`, 3 rounds."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(
        '[switches]\nhistory = "none"\n[[population]]\nkind = "llm"\ncount = 3\n'
        '[[population]]\nkind = "scripted"\nstrategy = "tit_for_tat"\ncount = 2\n'
    )
    results = tmp_path / "results"
    assert (
        main(
            [
                "run",
                "--headless",
                "--config",
                str(config),
                "--rounds",
                "3",
                "--seed",
                "7",
                "--results-dir",
                str(results),
            ]
        )
        == 0
    )
    return results


async def test_a_scripted_agents_history_is_all_it_read_whatever_the_llms_window(scripted_without_history):
    """A scripted rule reads every earlier game with its opponent, so its History tab shows
    them all under `history = "none"` (it showed "No previous games" while the agent copied
    last round's defections), and its games are seen by its later decisions; an LLM agent's
    shows none."""
    app = AcausalApp(results_dir=scripted_without_history)
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ExperimentScreen))
        detail = app.screen
        await pilot.press("3")
        text = detail.query_one("#history-text", Static)
        for agent, round, shown in ((3, 3, True), (3, 2, True), (0, 3, False)):
            detail.query_one("#history-agent", Select).value = agent
            detail.query_one("#history-round", Select).value = round
            await pilot.pause()
            history = str(text.content)
            assert ("Round 1 vs Opponent " in history.split("Current opponents")[0]) is shown, (agent, round)
            if agent == 3 and round == 2:
                assert "Its round 2 games (history of round 3):" in history
            if agent == 0:
                assert "Its round 3 games (history none: no decision sees them):" in history


async def test_a_corrupt_round_file_is_reported_in_place(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(FIXTURE_RESULTS / "exp_20250101_090000", results / "exp_20250101_090000")
    (results / "exp_20250101_090000" / "rounds" / "games_r2.json").write_text("{oops")
    app = AcausalApp(results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot)
        await pilot.press("enter", "3")
        detail = app.screen
        detail.query_one("#history-round", Select).value = 3
        await pilot.pause()
        assert "games_r2.json could not be read" in str(detail.query_one("#history-text", Static).content)
        await pilot.press("2")
        detail.query_one("#games-round", Select).value = 2
        await pilot.pause()
        assert "games_r2.json could not be read" in str(detail.query_one("#games-problem", Static).content)
        assert detail.query_one("#games-table", DataTable).row_count == 0


async def test_browse_from_a_run_and_back(run_app):
    app = run_app(agents=3, rounds=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("b")
        table = await open_browser(pilot)
        assert cells(table, 0) == [Path(app.directory).name]
        await pilot.press("escape")
        assert isinstance(app.screen, RunScreen)


async def test_an_empty_or_missing_results_directory(tmp_path):
    app = AcausalApp(results_dir=tmp_path / "nothing")
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        assert table.row_count == 0
        assert f"{tmp_path / 'nothing'} does not exist (yet): no experiments" in screen_text(app)
    (tmp_path / "empty").mkdir()
    app = AcausalApp(results_dir=tmp_path / "empty")
    async with app.run_test(size=SIZE) as pilot:
        table = await open_browser(pilot)
        assert table.row_count == 0
        assert "no experiments here yet" in screen_text(app)


async def test_digits_switch_tabs_while_a_round_dropdown_has_focus():
    app = AcausalApp(results_dir=FIXTURE_RESULTS)
    async with app.run_test(size=SIZE) as pilot:
        await open_browser(pilot)
        await pilot.press("ctrl+end", "enter")
        await pilot.pause()
        detail = app.screen
        assert isinstance(detail, ExperimentScreen)
        await pilot.press("2")
        detail.query_one("#games-round", Select).focus()
        await pilot.pause()
        assert "3 History" in screen_text(app).splitlines()[-1]  # the footer offers the digits
        await pilot.press("3")
        await pilot.pause()
        assert detail.query_one(TabbedContent).active == "history"
        detail.query_one("#history-round", Select).focus()
        await pilot.press("5")
        await pilot.pause()
        assert detail.query_one(TabbedContent).active == "indicators"
        assert "From experiment_results.json" in screen_text(app)


def test_a_lower_bound_of_cost_is_rounded_down():
    """ "≥$0.0073" for a log that says $0.0072553 would claim more than it knows."""
    assert money_at_least(0.0072553) == "≥$0.0072"
    assert money_at_least(sum([0.001] * 52)) == "≥$0.0520"  # a float sum just under: not $0.0519
    assert money_at_least(0.5, estimate=True) == "≥~$0.5000"
    assert money_at_least(1e305) == "≥$1e+305"  # a damaged log's sum: shown, not an OverflowError
