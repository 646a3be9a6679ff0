"""sweep.json read back checked in one place (engine.sweep_file.load_sweep): a file that
decodes but makes no sense is refused with the same one line by every reader."""

import json
from pathlib import Path

import pytest

from acausal_tui.cli import main
from engine.sweep import SWEEP_FILE, list_sweeps, load_sweep
from tests.support.sweeps import finished_simulated_sweep


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return finished_simulated_sweep(tmp_path_factory.mktemp("sweep"))


def spoiled(finished: Path, tmp_path: Path, change) -> Path:
    directory = tmp_path / "results" / finished.name
    directory.parent.mkdir()
    directory.mkdir()
    data = json.loads((finished / SWEEP_FILE).read_text())
    change(data)
    (directory / SWEEP_FILE).write_text(json.dumps(data))
    return directory


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda s: s["differences"][0].update(cooperation_per_round=[]),
            "sweep.json: cooperation_per_round lists of different lengths (0, 2)",
        ),
        (
            lambda s: s["summary"][0]["metrics"].pop("overall_cooperation_rate"),
            "sweep.json: baseline: no overall_cooperation_rate",
        ),
    ],
)
def test_a_sweep_json_that_makes_no_sense_is_refused_alike_everywhere(finished, tmp_path, capsys, change, problem):
    directory = spoiled(finished, tmp_path, change)

    loaded = load_sweep(directory)

    assert loaded.result is None and loaded.problem == problem
    assert [s.problem for s in list_sweeps(directory.parent)] == [problem]  # the browser's list
    assert main(["export", str(directory)]) == 2
    assert capsys.readouterr().err == f"acausal-tui: error: DIR: {directory}: {problem}\n"
    assert main(["resume", str(directory), "--headless"]) == 2
    assert problem in capsys.readouterr().err


def test_the_finished_sweep_itself_reads_back(finished):
    assert load_sweep(finished).problem is None
