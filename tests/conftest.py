from pathlib import Path

import msgspec
import pytest

from engine import limits
from engine.config import load_config
from engine.runner import with_seed
from tests.support.stub_server import StubServer


@pytest.fixture
def server():
    """The local OpenRouter-shaped stub server on 127.0.0.1, for one test."""
    with StubServer() as running:
        yield running


@pytest.fixture
def fast_backoff(monkeypatch):
    """Retries wait 10 ms at most instead of seconds (the backoff's base is scaled down)."""
    monkeypatch.setattr(limits, "BACKOFF_BASE_S", 0.01)


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
