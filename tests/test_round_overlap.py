"""A round's files are saved while the next round plays (engine/runner.py): a kill -9 in
that window, with the next round's calls in calls.jsonl but the round not yet on disk,
resumes to exactly the records of an uninterrupted run."""

import signal

import anyio

from acausal_tui.cli import main
from engine.events import RoundStarted, RoundSummarised, RunFinished, RunStarted
from engine.providers.factory import make_provider
from engine.runner import run_experiment
from tests.support.experiment_files import (
    assert_files_valid,
    assert_resumed_as_uninterrupted,
    only_experiment,
    start_cli,
    wait_for,
    write_config,
)

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
    assert_resumed_as_uninterrupted(directory, config, tmp_path / "reference")


def test_observers_see_a_round_summarised_on_disk_before_the_next_round_starts(make_config):
    """The next round plays while a round is saved, but its events wait for the save."""
    config = make_config(agents=4, rounds=4, provider={"latency_ms": 1, "max_concurrency": 64})
    seen: list[tuple[str, int, bool]] = []

    class Watch:
        directory = None

        def on_event(self, event) -> None:
            if isinstance(event, RunStarted):
                self.directory = event.directory
            elif isinstance(event, RoundStarted):
                seen.append(("started", event.round, False))
            elif isinstance(event, RoundSummarised):
                round = event.summary.round
                on_disk = (self.directory / "rounds" / f"summary_r{round}.json").exists()
                seen.append(("summarised", round, on_disk))
            elif isinstance(event, RunFinished):
                seen.append(("finished", 0, False))

    result = anyio.run(lambda: run_experiment(config, provider=make_provider(config, {}), observer=Watch()))
    assert result.status == "completed"
    expected = [step for r in range(1, 5) for step in (("started", r, False), ("summarised", r, True))]
    assert seen == [*expected, ("finished", 0, False)]
