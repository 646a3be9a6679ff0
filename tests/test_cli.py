import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from acausal_tui.cli import main
from engine.models import ExperimentResult, GameResult, Manifest, RoundSummary, StrategyRecord
from engine.store import read_json


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_CONFIGS = {
    "agents_below_2": ("agents = 1\n", "agents: must be at least 2"),
    "rounds_below_1": ("rounds = 0\n", "rounds: must be at least 1"),
    "unknown_provider": ('[provider]\nname = "acme"\n', "provider.name: unknown provider 'acme'"),
    "unknown_strategy": ('[[population]]\nkind = "scripted"\nstrategy = "nice"\ncount = 2\n',
                         "population[1].strategy: unknown scripted strategy 'nice'"),
    "count_not_positive": ('[[population]]\nkind = "llm"\ncount = 0\n', "population[1].count: must be at least 1"),
    "counts_not_summing": ('agents = 5\n[[population]]\nkind = "llm"\ncount = 3\n',
                           "agents: 5 does not equal the population counts' sum 3"),
    "malformed_toml": ("agents = [\n", "malformed TOML"),
    "unknown_key": ("agnets = 3\n", "agnets: unknown key"),
    "unknown_nested_key": ('[provider]\nrpmm = 3\n', "provider.rpmm: unknown key"),
    "wrong_type": ('rounds = "ten"\n', "rounds: expected int, got str"),
    "unknown_condition": ('condition = "telepathy"\n', "condition: unknown condition 'telepathy'"),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, name):
    text, expected = BAD_CONFIGS[name]
    config = write(tmp_path / "c.toml", text)
    results = tmp_path / "results"
    code = main(["run", "--headless", "--config", str(config), "--results-dir", str(results)])
    out, err = capsys.readouterr()
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""
    assert not results.exists()


@pytest.mark.parametrize("flags, expected", [
    (["--agents", "1"], "agents: must be at least 2"),
    (["--rounds", "0"], "rounds: must be at least 1"),
    (["--provider", "acme"], "provider.name: unknown provider"),
    (["--agents", "ten"], "argument --agents: expected a whole number"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--config", "/nonexistent/c.toml"], "--config: file not found"),
])
def test_bad_flags_exit_2(tmp_path, capsys, flags, expected):
    results = tmp_path / "results"
    assert main(["run", "--headless", "--results-dir", str(results), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not results.exists()


def test_results_dir_that_is_a_file(tmp_path, capsys):
    target = write(tmp_path / "file", "x")
    assert main(["run", "--headless", "--results-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "results_dir:" in err and "is not a directory" in err
    assert target.read_text() == "x"


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
        capture_output=True, text=True, timeout=120,
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


@pytest.mark.parametrize("flags, text, expected", [
    (["--max-cost", "nan"], "", "argument --max-cost: expected a finite number, got 'nan'"),
    (["--max-cost", "inf"], "", "argument --max-cost: expected a finite number"),
    ([], "[provider]\nlatency_ms = nan\n", "provider.latency_ms: must be a finite number"),
    ([], "[provider]\nmax_cost_usd = inf\n", "provider.max_cost_usd: must be a finite number"),
    ([], '[provider.prices."m/x"]\ninput = nan\noutput = 1.0\n', "provider.prices.m/x.input: must be a finite"),
])
def test_non_finite_numbers_are_refused(tmp_path, capsys, flags, text, expected):
    config = write(tmp_path / "c.toml", text)
    results = tmp_path / "results"
    assert main(["run", "--headless", "--config", str(config), "--results-dir", str(results), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not results.exists()


def test_config_that_is_not_utf8(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_bytes(b"rounds = 2\n# \xff\n")
    assert main(["run", "--headless", "--config", str(config), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err and "Traceback" not in err


@pytest.mark.parametrize("key", ["abc\u00e9", "sk key 123", "   "])
def test_unusable_api_key_is_refused_without_echoing_it(tmp_path, capsys, monkeypatch, key):
    monkeypatch.setenv("OPENROUTER_API_KEY", key)
    code = main(["run", "--headless", "--provider", "openrouter", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "OPENROUTER_API_KEY" in err
    assert key.strip() not in err or not key.strip()
    assert not (tmp_path / "r").exists()


def test_disk_full_mid_run_fails_cleanly_with_completed_rounds_kept(tmp_path, capsys, monkeypatch):
    from engine.store import ExperimentStore

    original = ExperimentStore.write_round

    def full_after_two(self, round, *args):
        if round == 3:
            raise OSError(28, "No space left on device")
        return original(self, round, *args)

    monkeypatch.setattr(ExperimentStore, "write_round", full_after_two)
    code = main(["run", "--headless", "--agents", "3", "--rounds", "5", "--seed", "1",
                 "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    result = read_json(Path(out.strip()) / "experiment_results.json", ExperimentResult)
    assert result.status == "failed" and result.total_rounds == 2
    assert result.total_games == 2 * 3 and len(result.round_summaries) == 2
    assert sum(a.total_score for a in result.agents) == pytest.approx(
        sum(s.average_score * 3 for s in result.round_summaries))
    assert "cannot write the results" in result.message and "No space left" in result.message


def test_disk_full_at_the_final_save_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    from engine.store import ExperimentStore

    def full(self, result):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ExperimentStore, "write_result", full)
    code = main(["run", "--headless", "--agents", "2", "--rounds", "1", "--results-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "cannot write the results" in err and "Traceback" not in err
