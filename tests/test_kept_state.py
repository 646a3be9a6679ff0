"""What a run keeps in memory between rounds, and the result it still computes whole: the
games and strategies of played rounds live in the round files only (the result is read back
from them), a summary older than the prompts show keeps its figures but not its anonymised
games, a history keeps only the rounds its decisions can still show, and the overall rates
after each round come from running counts."""

import random
from pathlib import Path

import msgspec
import pytest

from engine.conditions import PRESETS
from engine.events import RoundSummarised
from engine.models import AgentInfo, GameResult, RoundSummary, StrategyRecord
from engine.moves import MoveTally, all_moves, cooperation_rate, fallback_share
from engine.providers.factory import make_provider
from engine.runner import run_experiment
from engine.state import ExperimentState
from engine.store import list_experiments, read_json
from engine.views import History

C, D = "COOPERATE", "DEFECT"


def random_games(rng: random.Random, count: int, round: int = 1) -> list[GameResult]:
    def fallback() -> str | None:
        return rng.choice([None, None, None, "ambiguous reply after 3 tries"])

    return [
        GameResult(
            game_id=f"r{round}_g{k}",
            round=round,
            player1_id=0,
            player2_id=1,
            player1_action=rng.choice([C, D]),
            player2_action=rng.choice([C, D]),
            player1_payoff=0.0,
            player2_payoff=0.0,
            player1_power_before=100.0,
            player2_power_before=100.0,
            player1_fallback=fallback(),
            player2_fallback=fallback(),
            timestamp="",
        )
        for k in range(1, count + 1)
    ]


@pytest.mark.parametrize("seed", range(20))
def test_running_counts_give_the_rates_over_every_move(seed):
    rng = random.Random(seed)
    tally, games = MoveTally(), []
    for _ in range(rng.randint(0, 5)):
        batch = random_games(rng, rng.randint(0, 6))
        tally.add(batch)
        games += batch
        moves = all_moves(games)
        assert tally.cooperation_rate == cooperation_rate(moves)
        assert tally.fallback_share == fallback_share(moves)
    if not games:
        assert tally.cooperation_rate is None and tally.fallback_share is None


def test_a_history_keeps_only_the_rounds_its_window_shows():
    rng = random.Random(1)
    condition = PRESETS["baseline"]
    windowed = History(1, 2, msgspec.structs.replace(condition, history="last:2"), [0, 1])
    full = History(1, 2, condition, [0, 1])
    for round in range(1, 6):
        games = random_games(rng, 3, round)
        windowed.add_round(round, games)
        full.add_round(round, games)
        assert [r for r, _ in windowed.lines[0]] == list(range(max(1, round - 1), round + 1))
        # what the next round's decisions see is the same either way
        assert windowed.text(0, round + 1) == "\n".join(full.text(0, round + 1).splitlines()[-6:])
    assert len(full.lines[0]) == 1  # the whole history: one text, not one per line or round
    assert full.text(0, 6).count("\n") == 14  # 15 lines: 3 games a round
    assert full.text(0, 6) is full.lines[0][0][1]  # shown as kept, not copied


def summary(round: int) -> RoundSummary:
    rng = random.Random(round)
    games = random_games(rng, 1, round)
    from engine.analysis import summarize_round

    return summarize_round(round, games, 2, [100.0, 100.0], {0: "Player_1", 1: "Player_2"}, None, 1.0)


def test_only_the_summaries_the_prompts_show_keep_their_games():
    state = ExperimentState.start(1, [AgentInfo(id=0, kind="llm"), AgentInfo(id=1, kind="llm")], PRESETS["baseline"])
    full = [summary(r) for r in range(1, 7)]
    for s in full:
        state.add_summary(s)
    assert [bool(s.anonymized_games) for s in state.summaries] == [False, False, False, True, True, True]
    for kept, whole in zip(state.summaries, full, strict=True):  # the figures stay
        assert kept.round == whole.round and kept.cooperation_rate == whole.cooperation_rate
        assert kept.strategy_similarity == whole.strategy_similarity


async def test_the_result_is_the_round_files_and_the_live_rates_are_every_move_so_far(make_config):
    config = make_config(agents=5, rounds=6)
    summarised: list[RoundSummarised] = []

    class Observer:
        def on_event(self, event: object) -> None:
            if isinstance(event, RoundSummarised):
                summarised.append(event)

    result = await run_experiment(config, provider=make_provider(config, {}), observer=Observer())
    assert result.status == "completed"
    (loaded,) = list_experiments(Path(config.results_dir))
    rounds = loaded.directory / "rounds"
    games = [read_json(rounds / f"games_r{r}.json", list[GameResult]) for r in range(1, 7)]
    strategies = [read_json(rounds / f"strategies_r{r}.json", list[StrategyRecord]) for r in range(1, 7)]
    assert result.round_summaries == [read_json(rounds / f"summary_r{r}.json", RoundSummary) for r in range(1, 7)]
    assert all(s.anonymized_games for s in result.round_summaries)  # whole, old rounds too
    assert result.total_games == sum(map(len, games)) == 60
    assert len(strategies) == 6 and all(len(s) == 5 for s in strategies)
    for event, upto in zip(summarised, range(1, 7), strict=True):
        moves = all_moves(g for round in games[:upto] for g in round)
        assert event.overall_cooperation_rate == cooperation_rate(moves)
        assert event.overall_fallback_rate == fallback_share(moves)
    assert result.acausal_indicators.overall_cooperation_rate == summarised[-1].overall_cooperation_rate


async def test_a_round_file_lost_during_the_run_fails_it_loudly_with_the_rounds_before(make_config):
    """The result is read back from the round files: if one is gone by the end, the run says
    so and reports the rounds before it, never a result silently missing a round."""
    config = make_config(agents=4, rounds=4)

    class DeleteRoundTwo:
        def on_event(self, event: object) -> None:
            if isinstance(event, RoundSummarised) and event.summary.round == 2:
                (Path(config.results_dir).glob("*/rounds/games_r2.json").__next__()).unlink()

    result = await run_experiment(config, provider=make_provider(config, {}), observer=DeleteRoundTwo())
    assert result.status == "failed"
    assert result.message is not None and "round 2's files cannot be read back" in result.message
    assert "games_r2.json" in result.message
    assert result.total_rounds == 1 and result.total_games == 6
    round_one = result.round_summaries[0]  # the agents' standing is round 1's too, not the run's
    assert [a.total_score for a in result.agents] == round_one.agent_scores
    assert [a.final_power for a in result.agents] == round_one.agent_powers
    (loaded,) = list_experiments(Path(config.results_dir))
    assert loaded.result == result and loaded.manifest is not None and loaded.manifest.status == "failed"
    errors = (loaded.directory / "experiment_errors.log").read_text()
    assert "cannot be read back" in errors


def test_the_state_holds_no_game_once_a_round_is_added():
    agents = [AgentInfo(id=0, kind="llm"), AgentInfo(id=1, kind="llm")]
    state = ExperimentState.start(1, agents, PRESETS["baseline"])
    for round in (1, 2):
        games = random_games(random.Random(round), 4, round)
        state.add_round(round, [], games, True, {0: "Player_1", 1: "Player_2"}, 1.0)
    held = [value for value in vars(state).values() if isinstance(value, list | dict)]
    for value in held:
        items = value.values() if isinstance(value, dict) else value
        assert not any(isinstance(item, GameResult) for item in items)
    assert state.moves.moves == 16


def test_a_history_of_none_with_shuffled_labels_keeps_no_labels_between_rounds():
    condition = msgspec.structs.replace(PRESETS["baseline"], history="none", labels="shuffled")
    history = History(1, 3, condition, [0, 1, 2])
    for round in range(1, 4):
        for viewer in range(3):
            history.labels(viewer, round)  # as each decision asks for its opponent's label
        history.add_round(round, random_games(random.Random(round), 2, round))
        assert history.text(0, round + 1) == "" and not history._labels


async def test_the_result_of_a_run_cut_short_is_written_even_when_the_error_log_cannot_be(make_config, monkeypatch):
    from engine.store import ExperimentStore

    config = make_config(agents=4, rounds=2)

    class DeleteRoundOne:
        def on_event(self, event: object) -> None:
            if isinstance(event, RoundSummarised) and event.summary.round == 1:
                next(Path(config.results_dir).glob("*/rounds/games_r1.json")).unlink()

                def full_disk(self: object, record: object) -> None:
                    raise OSError(28, "No space left on device")

                monkeypatch.setattr(ExperimentStore, "log_error", full_disk)

    result = await run_experiment(config, provider=make_provider(config, {}), observer=DeleteRoundOne())
    assert result.status == "failed" and "games_r1.json" in (result.message or "")
    (loaded,) = list_experiments(Path(config.results_dir))
    assert loaded.result == result
