"""kill -9 at seeded moments (early, mid-round, between rounds, during a save), over and
over on the same experiment: after every kill each result file is valid or absent, and
resuming to the end gives exactly the records of an uninterrupted run."""

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from acausal_tui.cli import main
from engine.lock import LOCK_NAME, read_pid
from engine.models import CallRecord, Manifest
from engine.store import TEMP_PREFIX, read_json, read_jsonl
from tests.support import stub_server as stub
from tests.support.experiment_files import (
    assert_files_valid,
    assert_resumed_as_uninterrupted,
    call_keys,
    final_result,
    only_experiment,
    records,
    start_cli,
    wait_for,
    write_config,
)

ROUNDS = 4
MOMENTS = ("early", "mid_round", "between_rounds", "during_save")  # in a seeded order, then:
LAST = "during_final_save"  # all rounds saved: the result file and the manifest are written
CALLS_PER_ROUND = 4 + 4 * 3  # 4 agents: a strategy each and two moves in each of 6 games
SLOW_FSYNC_S = 0.02  # widens every atomic save so that kills can land inside one


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def summaries(directory: Path) -> int:
    return len(list((directory / "rounds").glob("summary_r*.json")))


def saving(directory: Path) -> bool:
    """An atomic write is under way: its temp file exists."""
    folders = [directory / "rounds"]
    if (directory / "manifest.json").exists():  # the manifest's own first write is not resumable
        folders.append(directory)
    return any(name.startswith(TEMP_PREFIX) for folder in folders for name in os.listdir(folder))


def kill_at(moment: str, rng: random.Random, process: subprocess.Popen, results: Path) -> bool:
    """Wait for `moment` in `process`'s run and SIGKILL it; False if the run ended first.
    Except early, the moment may come a seeded number of rounds later (0 or 1), so the
    kills spread over the whole run."""
    directory = None

    def started() -> bool:
        nonlocal directory
        directory = only_experiment(results)
        return (
            directory is not None
            and (directory / "manifest.json").exists()
            and read_pid(directory / LOCK_NAME) == process.pid
        )

    if not wait_for(started, process):
        return False
    skip_to = summaries(directory) + rng.randint(0, 1)
    if moment == "early":
        time.sleep(rng.uniform(0.0, 0.05))
        reached = process.poll() is None
    elif moment == LAST:
        reached = wait_for(lambda: summaries(directory) == ROUNDS and saving(directory), process)
    elif moment == "mid_round":  # by the log, not the summaries: a round's save overlaps the next round
        target = CALLS_PER_ROUND * min(ROUNDS - 1, skip_to) + rng.randint(1, CALLS_PER_ROUND - 1)
        reached = wait_for(lambda: line_count(directory / "calls.jsonl") >= target, process)
    elif not wait_for(lambda: summaries(directory) >= min(ROUNDS, skip_to), process):
        reached = False
    elif moment == "between_rounds":
        done = summaries(directory)
        reached = wait_for(lambda: summaries(directory) > done, process)
    else:
        reached = wait_for(lambda: saving(directory), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return reached and process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_kill_9_at_seeded_moments_then_resume_equals_uninterrupted_run(tmp_path, seed):
    rng = random.Random(seed)
    results = tmp_path / "results"
    config = write_config(tmp_path / "config.toml", results, rounds=ROUNDS, seed=seed, latency_ms=30)
    moments = [*rng.sample(MOMENTS, len(MOMENTS)), LAST]
    kills = []
    unclean = 0  # kills that left the manifest saying `running`
    args = ["run", "--headless", "--config", str(config)]
    for moment in moments:
        process = start_cli(*args, slow_fsync_s=SLOW_FSYNC_S)
        if kill_at(moment, rng, process, results):
            kills.append(moment)
        directory = only_experiment(results)
        assert_files_valid(directory)
        if process.returncode == 0:
            break
        unclean += read_json(directory / "manifest.json", Manifest).status == "running"
        args = ["resume", str(directory), "--headless"]
    # Each experiment is killed at every kind of moment: 3 x 5 = 15 kills in all.
    assert sorted(kills) == sorted(moments), kills

    # The result says how often calls in flight may have been lost: each resume that finds
    # `running` counts one more than the manifest says. A kill of a resumed run before it
    # rewrote its manifest is not counted: it had made no call yet.
    before = read_json(directory / "manifest.json", Manifest)
    assert main(["resume", str(directory), "--headless"]) == 0
    assert_resumed_as_uninterrupted(directory, config, tmp_path / "reference")
    stops = final_result(directory).unclean_stops
    assert stops == before.unclean_stops + (before.status == "running") and 1 <= stops <= unclean


def test_no_call_recorded_before_a_kill_is_sent_again(tmp_path, capsys):
    """Against a real HTTP server: the requests it receives across kill + resume are the
    uninterrupted run's, plus only those that were in flight at the kill."""
    with stub.StubServer(latency_s=0.03) as server:
        config = write_config(tmp_path / "config.toml", tmp_path / "results", rounds=3, base_url=server.base_url)
        process = start_cli("run", "--headless", "--config", str(config))
        directory = None

        def mid_round_two() -> bool:
            nonlocal directory
            directory = only_experiment(tmp_path / "results")
            return directory is not None and line_count(directory / "calls.jsonl") >= 16 + 7

        assert wait_for(mid_round_two, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        sent_before_kill = server.count
        recorded, _ = read_jsonl(directory / "calls.jsonl", CallRecord)
        # Lost with the kill: the calls in flight (at most max_concurrency) and those that had
        # just returned, their records still on the way to the file (the call log is written
        # once per loop tick, by a writer thread): no fixed bound, so none is asserted. What
        # is guaranteed is below: exactly these are sent again, nothing recorded is.
        lost = sent_before_kill - sum(c.attempts for c in recorded)
        assert lost >= 0

        capsys.readouterr()
        assert main(["resume", str(directory), "--headless"]) == 0
        sent_on_resume = server.count - sent_before_kill
        # the calls lost in flight are in neither count: the result and the headless line say so
        assert final_result(directory).unclean_stops == 1
        assert (
            "resumed after a kill or crash once: any calls in flight then, and replies not yet logged, are in "
            "neither the calls nor the cost"
        ) in capsys.readouterr().err

        ref_config = write_config(tmp_path / "ref.toml", tmp_path / "reference", rounds=3, base_url=server.base_url)
        before = server.count
        assert main(["run", "--headless", "--config", str(ref_config)]) == 0
        uninterrupted = server.count - before

    assert sent_on_resume == uninterrupted - len(recorded)
    ref_dir = only_experiment(tmp_path / "reference")
    assert records(directory) == records(ref_dir)
    assert call_keys(directory) == call_keys(ref_dir)
    result, ref_result = final_result(directory), final_result(ref_dir)
    assert result.total_api_calls == ref_result.total_api_calls == uninterrupted
    assert result.total_cost == pytest.approx(ref_result.total_cost) and result.total_cost > 0
