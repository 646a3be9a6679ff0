"""Resume hands the `Experiment` a `Restored` (engine/state.py) built from the files: the
rebuilt state shows each agent exactly the history the uninterrupted run showed it, and
the run continues at the next round with the counters, notes and start time it is given."""

import re
from pathlib import Path

import anyio

from engine.control import RunControl
from engine.events import ErrorLogged, RoundSummarised, RunStarted
from engine.game import pairings
from engine.models import CallRecord, ErrorRecord, Manifest
from engine.prompts import NO_HISTORY
from engine.providers.factory import make_provider
from engine.resume import open_resume, restored
from engine.runner import Experiment, run_experiment
from engine.store import list_experiments, read_json, read_jsonl
from tests.support.fakes import FakeProvider, strategy_or

POPULATION = [{"kind": "llm", "count": 4}, {"kind": "scripted", "strategy": "tit_for_tat", "count": 1}]
HISTORY = re.compile(r"Game history so far:\n(.*)\n\nCurrent opponent", re.S)


def stopped_after(config, rounds: int, provider) -> Path:
    """Run `config` and abort it once round `rounds` is saved; its directory."""
    control = RunControl()

    class Stop:
        def on_event(self, event: object) -> None:
            if isinstance(event, RoundSummarised) and event.summary.round == rounds:
                control.abort()

    anyio.run(lambda: run_experiment(config, provider=provider, observer=Stop(), control=control))
    (loaded,) = list_experiments(Path(config.results_dir))
    return loaded.directory


def test_the_rebuilt_state_shows_each_agent_what_the_uninterrupted_run_showed_it(make_config, tmp_path):
    settings = {
        "agents": 5,
        "rounds": 4,
        "population": POPULATION,
        "switches": {"labels": "shuffled", "history": "last:2"},
    }
    whole = make_config(**settings, results_dir=str(tmp_path / "whole"))
    anyio.run(lambda: run_experiment(whole, provider=make_provider(whole, {})))
    (reference,) = list_experiments(tmp_path / "whole")
    calls, _ = read_jsonl(reference.directory / "calls.jsonl", CallRecord)
    prompted = {c.key: c.messages[0].content for c in calls}

    part = make_config(**settings, results_dir=str(tmp_path / "part"))
    resumable = open_resume(stopped_after(part, 2, make_provider(part, {})))
    try:
        state = restored(resumable).state
    finally:
        resumable.store.close()
    assert [s.round for s in state.summaries] == [1, 2]
    for agent in range(4):  # the LLM agents; round 3's first game of each shows its history
        key = next(
            k for k in sorted(prompted) if re.fullmatch(r"decision/r3/g\d+/p[12]/t0", k) and agent_of(k, 5) == agent
        )
        shown = HISTORY.search(prompted[key])
        assert shown is not None
        assert (state.history.text(agent, 3) or NO_HISTORY) == shown.group(1), key


def agent_of(key: str, agents: int) -> int:
    _, _, game, player, _ = key.split("/")
    return pairings(agents)[int(game[1:]) - 1][int(player[1:]) - 1]


def test_a_restored_experiment_continues_with_what_it_is_given(make_config):
    config = make_config(agents=3, rounds=3)
    provider = FakeProvider(strategy_or("COOPERATE"))
    directory = stopped_after(config, 1, provider)
    started = read_json(directory / "manifest.json", Manifest).start_time
    resumable = open_resume(directory)
    restoring = restored(resumable)
    restoring.notes = ["a note about a repair"]
    restoring.error_count = 5
    seen: list[object] = []

    class Observer:
        def on_event(self, event: object) -> None:
            seen.append(event)

    try:
        experiment = Experiment(resumable.config, resumable.store, provider, Observer(), restored=restoring)
        result = anyio.run(experiment.run)
    finally:
        resumable.store.close()
    assert result.status == "completed" and result.total_rounds == 3
    assert result.start_time == started
    assert result.error_count == 5  # the clean rounds add none; the note is not counted
    first = next(e for e in seen if isinstance(e, RunStarted | ErrorLogged))
    assert isinstance(first, ErrorLogged) and first.record.type == "resume_repair"
    assert next(e for e in seen if isinstance(e, RunStarted)).first_round == 2
    errors, _ = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    assert [e.message for e in errors if e.type == "resume_repair"] == ["a note about a repair"]
    calls, _ = read_jsonl(directory / "calls.jsonl", CallRecord)
    assert result.total_api_calls == len(calls)  # one attempt each: the counters went on from round 1's


def test_the_replay_map_holds_only_the_calls_of_the_rounds_played_again(make_config):
    """Not the whole call log: at 100 agents that is every prompt of every round, held in
    memory for the whole resumed run. Earlier rounds' calls are never asked for again."""
    from engine.calls import round_of

    config = make_config(agents=5, rounds=4)
    directory = stopped_after(config, 2, make_provider(config, {}))
    resumable = open_resume(directory)
    try:
        rest = restored(resumable)
        logged = {c.key for c in resumable.calls if c.reply is not None}
    finally:
        resumable.store.close()
    assert resumable.next_round == 3
    assert {round_of(key) for key in logged} >= {1, 2}  # the log has them ...
    assert all(round_of(key) >= 3 for key in rest.replay)  # ... the map does not
    assert set(rest.replay) == {key for key in logged if round_of(key) >= 3}


def test_a_resumed_run_lets_go_of_the_call_log_it_was_opened_with(make_config):
    from engine.resume import resume_experiment

    config = make_config(agents=5, rounds=4)
    directory = stopped_after(config, 2, make_provider(config, {}))
    resumable = open_resume(directory)
    assert resumable.calls
    seen: list[int] = []

    class During:
        def on_event(self, event: object) -> None:
            if isinstance(event, RoundSummarised):
                seen.append(len(resumable.calls))

    result = anyio.run(lambda: resume_experiment(resumable, make_provider(config, {}), During()))
    assert result.status == "completed" and seen == [0, 0]
