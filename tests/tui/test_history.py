"""One agent's history, rebuilt from the games files, is exactly what its decision prompts
showed it (labels, order, history window)."""

import re
from pathlib import Path

import anyio
import pytest

from acausal_tui.screens.history import agent_lines, opponents_in_round, seen_history
from engine.game import pairings
from engine.prompts import NO_HISTORY
from engine.providers.base import ChatRequest, Completion
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment
from engine.store import load_experiment

PROMPT = re.compile(r"Game history so far:\n(.*)\n\nCurrent opponent: Opponent (\S+)\n", re.S)


class Recording(SimulatedProvider):
    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.prompts: dict[str, str] = {}

    async def complete(self, request: ChatRequest) -> Completion:
        self.prompts[request.key] = request.messages[0].content
        return await super().complete(request)


@pytest.mark.parametrize("switches", [{}, {"labels": "shuffled"}, {"history": "last:1"}, {"history": "none"}])
def test_rebuilt_history_equals_what_the_prompts_showed(make_config, switches):
    config = make_config(agents=5, rounds=4, switches=switches,
                         population=[{"kind": "llm", "count": 4},
                                     {"kind": "scripted", "strategy": "grudger", "count": 1}])
    provider = Recording(config.seed)
    result = anyio.run(lambda: run_experiment(config, provider=provider))
    loaded = load_experiment(Path(config.results_dir) / result.experiment_id)
    manifest = loaded.manifest
    assert manifest is not None
    games = {r: loaded.games(r) for r in loaded.summaries}
    pairs = pairings(5)
    checked = 0
    for key, prompt in provider.prompts.items():
        match = re.fullmatch(r"decision/r(\d+)/g(\d+)/p([12])/t0", key)
        if not match:
            continue
        round, k, player = (int(x) for x in match.groups())
        agent = pairs[k - 1][player - 1]
        lines = agent_lines(games, agent, manifest.seed, 5, manifest.condition)
        shown = PROMPT.search(prompt)
        assert shown is not None, prompt
        history, label = shown.groups()
        assert history == (seen_history(lines, round, manifest.condition) or NO_HISTORY), key
        assert label in opponents_in_round(games[round], agent, manifest.seed, 5, manifest.condition, round)
        checked += 1
    assert checked == 4 * 10 * 2 - 4 * 4  # every LLM move of every game; the scripted agent has no prompt
