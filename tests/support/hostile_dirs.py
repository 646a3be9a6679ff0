"""Hostile results directories for tests: how each case breaks a finished experiment (a
FIFO or non-UTF-8 run.lock, round files symlinked to /dev/zero, a manifest with 1e9 agents,
a sparse 3 GiB call log, escape sequences in the files ...), and a copy broken that way."""

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

TIMEOUT_S = 20  # each command; a hang (FIFO read, /dev/zero, a 1e9 loop) would take forever
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200b-\u200f]")


def edit(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def relink(path: Path, target: str) -> None:
    path.unlink()
    path.symlink_to(target)


def refifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def move_out(path: Path) -> None:
    """Move `path` out of the experiment directory and leave a symlink to it in its place."""
    outside = path.parent.parent.parent / f"outside_{path.name}"
    path.rename(outside)
    path.symlink_to(outside)


def sparse(path: Path, size: int) -> None:
    with open(path, "ab") as file:
        file.truncate(size)


def set_config(**values: object) -> Callable[[Path], None]:
    return lambda d: edit(d / "manifest.json", lambda m: m["config"].update(values))


def hostile_text(d: Path, extra: str = "") -> None:
    """A strategy with a terminal-clearing sequence, OSC 52 (clipboard write) and a bidi
    override, and `extra`, as JSON escapes."""
    path = d / "rounds" / "strategies_r1.json"
    escapes = "\\u001b[2J\\u001b]52;c;aGk=\\u0007\\u202e" + extra
    path.write_text(path.read_text().replace('"strategy_text": "', f'"strategy_text": "{escapes} ', 1))


# name -> (how the directory is made hostile, resume's exit code, a phrase resume says)
CASES: dict[str, tuple[Callable[[Path], None], int, str]] = {
    "lock_not_utf8": (lambda d: (d / "run.lock").write_bytes(b"\xff\xfe\x1b[2J\n"), 0, ""),
    "lock_fifo": (lambda d: refifo(d / "run.lock"), 0, ""),
    "lock_symlink_to_dev_zero": (lambda d: (d / "run.lock").symlink_to("/dev/zero"), 0, ""),
    "summary_to_dev_zero": (
        lambda d: relink(d / "rounds" / "summary_r1.json", "/dev/zero"),
        2,
        "summary_r1.json is a symbolic link",
    ),
    "games_to_outside_file": (
        lambda d: relink(d / "rounds" / "games_r1.json", "/etc/hostname"),
        2,
        "games_r1.json is a symbolic link",
    ),
    "manifest_fifo": (lambda d: refifo(d / "manifest.json"), 2, "not a regular file"),
    "manifest_1e9_agents": (set_config(agents=10**9), 2, "config.agents"),
    "manifest_1e12_rounds": (set_config(rounds=10**12), 2, "config.rounds"),
    "manifest_1e9_concurrency": (
        lambda d: edit(d / "manifest.json", lambda m: m["config"]["provider"].update(max_concurrency=10**9)),
        2,
        "max_concurrency",
    ),
    "manifest_latency_1e300": (
        lambda d: edit(d / "manifest.json", lambda m: m["config"]["provider"].update(latency_ms=1e300)),
        2,
        "latency_ms",
    ),
    "result_huge_counts": (
        lambda d: edit(
            d / "experiment_results.json",
            lambda r: r.update(total_rounds=10**15, total_games=10**18, total_api_calls=10**18),
        ),
        0,
        "",
    ),
    "summary_huge_round_number": (
        lambda d: (d / "rounds" / "summary_r999999999.json").write_text("{}"),
        2,
        "not rounds",
    ),
    "calls_sparse_3_gib": (lambda d: sparse(d / "calls.jsonl", 3 << 30), 2, "calls.jsonl"),
    "calls_fifo": (lambda d: refifo(d / "calls.jsonl"), 2, "calls.jsonl is not a regular file"),
    "rounds_dir_symlinked_outside": (lambda d: move_out(d / "rounds"), 2, "rounds is a symbolic link"),
    "hostile_text": (hostile_text, 0, ""),
    "lone_surrogate_in_a_file": (lambda d: hostile_text(d, "\\ud800"), 2, "surrogate"),
}


def hostile_copy(experiment: Path, tmp_path: Path, case: str) -> Path:
    """A copy of `experiment` in tmp_path/results, broken as CASES[case] says."""
    directory = tmp_path / "results" / experiment.name
    shutil.copytree(experiment, directory)
    CASES[case][0](directory)
    return directory
