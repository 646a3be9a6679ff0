"""Conformance against a real third-party OpenAI-compatible server we did not write: the
LiteLLM proxy, with mock models (fixed replies, a delayed one, one that answers with a
rate-limit error). Deselected by default; run with `-m conformance`.

LiteLLM is never a dependency of this project. Install it in a separate venv and point
LITELLM_BIN at its `litellm` (otherwise `litellm` on PATH is used; the tests skip with the
reason when neither runs):

    python3 -m venv /tmp/litellm-venv
    /tmp/litellm-venv/bin/pip install 'litellm[proxy]==1.106.2' 'certifi<=2026.10.18'
    LITELLM_BIN=/tmp/litellm-venv/bin/litellm .venv/bin/python -m pytest -m conformance
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from acausal_tui.cli import main
from engine.models import ExperimentResult
from engine.store import read_json
from tests.support.stub_run import calls_of

pytestmark = pytest.mark.conformance

MASTER_KEY = "sk-conformance-master-key-0123456789"
KEY_ENV = "ACAUSAL_CONFORMANCE_KEY"
STARTUP_S = 120.0
STRATEGY = "Reciprocity works.\\n\\nSTRATEGY: Cooperate first, then copy the opponent's last move."
CONFIG = f"""\
model_list:
  - model_name: stub/main
    litellm_params:
      model: openai/stub-main
      api_key: not-used
      mock_response: "{STRATEGY}"
  - model_name: stub/sub
    litellm_params:
      model: openai/stub-sub
      api_key: not-used
      mock_response: "COOPERATE"
  - model_name: stub/slow
    litellm_params:
      model: openai/stub-slow
      api_key: not-used
      mock_response: "DEFECT"
      mock_delay: 1
  - model_name: stub/limited
    litellm_params:
      model: openai/stub-limited
      api_key: not-used
      mock_response: "litellm.RateLimitError"
router_settings:
  num_retries: 0
general_settings:
  master_key: {MASTER_KEY}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def litellm_url(tmp_path_factory: pytest.TempPathFactory):
    binary = os.environ.get("LITELLM_BIN") or shutil.which("litellm")
    if not binary or not os.access(binary, os.X_OK):
        pytest.skip(
            "litellm is not installed: pip install 'litellm[proxy]==1.106.2' 'certifi<=2026.10.18' "
            "into a separate venv and set LITELLM_BIN to its litellm"
        )
    home = tmp_path_factory.mktemp("litellm")
    config = home / "config.yaml"
    config.write_text(CONFIG)
    log = home / "litellm.log"
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                pytest.skip(f"litellm exited with {process.returncode} at startup:\n{log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.skip(f"litellm did not answer within {STARTUP_S:.0f} s:\n{log_tail(log)}")
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(autouse=True)
def api_key(monkeypatch, fast_backoff):
    monkeypatch.setenv(KEY_ENV, MASTER_KEY)


def run(
    tmp_path: Path, url: str, sub_model: str, *, agents: int = 3, rounds: int = 1, timeout_s: float = 10.0
) -> tuple[int, Path]:
    config = tmp_path / "config.toml"
    prices = "".join(
        f'[provider.prices."stub/{m}"]\ninput = 0.1\noutput = 0.4\n' for m in ("main", "sub", "slow", "limited")
    )
    config.write_text(f'[provider]\napi_key_env = "{KEY_ENV}"\ntimeout_s = {timeout_s}\n{prices}')
    results = tmp_path / "results"
    code = main(
        [
            "run",
            "--headless",
            "--config",
            str(config),
            "--provider",
            "openai",
            "--base-url",
            f"{url}/v1",
            "--main-model",
            "stub/main",
            "--sub-model",
            sub_model,
            "--agents",
            str(agents),
            "--rounds",
            str(rounds),
            "--seed",
            "5",
            "--results-dir",
            str(results),
        ]
    )
    (directory,) = results.glob("exp_*")
    return code, directory


def test_experiment_through_litellm(tmp_path, litellm_url, capsys):
    code, directory = run(tmp_path, litellm_url, "stub/sub", rounds=2)
    out, err = capsys.readouterr()
    assert code == 0
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.status == "completed" and result.total_rounds == 2 and result.error_count == 0
    assert result.total_retries == 0 and result.total_api_calls == 2 * (3 + 6)
    assert result.cost_is_estimate is True  # not OpenRouter: cost comes from the price table
    assert all(s.cooperation_rate == 1.0 for s in result.round_summaries)
    calls = calls_of(directory)
    assert all(c.reply and c.usage.completion_tokens > 0 for c in calls)
    strategy = next(c for c in calls if c.key.startswith("strategy/"))
    assert "STRATEGY:" in (strategy.reply or "")
    for path in directory.rglob("*"):
        if path.is_file():
            assert MASTER_KEY.encode() not in path.read_bytes()
    assert MASTER_KEY not in out + err


def test_delayed_model_within_the_timeout(tmp_path, litellm_url):
    code, directory = run(tmp_path, litellm_url, "stub/slow", agents=2)
    assert code == 0
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.total_retries == 0 and result.round_summaries[0].cooperation_rate == 0.0
    decisions = [c for c in calls_of(directory) if c.key.startswith("decision/")]
    assert all(c.latency_s >= 0.9 for c in decisions)


def test_delayed_model_past_the_timeout_is_retried_then_stops_the_run(tmp_path, litellm_url):
    # every decision times out even after its retries: a round of coin flips is not data
    code, directory = run(tmp_path, litellm_url, "stub/slow", agents=2, timeout_s=0.4)
    assert code == 1
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.status == "failed" and "every decision call of round 1 failed" in result.message
    assert result.total_retries == 2 * 3 and result.total_rounds == 0
    decisions = [c for c in calls_of(directory) if c.key.startswith("decision/")]
    assert all(c.attempts == 4 and c.error and "timeout" in c.error for c in decisions)


def test_rate_limit_error_is_retried_then_stops_the_run(tmp_path, litellm_url):
    code, directory = run(tmp_path, litellm_url, "stub/limited", agents=2)
    assert code == 1
    result = read_json(directory / "experiment_results.json", ExperimentResult)
    assert result.status == "failed" and "HTTP 429" in result.message
    assert result.total_retries == 2 * 3 and result.total_rounds == 0
    decisions = [c for c in calls_of(directory) if c.key.startswith("decision/")]
    assert all(c.attempts == 4 and c.error and "HTTP 429" in c.error for c in decisions)
