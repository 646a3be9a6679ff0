"""The decision corpus through the real engine over HTTP: against the local stub server,
each agent's sub model always answers in one style of tests/corpora/decisions.jsonl (the
first ask and the follow-ups alike). Every model move of the run is the labelled move or
is flagged as a fallback; none is flipped."""

import itertools
import re
from pathlib import Path

import pytest

from engine.models import GameResult, StrategyRecord
from engine.store import read_json
from tests.support import stub_server as stub
from tests.support.corpora import DECISION_CORPUS
from tests.support.stub_run import run_against

KEY = "sk-or-v1-stub-parsing-0123456789abcdef"
_STYLE = re.compile(r"Your strategy:\nanswer in style (\d+)\n")


# a style each, chosen for replies the old rules flipped (answer first, negation, JSON with
# reasons, cut off) and for replies read by each rule or sent to a follow-up
STYLES = ["answer_first", "fenced_json", "negation", "cut_off", "reversal", "label", "empty"]


def one_per_style() -> list[dict]:
    """The first reply of each chosen style that the parser does not read at once, if any
    (the hard case), else the first one."""
    from engine.parsing import parse_decision

    rows = []
    for style in STYLES:
        of_style = [row for row in DECISION_CORPUS if row["style"] == style]
        hard = [row for row in of_style if parse_decision(row["reply"], row["finish_reason"]).action is None]
        rows.append((hard or of_style)[0])
    # and the answer-first example, which the parser reads
    rows.append(next(row for row in DECISION_CORPUS if row["reply"].startswith("COOPERATE\n\nGiven my strategy")))
    return rows


@pytest.fixture(autouse=True)
def api_key(monkeypatch, fast_backoff):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)


def test_sub_models_answering_in_one_style_are_read_right_or_flagged(tmp_path: Path, server) -> None:
    rows = one_per_style()
    styles = itertools.count()

    def rule(seen: stub.Seen) -> stub.Reply | None:
        messages = seen.body.get("messages", []) if isinstance(seen.body, dict) else []
        prompt = messages[0].get("content", "") if messages else ""
        if stub.DECISION_MARKER not in prompt:  # a strategy call: the agent's style, by number
            return stub.completion(f"Reasoning.\nSTRATEGY: answer in style {next(styles) % len(rows)}")
        row = rows[int(_STYLE.search(prompt)[1])]
        return stub.completion(row["reply"], finish_reason=row["finish_reason"] or "stop")

    server.rule = rule
    _, directory = run_against(tmp_path, server, agents=len(rows), rounds=1, seed=3)
    assert directory is not None
    strategies = read_json(directory / "rounds" / "strategies_r1.json", list[StrategyRecord])
    style_of = {s.agent_id: int(s.strategy_text.rsplit(" ", 1)[1]) for s in strategies}
    assert sorted(style_of.values()) == list(range(len(rows)))  # one agent per style
    games = read_json(directory / "rounds" / "games_r1.json", list[GameResult])
    moves = [(g.player1_id, g.player1_action, g.player1_fallback) for g in games] + [
        (g.player2_id, g.player2_action, g.player2_fallback) for g in games
    ]
    assert len(moves) == len(rows) * (len(rows) - 1)
    read = 0
    for agent, action, fallback in moves:
        row = rows[style_of[agent]]
        assert fallback is not None or action == row["expected"], (action, row)
        read += fallback is None
    assert read > 0
