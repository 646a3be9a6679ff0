import functools
import io
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from acausal_tui.cli import main
from acausal_tui.cli.run import HeadlessPrinter
from engine.control import RunControl
from engine.models import ExperimentResult, GameResult, Manifest, RoundSummary, StrategyRecord
from engine.providers.base import ProviderError
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment
from engine.store import read_json


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_flags_win_over_the_config_file(tmp_path, capsys):
    config = write(tmp_path / "c.toml", "agents = 3\nrounds = 5\nseed = 4\n")
    results = tmp_path / "results"
    assert main(["run", "--headless", "--config", str(config), "--rounds", "2", "--results-dir", str(results)]) == 0
    out, err = capsys.readouterr()
    directory = Path(out.strip())
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.total_rounds == 2 and len(result.agents) == 3 and result.seed == 4
    assert "round 2/2" in err and "cooperation" in err and "ETA" in err
    numbered = [line for line in err.splitlines() if any(ch.isdigit() for ch in line)]
    assert all("SIMULATED" in line for line in numbered), err  # every number says where it came from


def test_seed_is_drawn_and_recorded_when_omitted(tmp_path, capsys):
    assert main(["run", "--headless", "--agents", "2", "--rounds", "1", "--results-dir", str(tmp_path)]) == 0
    directory = Path(capsys.readouterr().out.strip())
    assert isinstance(read_json(directory / "manifest.json", Manifest).seed, int)


def test_headless_10x10_subprocess_every_file_decodes(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "acausal_tui", "run", "--headless", "--seed", "3", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    directory = Path(proc.stdout.strip())
    assert directory.parent == tmp_path
    assert proc.stderr.count("round ") >= 10
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.status == "completed" and result.total_games == 450
    for r in range(1, 11):
        read_json(directory / "rounds" / f"strategies_r{r}.json", list[StrategyRecord])
        read_json(directory / "rounds" / f"games_r{r}.json", list[GameResult])
        read_json(directory / "rounds" / f"summary_r{r}.json", RoundSummary)
    assert msgspec.json.decode((directory / "manifest.json").read_bytes())["provider"] == "simulated"


def test_experiment_dirs_get_a_suffix_when_taken(tmp_path):
    from datetime import datetime

    from engine.store import new_experiment_dir

    now = datetime(2026, 1, 2, 3, 4, 5)
    names = [new_experiment_dir(tmp_path, now).name for _ in range(3)]
    assert names == ["exp_20260102_030405", "exp_20260102_030405_2", "exp_20260102_030405_3"]


def test_disk_full_mid_run_fails_cleanly_with_completed_rounds_kept(tmp_path, capsys, monkeypatch):
    from engine.store import ExperimentStore

    original = ExperimentStore.write_round

    def full_after_two(self, round, *args):
        if round == 3:
            raise OSError(28, "No space left on device")
        return original(self, round, *args)

    monkeypatch.setattr(ExperimentStore, "write_round", full_after_two)
    code = main(["run", "--headless", "--agents", "3", "--rounds", "5", "--seed", "1", "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    result = read_json(Path(out.strip()) / "experiment_results.json", ExperimentResult)
    assert result.status == "failed" and result.total_rounds == 2
    assert result.total_games == 2 * 3 and len(result.round_summaries) == 2
    assert sum(a.total_score for a in result.agents) == pytest.approx(
        sum(s.average_score * 3 for s in result.round_summaries)
    )
    assert "cannot write the results" in result.message and "No space left" in result.message


def test_disk_full_at_the_final_save_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from engine.store import ExperimentStore

    def full(self, result):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ExperimentStore, "write_result", full)
    code = main(["run", "--headless", "--agents", "2", "--rounds", "1", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "cannot write the results" in err and "Traceback" not in err


class AbortingProvider(SimulatedProvider):
    """The simulated provider; the run is aborted when request number `abort_at` arrives."""

    def __init__(self, seed: int, control: RunControl, abort_at: int) -> None:
        super().__init__(seed)
        self.control, self.abort_at, self.requests = control, abort_at, 0

    async def complete(self, request):
        self.requests += 1
        if self.requests == self.abort_at:
            self.control.abort("test abort")
        return await super().complete(request)


def test_eta_after_a_resume_leaves_out_the_round_answered_from_the_call_log(make_config, tmp_path, capsys):
    """3 agents: 3 strategy calls + 3 games x 2 decisions a round; aborted in round 3's games,
    so the resumed round 3 replays most of its calls from calls.jsonl and takes no time."""
    config = make_config(agents=3, rounds=6)
    control = RunControl()
    provider = AbortingProvider(config.seed, control, abort_at=2 * 9 + 6)
    result = anyio.run(functools.partial(run_experiment, config, provider=provider, control=control))
    assert result.status == "aborted" and result.total_rounds == 2
    (directory,) = Path(config.results_dir).iterdir()
    for path in (directory / "rounds").glob("summary_r*.json"):  # the rounds before: 100 s each
        path.write_bytes(msgspec.json.encode(msgspec.structs.replace(read_json(path, RoundSummary), duration_s=100.0)))
    capsys.readouterr()
    assert main(["resume", str(directory), "--headless"]) == 0
    lines = capsys.readouterr().err.splitlines()
    round3 = next(line for line in lines if "round 3/6" in line)
    assert round3.endswith("ETA 300.0s"), round3  # the recorded rounds' 100 s x 3 left


def test_latency_flag_is_validated_and_recorded_in_the_manifest(tmp_path, capsys):
    results = tmp_path / "results"
    base = [
        "run",
        "--headless",
        "--provider",
        "simulated",
        "--agents",
        "2",
        "--rounds",
        "1",
        "--results-dir",
        str(results),
    ]
    assert main([*base, "--latency", "1.5"]) == 0
    directory = Path(capsys.readouterr().out.strip())
    assert read_json(directory / "manifest.json", Manifest).config.provider.latency_ms == 1.5
    for value, said in [
        ("-1", "provider.latency_ms: must be at least 0"),  # the config key's own validator
        ("600001", "provider.latency_ms: must be at most 600000"),
        ("soon", "expected a number, got 'soon'"),
    ]:
        assert main([*base, "--latency", value]) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err
    assert len(list(results.iterdir())) == 1  # a refused value writes nothing


class RefusingProvider(SimulatedProvider):
    """Every call refused with a non-retryable 400: the run fails before any move."""

    async def complete(self, request):
        raise ProviderError("HTTP 400: bad request", status=400)


def test_headless_lines_count_in_the_singular_and_a_run_without_moves_is_not_called_valid(
    make_config, tmp_path, capsys
):
    config = make_config(agents=2, rounds=1)
    stream = io.StringIO()
    result = anyio.run(
        functools.partial(run_experiment, config, provider=SimulatedProvider(1), observer=HeadlessPrinter(stream))
    )
    assert result.total_rounds == 1 and result.total_games == 1
    assert "completed: 1 round, 1 game, 4 calls, cost $0\n" in stream.getvalue()  # and what it cost

    stream = io.StringIO()
    config = make_config(agents=2, rounds=1, results_dir=str(tmp_path / "failed"))
    result = anyio.run(
        functools.partial(run_experiment, config, provider=RefusingProvider(1), observer=HeadlessPrinter(stream))
    )
    lines = stream.getvalue().splitlines()
    assert result.status == "failed" and result.validity is not None and result.validity.moves == 0
    assert lines[-1] == "SIMULATED no moves recorded: validity not judged", lines
    assert "failed: 0 rounds, 0 games, " in stream.getvalue()
