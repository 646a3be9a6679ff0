"""The committed same-seed experiment: what a fixed config writes, as the golden records.

`.venv/bin/python -m tests.support.golden` rewrites tests/fixtures/golden/records.json; do
that only for an intended change of the records, and say why in the commit.
"""

from pathlib import Path
from typing import Any

import anyio
import msgspec

from engine.config import load_config
from engine.models import CallRecord, GameResult, RoundSummary, StrategyRecord
from engine.providers.factory import make_provider
from engine.runner import run_experiment, with_seed
from engine.store import list_experiments, read_json, read_jsonl

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "records.json"
SETTINGS = {
    "agents": 4,
    "rounds": 3,
    "seed": 11,
    "provider": {"name": "simulated"},
    "switches": {"option_order": "shuffled"},
}
# Fields that differ between two runs of the same seed: clock times and durations.
VOLATILE = ("timestamp", "duration_s", "time", "latency_s")


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def records(directory: Path, rounds: int) -> dict[str, Any]:
    """Every round file, and the call log in key order (the order calls finish in may vary)."""
    out: dict[str, Any] = {}
    for r in range(1, rounds + 1):
        out[f"strategies_r{r}"] = read_json(directory / "rounds" / f"strategies_r{r}.json", list[StrategyRecord])
        out[f"games_r{r}"] = read_json(directory / "rounds" / f"games_r{r}.json", list[GameResult])
        out[f"summary_r{r}"] = read_json(directory / "rounds" / f"summary_r{r}.json", RoundSummary)
    calls, bad = read_jsonl(directory / "calls.jsonl", CallRecord)
    assert not bad
    out["calls"] = sorted(calls, key=lambda c: c.key)
    return stable(msgspec.to_builtins(out))


def run_golden(results_dir: Path) -> dict[str, Any]:
    config = with_seed(load_config(None, {**SETTINGS, "results_dir": str(results_dir)}, env={}))
    anyio.run(lambda: run_experiment(config, provider=make_provider(config, {})))
    (loaded,) = list_experiments(results_dir)
    return records(loaded.directory, config.rounds)


def encode(data: dict[str, Any]) -> bytes:
    return msgspec.json.format(msgspec.json.encode(data), indent=1) + b"\n"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.write_bytes(encode(run_golden(Path(tmp))))
    print(GOLDEN)
