"""A model without a known price is said twice and never swallowed: once to whoever made
the provider (the app's warning, or the log for the headless CLI) and once in the run's
error log — for a new run, a resumed run and the experiments of a sweep."""

import json
from pathlib import Path

import anyio
import httpx

from engine.config import Config
from engine.control import RunControl
from engine.events import GameFinished
from engine.models import ErrorRecord
from engine.providers.openai_compat import OpenAICompatProvider
from engine.resume import open_resume, resume_experiment
from engine.runner import run_experiment
from engine.store import list_experiments, read_jsonl
from engine.sweep import plan_sweep, run_sweep

UNPRICED = "local/unpriced"
SETTINGS = {
    "agents": 3,
    "rounds": 2,
    "models": {"sub": UNPRICED},
    "provider": {"name": "openai", "base_url": "http://127.0.0.1:9/v1"},
}


def handler(request: httpx.Request) -> httpx.Response:
    prompt = json.loads(request.content)["messages"][0]["content"]
    text = "COOPERATE" if "Decision (" in prompt else "STRATEGY: Cooperate."
    return httpx.Response(
        200,
        json={
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 2},
        },
    )


def provider(config: Config, warned: list[str]) -> OpenAICompatProvider:
    return OpenAICompatProvider(
        config.provider, api_key=None, transport=httpx.MockTransport(handler), on_unknown_price=warned.append
    )


def unknown_prices(directory: Path) -> list[str]:
    errors, bad = read_jsonl(directory / "experiment_errors.log", ErrorRecord)
    assert not bad
    return [str(e.context.get("model")) for e in errors if e.type == "unknown_price"]


def test_a_run_tells_the_provider_s_maker_and_its_error_log(make_config):
    config = make_config(**SETTINGS)
    warned: list[str] = []
    result = anyio.run(lambda: run_experiment(config, provider=provider(config, warned)))
    assert result.status == "completed" and result.cost_is_estimate
    (loaded,) = list_experiments(Path(config.results_dir))
    assert warned == [UNPRICED] and unknown_prices(loaded.directory) == [UNPRICED]


def test_a_resumed_run_tells_both_again(make_config):
    config = make_config(**SETTINGS)
    control = RunControl()

    class AbortInRound1:  # not at its end: round 2's calls may be made while round 1 is saved
        def on_event(self, event: object) -> None:
            if isinstance(event, GameFinished):
                control.abort()

    first: list[str] = []
    result = anyio.run(
        lambda: run_experiment(config, provider=provider(config, first), observer=AbortInRound1(), control=control)
    )
    assert result.status == "aborted" and result.total_rounds < 2  # round 2's calls are still to make
    (loaded,) = list_experiments(Path(config.results_dir))
    resumable = open_resume(loaded.directory)
    warned: list[str] = []
    result = anyio.run(lambda: resume_experiment(resumable, provider(resumable.config, warned)))
    assert result.status == "completed"
    assert warned == [UNPRICED] and unknown_prices(loaded.directory) == [UNPRICED, UNPRICED]


def test_every_experiment_of_a_sweep_tells_both(tmp_path):
    plan = plan_sweep(None, {**SETTINGS, "seed": 5, "results_dir": str(tmp_path)}, "baseline,identity", 1, env={})
    warned: list[str] = []
    result, directory = anyio.run(lambda: run_sweep(plan, [provider(config, warned) for _, config in plan.runs()]))
    assert [run.status for run in result.experiments] == ["completed", "completed"]
    assert warned == [UNPRICED, UNPRICED]  # one provider per experiment
    assert [unknown_prices(directory / run.directory) for run in result.experiments] == [[UNPRICED]] * 2


def test_the_headless_cli_warns_once_per_model_and_logs_it_per_experiment(tmp_path, monkeypatch, caplog):
    from acausal_tui.cli import main
    from engine import pricing
    from tests.support import stub_server as stub

    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-unknown-price-0123456789")
    monkeypatch.setattr(pricing, "_warned", set())
    monkeypatch.setattr(pricing.log, "disabled", False)  # lint-imports run in-process (test_imports) disables it
    config = tmp_path / "config.toml"
    with stub.StubServer() as server:
        config.write_text(f'[provider]\nname = "openrouter"\nbase_url = "{server.base_url}"\n')
        flags = [
            "--headless",
            "--config",
            str(config),
            "--provider",
            "openai",
            "--sub-model",
            UNPRICED,
            "--agents",
            "2",
            "--rounds",
            "1",
            "--seed",
            "3",
        ]
        assert main(["run", *flags, "--results-dir", str(tmp_path / "run")]) == 0
        assert (
            main(
                ["sweep", *flags, "--results-dir", str(tmp_path / "sweep"), "--conditions", "baseline", "--seeds", "2"]
            )
            == 0
        )
    said = [r.getMessage() for r in caplog.records if "no price known" in r.getMessage()]
    assert said == [f"no price known for model {UNPRICED!r}: its cost counts as 0 (set provider.prices)"]
    logs = sorted(tmp_path.rglob("experiment_errors.log"))
    assert len(logs) == 3 and all(unknown_prices(log.parent) == [UNPRICED] for log in logs)
