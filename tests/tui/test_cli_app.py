"""`acausal-tui` / `acausal-tui run` open the app on a new run; `acausal-tui browse` opens the
browser; bad input exits 2 before the app opens. The app itself runs under Pilot here."""

from pathlib import Path

import pytest

from acausal_tui.cli import main
from tests.tui.conftest import FIXTURE_RESULTS


@pytest.mark.parametrize("command", [[], ["run"]])
def test_run_without_headless_opens_the_app_and_starts_at_once(opened, tmp_path, capsys, command):
    code = main(
        [
            *command,
            "--agents",
            "3",
            "--rounds",
            "2",
            "--seed",
            "5",
            "--provider",
            "simulated",
            "--results-dir",
            str(tmp_path),
        ]
    )
    assert code == 0
    (app,) = opened
    assert app.status == "completed"
    assert capsys.readouterr().out.strip() == str(app.directory)
    assert Path(app.directory).parent == tmp_path


def test_browse_opens_the_browser(opened):
    assert main(["browse", "--results-dir", str(FIXTURE_RESULTS)]) == 0
    (app,) = opened
    assert app.run_fn is None and app.results_dir == FIXTURE_RESULTS


def test_bad_input_exits_2_before_the_app_opens(opened, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    assert main(["--agents", "1", "--results-dir", str(tmp_path)]) == 2
    assert main(["--provider", "openrouter", "--results-dir", str(tmp_path)]) == 2
    assert "OPENROUTER_API_KEY" in capsys.readouterr().err
    assert opened == [] and not any(tmp_path.iterdir())
