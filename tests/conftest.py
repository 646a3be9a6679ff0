import json
import signal
from pathlib import Path

import msgspec
import pytest

from acausal_tui.cli import main
from engine import limits
from engine.config import load_config
from engine.runner import with_seed
from tests.support.stub_server import StubServer

# The handlers pytest started with, before any fixture ran a headless run.
ORIGINAL_HANDLERS = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


@pytest.fixture(autouse=True)
def signal_handlers():
    """A headless run ignores SIGINT and SIGTERM once it ends (cli.common.abort_on_signals),
    until its process exits: after each test the process gets pytest's own handlers back
    (not those a module fixture's run left), so Ctrl+C still stops a test session."""
    yield
    for signum, handler in ORIGINAL_HANDLERS.items():
        signal.signal(signum, handler)


@pytest.fixture
def server():
    """The local OpenRouter-shaped stub server on 127.0.0.1, for one test."""
    with StubServer() as running:
        yield running


@pytest.fixture
def fast_backoff(monkeypatch):
    """Retries wait 10 ms at most instead of seconds (the backoff's base is scaled down)."""
    monkeypatch.setattr(limits, "BACKOFF_BASE_S", 0.01)


@pytest.fixture(scope="module")
def aborted_experiment(tmp_path_factory) -> Path:
    """A finished 3-agent, 2-round simulated experiment marked aborted (so resumable), made
    once per test module."""
    results = tmp_path_factory.mktemp("made")
    assert (
        main(["run", "--headless", "--agents", "3", "--rounds", "2", "--seed", "5", "--results-dir", str(results)]) == 0
    )
    directory = next(results.iterdir())
    manifest = directory / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "aborted"}))
    return directory


@pytest.fixture
def make_config(tmp_path: Path):
    """A resolved, seeded config writing under tmp_path (simulated provider, no key)."""

    def make(**overrides):
        overrides.setdefault("results_dir", str(tmp_path / "results"))
        overrides.setdefault("seed", 7)
        overrides.setdefault("provider", {}).setdefault("name", "simulated")
        return with_seed(load_config(None, overrides, env={}))

    return make


def strip_times(records):
    """Records as builtins without timestamps and durations (which differ between runs)."""
    data = msgspec.to_builtins(records)

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in ("timestamp", "duration_s")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(data)
