"""index.json is extended round by round without reading the experiment again, and is
always what a full rebuild from the files gives: after every round of a run, across a
resume, and when the previous index is missing or broken."""

import os
import random
import shutil
from pathlib import Path

import msgspec
import pytest

from engine import index
from engine.control import RunControl
from engine.events import RoundSummarised
from engine.index import INDEX_FILE, IndexEntry, add_round, entry_from, read_index
from engine.loading import LoadedExperiment, load_experiment
from engine.models import RoundSummary
from engine.providers.simulated import SimulatedProvider
from engine.resume import open_resume, resume_experiment
from engine.runner import run_experiment
from engine.store import ExperimentStore, read_json
from tests.support.experiment_files import only_experiment


class Checks:
    """Wraps ExperimentStore.write_round: after each round, the index as written, the index a
    full rebuild gives, and how many times the index read the whole experiment."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rounds: list[tuple[int, IndexEntry, IndexEntry | None, int]] = []
        self.loads = 0
        real_write, real_load = ExperimentStore.write_round, index.load_experiment

        def counting_load(directory: Path):
            self.loads += 1
            return real_load(directory)

        def write_round(store: ExperimentStore, round: int, *args) -> None:
            before = self.loads
            real_write(store, round, *args)
            written = read_json(store.directory / INDEX_FILE, IndexEntry)
            rebuilt = entry_from(load_experiment(store.directory))
            self.rounds.append((round, written, rebuilt, self.loads - before))

        monkeypatch.setattr(index, "load_experiment", counting_load)
        monkeypatch.setattr(ExperimentStore, "write_round", write_round)

    def assert_incremental_and_equal(self, rounds: list[int]) -> None:
        assert [r for r, *_ in self.rounds] == rounds
        for round, written, rebuilt, loads in self.rounds:
            assert written == rebuilt, round
            assert loads == 0, f"round {round} reloaded the experiment"


class AbortAfter:
    def __init__(self, control: RunControl, round: int) -> None:
        self.control, self.round = control, round

    def on_event(self, event) -> None:
        if isinstance(event, RoundSummarised) and event.summary.round == self.round:
            self.control.abort("test abort")


async def test_each_round_extends_the_index_to_what_a_rebuild_gives(make_config, tmp_path, monkeypatch):
    checks = Checks(monkeypatch)
    config = make_config(agents=4, rounds=12)  # past round 10: summaries listed r1, r10, r11, r12, r2, ...

    result = await run_experiment(config, provider=SimulatedProvider(seed=config.seed))

    checks.assert_incremental_and_equal(list(range(1, 13)))
    directory = only_experiment(Path(config.results_dir))
    final = read_json(directory / INDEX_FILE, IndexEntry)
    assert final == entry_from(load_experiment(directory))
    assert final.rounds_done == 12 and final.cooperation == result.acausal_indicators.overall_cooperation_rate
    assert any(written.cooperation is not None for _, written, _, _ in checks.rounds)


async def test_a_resumed_run_extends_the_index_from_the_rebuilt_one(make_config, tmp_path, monkeypatch):
    config = make_config(agents=4, rounds=6)
    control = RunControl()
    first = await run_experiment(
        config, provider=SimulatedProvider(seed=config.seed), observer=AbortAfter(control, 3), control=control
    )
    assert first.status == "aborted"
    directory = only_experiment(Path(config.results_dir))
    (directory / INDEX_FILE).write_bytes(b"{torn")  # the resume's manifest write rebuilds it
    checks = Checks(monkeypatch)

    resumable = open_resume(directory)
    result = await resume_experiment(resumable, SimulatedProvider(seed=config.seed))

    assert result.status == "completed"
    checks.assert_incremental_and_equal([4, 5, 6])
    assert read_json(directory / INDEX_FILE, IndexEntry) == entry_from(load_experiment(directory))


@pytest.mark.parametrize("previous", [None, b"{torn", b'{"id": "exp_other"}'])
async def test_a_missing_or_broken_index_is_rebuilt_in_full(make_config, monkeypatch, previous):
    config = make_config(agents=3, rounds=2)
    await run_experiment(config, provider=SimulatedProvider(seed=config.seed))
    directory = only_experiment(Path(config.results_dir))
    path = directory / INDEX_FILE
    path.unlink()
    if previous is not None:
        path.write_bytes(previous)
    summary = load_experiment(directory).summaries[2]

    add_round(directory, 2, summary)

    assert read_json(path, IndexEntry) == entry_from(load_experiment(directory))


async def test_a_round_not_after_the_last_one_is_not_counted_twice(make_config):
    config = make_config(agents=3, rounds=3)
    await run_experiment(config, provider=SimulatedProvider(seed=config.seed))
    directory = only_experiment(Path(config.results_dir))
    loaded = load_experiment(directory)
    # as during the run: the index as it was after round 3, before the result was written
    before = entry_from(loaded)
    assert before is not None
    stale = msgspec.structs.replace(before, has_result=False)
    (directory / INDEX_FILE).write_bytes(msgspec.json.encode(stale))

    add_round(directory, 2, loaded.summaries[2])  # round 2 written again

    assert read_json(directory / INDEX_FILE, IndexEntry) == entry_from(load_experiment(directory))


async def test_rates_that_do_not_add_up_exactly_still_match_the_rebuild(make_config):
    """Rates whose float sums depend on the order they are added in: the index adds them in
    round order, as the rebuild does (which lists summary_r10 before summary_r2)."""
    config = make_config(agents=3, rounds=12)
    await run_experiment(config, provider=SimulatedProvider(seed=config.seed))
    directory = only_experiment(Path(config.results_dir))
    rounds = directory / "rounds"
    summaries = load_experiment(directory).summaries
    draw = random.Random(5)
    for number, summary in summaries.items():
        path = rounds / f"summary_r{number}.json"
        odd = msgspec.structs.replace(summary, cooperation_rate=draw.random() / 3, fallback_decisions=draw.randrange(3))
        path.write_bytes(msgspec.json.encode(odd))
        path.rename(path.with_name(f"hidden_r{number}"))
    (directory / "experiment_results.json").unlink()
    index.update_index(directory)  # the index before round 1

    for number in sorted(summaries):
        path = rounds / f"summary_r{number}.json"
        (rounds / f"hidden_r{number}").rename(path)
        add_round(directory, number, read_json(path, RoundSummary))
        assert read_json(directory / INDEX_FILE, IndexEntry) == entry_from(load_experiment(directory)), number


FINISHED = Path(__file__).resolve().parent / "fixtures" / "results" / "exp_20250101_090000"


def truncate(path: Path, size: int) -> None:
    """Cut a file short in place: rounds/ itself does not change."""
    with open(path, "r+b") as file:
        file.truncate(size)


def shown(directory: Path) -> tuple[str, str]:
    """The browser row's status and notes cells."""
    from acausal_tui.screens.listing import row

    entry, problems = read_index(directory)
    cells = row(entry, directory, problems)
    return str(cells[2]), str(cells[-1])


@pytest.mark.parametrize("name", ["games_r2.json", "strategies_r2.json"])
def test_a_damaged_round_file_is_a_problem_of_the_built_index(tmp_path, name):
    directory = tmp_path / FINISHED.name
    shutil.copytree(FINISHED, directory)
    truncate(directory / "rounds" / name, 500)

    entry, problems = read_index(directory)

    assert entry is not None and entry.status == "completed"
    assert any(p.startswith(f"{name}: ") for p in problems), problems
    assert read_json(directory / INDEX_FILE, IndexEntry).problems == problems
    assert shown(directory)[0] == "completed (damaged)" and name in shown(directory)[1]


def test_a_missing_round_file_is_a_problem(tmp_path):
    directory = tmp_path / FINISHED.name
    shutil.copytree(FINISHED, directory)
    (directory / "rounds" / "games_r3.json").unlink()

    assert read_index(directory)[1] == ["games_r3.json: missing"]


@pytest.mark.parametrize("gone", ["round_2", "rounds_dir"])
def test_a_completed_experiment_missing_whole_rounds_is_damaged(tmp_path, gone):
    """Every file of round 2 (or the rounds directory) deleted from a completed experiment:
    the browser showed "completed 2/3 … valid" and export wrote two rounds, unwarned."""
    directory = tmp_path / FINISHED.name
    shutil.copytree(FINISHED, directory)
    assert read_index(directory)[1] == []  # a clean index, written
    if gone == "round_2":
        for path in (directory / "rounds").glob("*_r2.json"):
            path.unlink()
    else:
        shutil.rmtree(directory / "rounds")
    missing = ["2"] if gone == "round_2" else ["1", "2", "3"]

    problems = read_index(directory)[1]

    assert problems == [f"summary_r{n}.json: missing (round {n} of the 3 the result counts)" for n in missing]
    status, notes = shown(directory)
    assert status == "completed (damaged)" and "summary_r" in notes


@pytest.mark.parametrize("name", ["summary_r2.json", "games_r2.json", "strategies_r3.json"])
def test_a_round_file_edited_in_place_after_the_index_was_built_shows(tmp_path, name):
    directory = tmp_path / FINISHED.name
    shutil.copytree(FINISHED, directory)
    assert read_index(directory)[1] == [] and shown(directory)[0] == "completed"  # a clean index, written
    rounds_mtime = (directory / "rounds").stat().st_mtime_ns

    truncate(directory / "rounds" / name, 300)

    assert (directory / "rounds").stat().st_mtime_ns == rounds_mtime  # the edit did not touch rounds/
    assert shown(directory)[0] == "completed (damaged)" and name in shown(directory)[1]
    assert name in "; ".join(read_json(directory / INDEX_FILE, IndexEntry).problems)


def test_an_unchanged_index_is_trusted_without_reading_the_rounds(tmp_path, monkeypatch):
    directory = tmp_path / FINISHED.name
    shutil.copytree(FINISHED, directory)
    entry = read_index(directory)[0]
    assert entry is not None and set(entry.files) == {
        f"{kind}_r{n}.json" for kind in ("summary", "strategies", "games") for n in (1, 2, 3)
    }

    def no_full_load(_: Path):
        raise AssertionError("the experiment was read again although nothing changed")

    monkeypatch.setattr(index, "load_experiment", no_full_load)
    assert read_index(directory) == (entry, [])


def test_a_rebuild_reads_again_only_the_round_files_that_changed(tmp_path, monkeypatch):
    """The manifest rewritten (e.g. at the end of a run): the index is rebuilt, but the round
    files it checked and that kept their size and time are not decoded again."""
    directory = tmp_path / FINISHED.name
    shutil.copytree(FINISHED, directory)
    assert read_index(directory)[1] == []
    truncate(directory / "rounds" / "games_r3.json", 400)
    later = (directory / INDEX_FILE).stat().st_mtime + 10
    os.utime(directory / "manifest.json", (later, later))
    read = []
    real_games = LoadedExperiment.games

    def games(self: LoadedExperiment, round: int):
        read.append(round)
        return real_games(self, round)

    monkeypatch.setattr(LoadedExperiment, "games", games)

    entry, problems = read_index(directory)

    assert read == [3] and [p.split(":")[0] for p in problems] == ["games_r3.json"]
    assert entry == entry_from(load_experiment(directory))  # what a build from nothing gives


def test_a_missing_round_is_found_without_a_readable_manifest(tmp_path):
    """The bound came from the manifest's rounds: with the manifest unreadable a round that
    the result counts went unnoticed again."""
    from engine.loading import load_experiment

    directory = tmp_path / FINISHED.name
    shutil.copytree(FINISHED, directory)
    for path in (directory / "rounds").glob("*_r2.json"):
        path.unlink()
    truncate(directory / "manifest.json", 10)
    problems = load_experiment(directory).problems
    assert "summary_r2.json: missing (round 2 of the 3 the result counts)" in problems


async def test_a_run_that_recorded_no_move_is_not_listed_as_valid(make_config):
    """A run that failed before any game has nothing to judge: the headless line says
    "validity not judged", and the browser's row says neither valid nor INVALID."""
    from acausal_tui.screens.listing import row
    from engine.providers.base import ChatRequest, ProviderError
    from tests.support.fakes import FakeProvider

    def reply(request: ChatRequest):
        return ProviderError("HTTP 404: no such model", status=404)

    config = make_config(agents=3, rounds=1)
    result = await run_experiment(config, provider=FakeProvider(reply))
    assert result.status == "failed" and result.validity is not None and result.validity.moves == 0
    directory = only_experiment(Path(config.results_dir))
    entry, problems = read_index(directory)
    assert entry is not None and entry.valid is None
    cooperation = row(entry, directory, problems)[7].plain
    assert "valid" not in cooperation and "INVALID" not in cooperation
