"""`acausal-tui` / `acausal-tui run` open the app on a new run; `acausal-tui browse` opens the
browser; bad input exits 2 before the app opens. The app itself runs under Pilot here."""

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Input

from acausal_tui.app import AcausalApp
from acausal_tui.cli import common as cli_common
from acausal_tui.cli import main
from acausal_tui.screens.dialogs import ConfirmScreen
from acausal_tui.screens.new_run import NewRunScreen
from acausal_tui.screens.run import RunScreen
from tests.tui.conftest import FIXTURE_RESULTS, SIZE, settle, wait_until


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


def test_browse_then_a_run_quit_midway_prints_its_directory_and_exits_130(tmp_path, monkeypatch, capsys):
    """browse -> n -> start -> q, y: the run is aborted and the command says so as `run` does."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    slow = tmp_path / "slow.toml"
    slow.write_text("[provider]\nlatency_ms = 50\n")  # rounds take long enough to quit mid-run
    apps: list[AcausalApp] = []

    def run(self: AcausalApp) -> None:
        async def drive() -> None:
            async with self.run_test(size=SIZE) as pilot:
                await settle(pilot)
                await pilot.press("n")
                await wait_until(pilot, lambda: isinstance(self.screen, NewRunScreen))
                for name, value in {"config": str(slow), "agents": "4", "rounds": "50", "seed": "1"}.items():
                    self.screen.query_one(f"#f-{name}", Input).value = value
                await pilot.press("ctrl+s")
                await wait_until(pilot, lambda: isinstance(self.screen, RunScreen) and self.directory is not None)
                await pilot.press("q")
                await wait_until(pilot, lambda: isinstance(self.screen, ConfirmScreen))
                await pilot.press("y")
                await wait_until(pilot, lambda: self.status is not None)
                await self.workers.wait_for_complete()

        apps.append(self)
        asyncio.run(drive())

    monkeypatch.setattr(AcausalApp, "run", run)
    monkeypatch.setattr(cli_common, "check_terminal", lambda: None)
    (tmp_path / "results").mkdir()
    assert main(["browse", "--results-dir", str(tmp_path / "results")]) == 130
    (app,) = apps
    assert app.status == "aborted"
    assert capsys.readouterr().out.strip() == str(app.directory)
