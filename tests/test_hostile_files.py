"""Hostile results directories: a non-UTF-8 or FIFO run.lock, a round file symlinked to
/dev/zero, a manifest with 1e9 agents, huge counts, a sparse 3 GiB call log, escape
sequences and lone surrogates in the files and in a directory name. `browse`, `resume` and
`export` each end within seconds (subprocess timeouts), print clear lines, never a
traceback, and never write a raw control character to the terminal."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from acausal_tui.cli import main
from tests.support.experiment_files import ROOT

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
    "summary_to_dev_zero": (lambda d: relink(d / "rounds" / "summary_r1.json", "/dev/zero"), 2,
                            "summary_r1.json is a symbolic link"),
    "games_to_outside_file": (lambda d: relink(d / "rounds" / "games_r1.json", "/etc/hostname"), 2,
                              "games_r1.json is a symbolic link"),
    "manifest_fifo": (lambda d: refifo(d / "manifest.json"), 2, "not a regular file"),
    "manifest_1e9_agents": (set_config(agents=10**9), 2, "config.agents"),
    "manifest_1e12_rounds": (set_config(rounds=10**12), 2, "config.rounds"),
    "manifest_1e9_concurrency": (lambda d: edit(d / "manifest.json", lambda m: m["config"]["provider"].update(
        max_concurrency=10**9)), 2, "max_concurrency"),
    "manifest_latency_1e300": (lambda d: edit(d / "manifest.json", lambda m: m["config"]["provider"].update(
        latency_ms=1e300)), 2, "latency_ms"),
    "result_huge_counts": (lambda d: edit(d / "experiment_results.json", lambda r: r.update(
        total_rounds=10**15, total_games=10**18, total_api_calls=10**18)), 0, ""),
    "summary_huge_round_number": (lambda d: (d / "rounds" / "summary_r999999999.json").write_text("{}"), 2,
                                  "not rounds"),
    "calls_sparse_3_gib": (lambda d: sparse(d / "calls.jsonl", 3 << 30), 2, "calls.jsonl"),
    "calls_fifo": (lambda d: refifo(d / "calls.jsonl"), 2, "calls.jsonl is not a regular file"),
    "rounds_dir_symlinked_outside": (lambda d: move_out(d / "rounds"), 2, "rounds is a symbolic link"),
    "hostile_text": (hostile_text, 0, ""),
    "lone_surrogate_in_a_file": (lambda d: hostile_text(d, "\\ud800"), 2, "surrogate"),
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A finished 3-agent, 2-round simulated experiment marked aborted (so resumable)."""
    results = tmp_path_factory.mktemp("made")
    assert main(["run", "--headless", "--agents", "3", "--rounds", "2", "--seed", "5",
                 "--results-dir", str(results)]) == 0
    directory = next(results.iterdir())
    edit(directory / "manifest.json", lambda m: m.update(status="aborted"))
    return directory


def hostile_copy(experiment: Path, tmp_path: Path, case: str) -> Path:
    import shutil

    directory = tmp_path / "results" / experiment.name
    shutil.copytree(experiment, directory)
    CASES[case][0](directory)
    return directory


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "acausal_tui", *args], capture_output=True,
                          text=True, errors="surrogateescape", timeout=TIMEOUT_S, cwd=ROOT,
                          env={**os.environ, "OPENROUTER_API_KEY": ""})
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream, stream
        assert not RAW_CONTROL.search(stream), repr(stream)
    return proc


@pytest.mark.parametrize("case", CASES)
def test_resume_of_a_hostile_directory_is_one_clear_line(experiment, tmp_path, case):
    directory = hostile_copy(experiment, tmp_path, case)
    _, code, phrase = CASES[case]
    proc = cli("resume", str(directory), "--headless")
    assert proc.returncode == code, proc.stderr
    if code == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("acausal-tui: error:"), proc.stderr
        assert phrase in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES)
def test_export_of_a_hostile_directory_warns_and_ends(experiment, tmp_path, case):
    directory = hostile_copy(experiment, tmp_path, case)
    proc = cli("export", str(directory), "--out", str(tmp_path / "csv"))
    assert proc.returncode in (0, 1, 2), proc.stderr
    assert all(line.startswith("acausal-tui: ") for line in proc.stderr.splitlines()), proc.stderr


BROWSE = """
import asyncio, sys
from pathlib import Path
from acausal_tui.app import AcausalApp
from textual.widgets import DataTable

async def main():
    app = AcausalApp(results_dir=Path(sys.argv[1]))
    async with app.run_test(size=(160, 48)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(DataTable)
        print("rows", table.row_count)
        for _ in range(table.row_count):
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            print("screen", type(app.screen).__name__)
            for notification in app._notifications:
                print("note", notification.title, notification.message)
            app.clear_notifications()
            if type(app.screen).__name__ != "BrowserScreen":
                await pilot.press("escape")
                await pilot.pause()
            await pilot.press("down")
        await pilot.press("q")

asyncio.run(main())
"""


def test_browse_of_every_hostile_directory_at_once(experiment, tmp_path):
    """All the cases side by side in one results directory, one of them under a name with
    an escape sequence, a bidi override and a non-UTF-8 byte: every row listed and opened,
    the unreadable ones named (visibly) in a notification."""
    for case in CASES:
        hostile_copy(experiment, tmp_path / case, case)
        (tmp_path / "results").mkdir(exist_ok=True)
        (tmp_path / case / "results" / experiment.name).rename(tmp_path / "results" / f"exp_{case}")
    weird = os.fsencode(tmp_path / "results") + b"/exp_\x1b[2J\xff\xe2\x80\xae"
    os.rename(tmp_path / "results" / "exp_manifest_fifo", weird)
    proc = subprocess.run([sys.executable, "-c", BROWSE, str(tmp_path / "results")], capture_output=True,
                          text=True, errors="surrogateescape", timeout=TIMEOUT_S * 3, cwd=ROOT)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"rows {len(CASES)}" in proc.stdout, proc.stdout
    assert proc.stdout.count("screen ") == len(CASES)
    assert not RAW_CONTROL.search(proc.stdout.replace("\n", "")), repr(proc.stdout)
    assert "note exp_\\x1b[2J\ufffd<U+202E> is unreadable manifest.json is not a regular file" in proc.stdout, (
        proc.stdout)
