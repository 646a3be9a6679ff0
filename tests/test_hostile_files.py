"""Hostile results directories (tests/support/hostile_dirs.py): a non-UTF-8 or FIFO run.lock,
a round file symlinked to /dev/zero, a manifest with 1e9 agents, huge counts, a sparse
3 GiB call log, escape sequences and lone surrogates in the files. `resume` and `export`
each end within seconds (subprocess timeouts), print clear lines, never a traceback, and
never write a raw control character to the terminal (browsing them all:
tests/tui/test_hostile_browse.py)."""

import os
import subprocess
import sys

import pytest

from tests.support.experiment_files import ROOT
from tests.support.hostile_dirs import (
    CASES,
    RAW_CONTROL,
    TIMEOUT_S,
    hostile_copy,
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "acausal_tui", *args],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=TIMEOUT_S,
        cwd=ROOT,
        env={**os.environ, "OPENROUTER_API_KEY": ""},
    )
    for stream in (proc.stdout, proc.stderr):
        assert "Traceback" not in stream, stream
        assert not RAW_CONTROL.search(stream), repr(stream)
    return proc


@pytest.mark.parametrize("case", CASES)
def test_resume_of_a_hostile_directory_is_one_clear_line(aborted_experiment, tmp_path, case):
    directory = hostile_copy(aborted_experiment, tmp_path, case)
    _, code, phrase = CASES[case]
    proc = cli("resume", str(directory), "--headless")
    assert proc.returncode == code, proc.stderr
    if code == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("acausal-tui: error:"), proc.stderr
        assert phrase in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES)
def test_export_of_a_hostile_directory_warns_and_ends(aborted_experiment, tmp_path, case):
    directory = hostile_copy(aborted_experiment, tmp_path, case)
    proc = cli("export", str(directory), "--out", str(tmp_path / "csv"))
    assert proc.returncode in (0, 1, 2), proc.stderr
    assert all(line.startswith("acausal-tui: ") for line in proc.stderr.splitlines()), proc.stderr
