"""What agent i saw in round r (engine/views.py): the history and opponent labels the
browser rebuilds from the games files are exactly what the runner put in the decision
prompts recorded in calls.jsonl (labels, order, history window)."""

import re
from pathlib import Path

import anyio
import pytest

from engine.conditions import Condition
from engine.game import pairings
from engine.models import CallRecord
from engine.prompts import NO_HISTORY
from engine.providers.factory import make_provider
from engine.runner import run_experiment
from engine.store import load_experiment, read_jsonl
from engine.views import agent_lines, game_number, opponents_in_round, seen_history, seen_text, shown_later

PROMPT = re.compile(r"Game history so far:\n(.*)\n\nCurrent opponent: Opponent (\S+)\n", re.S)
DECISION = re.compile(r"decision/r(\d+)/g(\d+)/p([12])/t0")


@pytest.mark.parametrize(
    "switches", [{}, {"labels": "shuffled"}, {"history": "last:1"}, {"history": "last:2"}, {"history": "none"}]
)
def test_the_browsers_history_is_what_the_runner_prompted(make_config, switches):
    config = make_config(
        agents=5,
        rounds=4,
        switches=switches,
        population=[{"kind": "llm", "count": 4}, {"kind": "scripted", "strategy": "grudger", "count": 1}],
    )
    result = anyio.run(lambda: run_experiment(config, provider=make_provider(config, {})))
    loaded = load_experiment(Path(config.results_dir) / result.experiment_id)
    manifest = loaded.manifest
    assert manifest is not None
    seed, condition = manifest.seed, manifest.condition
    games = {r: loaded.games(r) for r in loaded.summaries}
    calls, bad = read_jsonl(loaded.directory / "calls.jsonl", CallRecord)
    assert not bad
    pairs = pairings(5)
    checked = 0
    for call in calls:
        match = DECISION.fullmatch(call.key)
        if not match:
            continue
        round, k, player = (int(x) for x in match.groups())
        agent = pairs[k - 1][player - 1]
        shown = PROMPT.search(call.messages[0].content)
        assert shown is not None, call.key
        history, label = shown.groups()
        lines = agent_lines(games, agent, seed, 5, condition)
        assert history == (seen_history(lines, round, condition) or NO_HISTORY), call.key
        mine = sorted((g for g in games[round] if agent in (g.player1_id, g.player2_id)), key=game_number)
        at = [game_number(g) for g in mine].index(k)
        assert opponents_in_round(games[round], agent, seed, 5, condition, round)[at] == label, call.key
        checked += 1
    assert checked == 4 * 10 * 2 - 4 * 4  # every LLM move of every game; the scripted agent has no prompt


@pytest.mark.parametrize(
    ("round", "window", "expected"),
    [
        (3, None, ["r1a", "r1b", "r2"]),  # all earlier rounds, never the round itself
        (3, 1, ["r2"]),
        (4, 2, ["r2", "r3"]),
        (3, 0, []),
        (1, None, []),
    ],
)
def test_the_history_block_is_the_earlier_rounds_cut_to_the_window(round, window, expected):
    lines = [(1, "r1a"), (1, "r1b"), (2, "r2"), (3, "r3")]
    assert seen_text(lines, round, window) == "\n".join(expected)


@pytest.mark.parametrize("history", ["full", "none", "last:1", "last:2", "last:9"])
def test_the_games_note_names_the_rounds_whose_history_shows_them(history):
    """The History tab's "(history …)" note after a round's games agrees with what the
    prompts of the later rounds show (seen_text), the last round included."""
    rounds = 5
    lines = [(r, f"r{r}") for r in range(1, rounds + 1)]
    condition = Condition(name="c", identity=False, history=history)
    for r in range(1, rounds + 1):
        seen_by = [later for later in range(r + 1, rounds + 1) if f"r{r}" in seen_history(lines, later, condition)]
        note = shown_later(r, rounds, condition)
        if not seen_by:
            assert "no" in note and "sees them" in note, (r, note)
        elif len(seen_by) == 1:
            assert note == f"history of round {seen_by[0]}"
        elif seen_by[-1] == rounds and history == "full":
            assert note == f"history from round {seen_by[0]} on"
        else:
            assert note == f"history of rounds {seen_by[0]} to {seen_by[-1]}"
