"""The run screen's per-agent table (t), updated per round from the engine's events."""

import json
from pathlib import Path

from acausal_tui.widgets.agents import AgentsTable, sparkline
from tests.tui.conftest import SIZE, screen_text


def test_sparkline_is_on_a_fixed_scale():
    assert sparkline([50, 100, 150]) == "▁▄█"
    assert sparkline([40, 160]) == "▁█"  # outside the clamp range: the ends


async def test_the_agents_table_matches_the_saved_result(run_app):
    app = run_app(
        agents=4,
        rounds=3,
        population=[{"kind": "llm", "count": 3}, {"kind": "scripted", "strategy": "grudger", "count": 1}],
    )
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        table = app.screen.query_one(AgentsTable)
        assert table.display and table.row_count == 4
        result = json.loads((Path(app.directory) / "experiment_results.json").read_text())
        for agent in result["agents"]:
            row = [str(c) for c in table.get_row(str(agent["id"]))]
            assert row[1] == agent["kind"]
            assert row[3] == f"{agent['final_power']:.1f}" and row[5] == f"{agent['total_score']:.2f}"
            assert len(row[7]) == 4  # initial power and one point per round
        assert "grudger" in screen_text(app)
        await pilot.press("t")
        assert not table.display
