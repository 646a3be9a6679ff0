"""Browsing a results directory of every hostile case at once (tests/support/hostile_dirs.py),
in a subprocess so that a hang times out: every row listed and opened, the unreadable ones
named visibly, never a raw control character on the terminal."""

import os
import subprocess
import sys

from tests.support.experiment_files import ROOT
from tests.support.hostile_dirs import (
    CASES,
    RAW_CONTROL,
    TIMEOUT_S,
    hostile_copy,
)

BROWSE = """
import asyncio, sys
from pathlib import Path
from acausal_tui.app import AcausalApp
from textual.app import App
from textual.widgets import DataTable

shown = App.notify

def notify(self, message, *, title="", **options):  # what the app shows, as it shows it
    print("note", title, message)
    return shown(self, message, title=title, **options)

App.notify = notify

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
            app.clear_notifications()
            if type(app.screen).__name__ != "BrowserScreen":
                await pilot.press("escape")
                await pilot.pause()
            await pilot.press("down")
        await pilot.press("q")

asyncio.run(main())
"""


def test_browse_of_every_hostile_directory_at_once(aborted_experiment, tmp_path):
    """All the cases side by side in one results directory, one of them under a name with
    an escape sequence, a bidi override and a non-UTF-8 byte: every row listed and opened,
    the unreadable ones named (visibly) in a notification."""
    for case in CASES:
        hostile_copy(aborted_experiment, tmp_path / case, case)
        (tmp_path / "results").mkdir(exist_ok=True)
        (tmp_path / case / "results" / aborted_experiment.name).rename(tmp_path / "results" / f"exp_{case}")
    weird = os.fsencode(tmp_path / "results") + b"/exp_\x1b[2J\xff\xe2\x80\xae"
    os.rename(tmp_path / "results" / "exp_manifest_fifo", weird)
    proc = subprocess.run(
        [sys.executable, "-c", BROWSE, str(tmp_path / "results")],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=TIMEOUT_S * 3,
        cwd=ROOT,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert f"rows {len(CASES)}" in proc.stdout, proc.stdout
    assert proc.stdout.count("screen ") == len(CASES)
    assert not RAW_CONTROL.search(proc.stdout.replace("\n", "")), repr(proc.stdout)
    assert "note exp_\\x1b[2J\ufffd<U+202E> is unreadable manifest.json is not a regular file" in proc.stdout, (
        proc.stdout
    )
