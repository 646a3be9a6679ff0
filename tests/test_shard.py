"""Sharded sweeps: --shard I/N runs one slice of the grid; sweep-merge of all shards gives
the numbers of one unsharded sweep; bad shard input and incomplete sets are refused."""

import json
from pathlib import Path

import msgspec
import pytest

from acausal_tui.cli import main
from engine.config import ConfigError
from engine.shard import parse_shard
from engine.store import read_json
from engine.sweep import SWEEP_FILE, SweepResult, load_sweep

FLAGS = [
    "--conditions",
    "baseline,identity",
    "--seeds",
    "4",
    "--seed",
    "7",
    "--agents",
    "4",
    "--rounds",
    "2",
    "--provider",
    "simulated",
]


def sweep(results: Path, capsys, *extra: str) -> Path:
    code = main(["sweep", "--headless", *FLAGS, "--results-dir", str(results), *extra])
    out, _ = capsys.readouterr()
    assert code == 0
    return Path(out.strip().splitlines()[-1])


def numbers(result: SweepResult) -> dict:
    """Everything a reader takes from sweep.json, without its id, times and paths."""
    data = msgspec.to_builtins(result)
    return {
        key: data[key]
        for key in ("status", "conditions", "seeds", "resolved_conditions", "experiments", "summary", "differences")
    }


def test_three_shards_merged_equal_one_unsharded_sweep(tmp_path, capsys):
    whole = read_json(sweep(tmp_path / "whole", capsys) / SWEEP_FILE, SweepResult)
    shard_dirs = [sweep(tmp_path / f"shard{i}", capsys, "--shard", f"{i}/3") for i in (1, 2, 3)]

    shards = [read_json(d / SWEEP_FILE, SweepResult) for d in shard_dirs]
    assert [s.shard for s in shards] == ["1/3", "2/3", "3/3"]
    cells = [(r.condition, r.seed) for s in shards for r in s.experiments]
    assert sorted(cells) == sorted((r.condition, r.seed) for r in whole.experiments)  # each cell once
    assert len(shards[0].experiments) == 3 and len(shards[2].experiments) == 2  # 8 cells over 3

    code = main(["sweep-merge", *map(str, reversed(shard_dirs)), "--results-dir", str(tmp_path / "merged")])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.strip() and all(line.startswith("SIMULATED ") for line in err.strip().splitlines())  # SPEC §7
    merged_dir = Path(out.strip().splitlines()[-1])
    merged = load_sweep(merged_dir).result
    assert merged is not None and merged.shard is None
    assert whole.summary and whole.differences
    assert numbers(merged) == numbers(whole)
    for run in merged.experiments:  # every experiment directory came along
        assert (merged_dir / run.directory / "experiment_results.json").is_file()


def test_merge_refuses_a_missing_or_repeated_shard(tmp_path, capsys):
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    assert main(["sweep-merge", str(one)]) == 2
    assert "shard 2 of 2 missing" in capsys.readouterr().err
    assert main(["sweep-merge", str(one), str(one)]) == 2
    assert "given twice" in capsys.readouterr().err


def test_merge_refuses_shards_of_different_sweeps(tmp_path, capsys):
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    code = main(
        [
            "sweep",
            "--headless",
            *FLAGS[:-6],
            "--agents",
            "5",
            "--rounds",
            "2",
            "--provider",
            "simulated",
            "--results-dir",
            str(tmp_path / "b"),
            "--shard",
            "2/2",
        ]
    )
    other = Path(capsys.readouterr().out.strip())
    assert code == 0
    assert main(["sweep-merge", str(one), str(other)]) == 2
    err = capsys.readouterr().err
    assert "not a shard of the same sweep" in err
    assert "config.agents: 5 here, 4 there" in err  # which setting, both values


def test_shards_may_differ_in_pacing_and_budget_only(tmp_path, capsys):
    """A shard run at another --rpm, or resumed with a larger --max-cost (as the docs say to
    continue a sweep its budget stopped), still merges: neither changes a number."""
    whole = read_json(sweep(tmp_path / "whole", capsys) / SWEEP_FILE, SweepResult)
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    two = sweep(tmp_path / "b", capsys, "--shard", "2/2", "--rpm", "5000", "--max-cost", "3")
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(tmp_path / "m")]) == 0
    merged = load_sweep(Path(capsys.readouterr().out.strip().splitlines()[-1])).result
    assert merged is not None and numbers(merged) == numbers(whole)


def set_sweep(directory: Path, **changes) -> None:
    result = read_json(directory / SWEEP_FILE, SweepResult)
    (directory / SWEEP_FILE).write_bytes(msgspec.json.encode(msgspec.structs.replace(result, **changes)))


def test_merge_refuses_an_aborted_shard(tmp_path, capsys):
    """A shard its scheduler stopped (SIGTERM at the time limit) is unfinished: resume it."""
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    two = sweep(tmp_path / "b", capsys, "--shard", "2/2")
    result = read_json(two / SWEEP_FILE, SweepResult)
    runs = [msgspec.structs.replace(result.experiments[0], status="aborted"), *result.experiments[1:]]
    set_sweep(two, status="aborted", experiments=runs, message="aborted by SIGTERM")
    merged = tmp_path / "m"
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(merged)]) == 2
    err = capsys.readouterr().err
    assert "has not finished (1 of its experiments)" in err and f"acausal-tui resume {two}" in err
    assert not merged.exists()


def test_merge_refuses_a_shard_whose_experiments_are_missing_or_damaged(tmp_path, capsys):
    """sweep.json's numbers come from the experiment directories copied along: a missing
    one, or a file in it that cannot be read, is refused with its name, and nothing is made."""
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    two = sweep(tmp_path / "b", capsys, "--shard", "2/2")
    run = read_json(two / SWEEP_FILE, SweepResult).experiments[1]
    merged = tmp_path / "m"
    games = two / run.directory / "rounds" / "games_r2.json"
    games.write_bytes(games.read_bytes()[:40])
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(merged)]) == 2
    assert f"{run.directory}: games_r2.json" in capsys.readouterr().err
    for path in sorted((two / run.directory).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (two / run.directory).rmdir()
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(merged)]) == 2
    assert f"{two / run.directory}: missing" in capsys.readouterr().err
    assert not merged.exists()


def test_merge_refuses_a_completed_experiment_whose_result_file_is_gone_or_disagrees(tmp_path, capsys):
    """A completed cell's numbers come from its experiment_results.json: a shard copied
    without it, or with one that gives other numbers, does not back its sweep.json."""
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    two = sweep(tmp_path / "b", capsys, "--shard", "2/2")
    run = read_json(two / SWEEP_FILE, SweepResult).experiments[0]
    results = two / run.directory / "experiment_results.json"
    saved = results.read_bytes()
    results.unlink()
    merged = tmp_path / "m"
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(merged)]) == 2
    assert f"{run.directory}: experiment_results.json: missing" in capsys.readouterr().err
    result = msgspec.json.decode(saved)
    result["total_rounds"] = 1
    results.write_bytes(msgspec.json.encode(result))
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(merged)]) == 2
    assert "does not give the numbers sweep.json has for it" in capsys.readouterr().err
    assert not merged.exists()


def test_shards_of_an_older_version_still_merge(tmp_path, capsys):
    """A sweep.json written before the strategy counts were recorded (no `strategies_fresh`
    or `strategies_flagged`) is not contradicted by its result files' counts."""
    shards = [sweep(tmp_path / name, capsys, "--shard", f"{i}/2") for i, name in ((1, "a"), (2, "b"))]
    for shard in shards:
        data = json.loads((shard / SWEEP_FILE).read_text())
        for run in data["experiments"]:
            del run["strategies_fresh"], run["strategies_flagged"]
        (shard / SWEEP_FILE).write_text(json.dumps(data))
    assert main(["sweep-merge", *map(str, shards), "--results-dir", str(tmp_path / "m")]) == 0


def test_a_cell_that_failed_before_it_started_does_not_stop_the_merge(tmp_path, capsys):
    """A cell that could not start (too many open files) gave no number: its directory holds
    only rounds/, and the shards still merge, as a failed sweep."""
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    two = sweep(tmp_path / "b", capsys, "--shard", "2/2")
    result = read_json(two / SWEEP_FILE, SweepResult)
    first = result.experiments[0]
    for path in sorted((two / first.directory).rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (two / first.directory / "rounds").mkdir()
    failed = msgspec.structs.replace(
        first,
        status="failed",
        message="cannot start the experiment: [Errno 24]",
        rounds=0,
        metrics={},
        cooperation_per_round=[],
        valid=None,
    )
    set_sweep(two, status="failed", experiments=[failed, *result.experiments[1:]])
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(tmp_path / "m")]) == 1
    merged = load_sweep(Path(capsys.readouterr().out.strip().splitlines()[-1])).result
    assert merged is not None and merged.status == "failed"


def test_a_failed_copy_leaves_no_half_made_sweep(tmp_path, capsys, monkeypatch):
    import shutil

    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    two = sweep(tmp_path / "b", capsys, "--shard", "2/2")
    copies = []

    def copytree(source, target):
        copies.append(target)
        if len(copies) == 3:
            raise OSError(28, "No space left on device")
        return shutil.copytree(source, target)

    monkeypatch.setattr("engine.shard.shutil.copytree", copytree)
    merged = tmp_path / "m"
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(merged)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert merged.is_dir() and not any(merged.iterdir())  # the target's sweep directory is gone


def test_the_merged_sweep_counts_the_shards_resumes(tmp_path, capsys):
    one = sweep(tmp_path / "a", capsys, "--shard", "1/2")
    two = sweep(tmp_path / "b", capsys, "--shard", "2/2")
    set_sweep(one, resumed=1)
    set_sweep(two, resumed=2)
    assert main(["sweep-merge", str(one), str(two), "--results-dir", str(tmp_path / "m")]) == 0
    merged = load_sweep(Path(capsys.readouterr().out.strip().splitlines()[-1])).result
    assert merged is not None and merged.resumed == 3


def test_a_shard_says_which_slice_it_runs(tmp_path, capsys):
    main(["sweep", "--headless", *FLAGS, "--results-dir", str(tmp_path), "--shard", "3/3"])
    first = capsys.readouterr().err.splitlines()[0]
    assert ": shard 3/3: 2 of 8 experiments (2 conditions x 4 seeds) (baseline, identity; seeds 7..10)" in first


def test_merge_refuses_an_unsharded_sweep(tmp_path, capsys):
    whole = sweep(tmp_path / "whole", capsys)
    assert main(["sweep-merge", str(whole)]) == 2
    assert "not a shard" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "3", "1/9"])
def test_bad_shard_is_one_clear_error(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text, cells=8)
