"""A model without a known price: the app started from the command line warns about it
(once per model), for a new run, a resumed one and a sweep, while each experiment's error
log records it too."""

from pathlib import Path

import anyio
import pytest

from acausal_tui.app import AcausalApp
from acausal_tui.cli import main
from engine.control import RunControl
from engine.events import GameFinished
from engine.models import ErrorRecord
from engine.providers.factory import make_provider
from engine.runner import run_experiment
from engine.store import read_jsonl
from tests.support import stub_server as stub

UNPRICED = "local/unpriced"
WARNING = f"no price known for model {UNPRICED!r}: its cost counts as 0 (set provider.prices)"


@pytest.fixture
def warned(monkeypatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(AcausalApp, "warn", lambda self, message: said.append(message))
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-unknown-price-app-0123456789")
    return said


def flags(tmp_path: Path, server: stub.StubServer) -> list[str]:
    config = tmp_path / "config.toml"
    config.write_text(f'[provider]\nname = "openrouter"\nbase_url = "{server.base_url}"\n')
    return [
        "--config",
        str(config),
        "--provider",
        "openai",
        "--sub-model",
        UNPRICED,
        "--agents",
        "2",
        "--seed",
        "3",
        "--results-dir",
        str(tmp_path / "results"),
    ]


def logged(directory: Path) -> list[str]:
    errors, _ = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    return [str(e.context.get("model")) for e in errors if e.type == "unknown_price"]


def test_a_run_warns_in_the_app(opened, warned, tmp_path):
    with stub.StubServer() as server:
        assert main(["run", *flags(tmp_path, server), "--rounds", "1"]) == 0
    (directory,) = (tmp_path / "results").glob("exp_*")
    assert warned == [WARNING] and logged(directory) == [UNPRICED]


def test_a_resumed_run_warns_in_the_app(opened, warned, make_config, tmp_path):
    with stub.StubServer() as server:
        config = make_config(
            agents=2,
            rounds=2,
            models={"sub": UNPRICED},
            provider={"name": "openai", "base_url": server.base_url, "api_key_env": "OPENROUTER_API_KEY"},
        )
        control = RunControl()

        class StopAfterRound1:  # at its game: round 2's calls may be made while round 1 is saved
            def on_event(self, event: object) -> None:
                if isinstance(event, GameFinished):
                    control.abort()

        provider = make_provider(config, on_unknown_price=lambda model: None)
        result = anyio.run(
            lambda: run_experiment(config, provider=provider, observer=StopAfterRound1(), control=control)
        )
        assert result.status == "aborted" and warned == []
        (directory,) = Path(config.results_dir).glob("exp_*")
        assert main(["resume", str(directory)]) == 0
    assert opened[-1].status == "completed"
    assert warned == [WARNING] and logged(directory) == [UNPRICED, UNPRICED]


def test_a_sweep_warns_once_in_the_app(opened, warned, tmp_path):
    with stub.StubServer() as server:
        assert (
            main(["sweep", *flags(tmp_path, server), "--rounds", "1", "--conditions", "baseline", "--seeds", "2"]) == 0
        )
    assert warned == [WARNING]
    logs = sorted((tmp_path / "results").rglob("experiment_errors.log"))
    assert [logged(log.parent) for log in logs] == [[UNPRICED], [UNPRICED]]
