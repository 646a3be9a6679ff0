"""A round's files are saved while the next round plays (engine/runner.py): a kill -9 in
that window, with the next round's calls in calls.jsonl but the round not yet on disk,
resumes to exactly the records of an uninterrupted run."""

import signal

from acausal_tui.cli import main
from engine.lock import LOCK_NAME
from engine.store import TEMP_PREFIX
from tests.support.experiment_files import (
    assert_files_valid,
    final_result,
    only_experiment,
    outcome,
    records,
    start_cli,
    wait_for,
    write_config,
)
from tests.test_kill9 import call_keys, reference

SLOW_FSYNC_S = 0.25  # a round's save takes seconds: the next round's calls come in meanwhile


def test_kill_after_the_next_round_began_before_the_round_was_saved(tmp_path):
    results = tmp_path / "results"
    config = write_config(tmp_path / "config.toml", results, rounds=3, seed=7, latency_ms=20)
    process = start_cli("run", "--headless", "--config", str(config), slow_fsync_s=SLOW_FSYNC_S)
    directory = None

    def round_2_called_before_round_1_saved() -> bool:
        nonlocal directory
        directory = only_experiment(results)
        if directory is None or not (directory / "calls.jsonl").exists():
            return False
        return b'"decision/r2/' in (directory / "calls.jsonl").read_bytes()

    assert wait_for(round_2_called_before_round_1_saved, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (directory / "rounds" / "summary_r1.json").exists()  # the window was hit
    assert_files_valid(directory)

    assert main(["resume", str(directory), "--headless"]) == 0
    ref_dir, ref_result = reference(config, tmp_path / "reference")
    assert records(directory) == records(ref_dir)
    assert outcome(final_result(directory)) == outcome(ref_result)
    assert call_keys(directory) == call_keys(ref_dir)  # every call recorded exactly once
    assert not list(directory.rglob(f"{TEMP_PREFIX}*")) and not (directory / LOCK_NAME).exists()
