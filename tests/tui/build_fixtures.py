"""Build tests/fixtures/results: the browser's fixture results directory.

    .venv/bin/python -m tests.tui.build_fixtures

Four experiments, made by the real engine with the simulated provider and a frozen clock:
a completed one (3 LLM agents and one scripted), one aborted after round 2, one whose
process died after round 1 (no result file, manifest still `running`), and a corrupt one
(truncated manifest, unreadable round file)."""

import shutil
from pathlib import Path
from unittest import mock

import anyio
import msgspec

from engine import runner
from engine.config import load_config
from engine.control import RunControl
from engine.events import Event, RoundSummarised
from engine.models import Manifest
from engine.providers.simulated import SimulatedProvider
from engine.store import ExperimentStore, read_json, write_json

RESULTS = Path(__file__).resolve().parent.parent / "fixtures" / "results"


class AbortAfter:
    def __init__(self, control: RunControl, round: int) -> None:
        self.control, self.round = control, round

    def on_event(self, event: Event) -> None:
        if isinstance(event, RoundSummarised) and event.summary.round == self.round:
            self.control.abort()


def run(name: str, stamp: str, abort_after: int | None = None, **overrides: object) -> Path:
    overrides = {"agents": 4, "rounds": 3, "seed": 11, "provider": {"name": "simulated"}, **overrides}
    config = runner.with_seed(load_config(None, overrides, env={}))
    directory = RESULTS / name
    control = RunControl()
    observer = AbortAfter(control, abort_after) if abort_after else None
    with mock.patch.object(runner, "now_iso", lambda: stamp):
        anyio.run(
            lambda: runner.run_experiment(
                config,
                provider=SimulatedProvider(seed=config.seed or 0),
                observer=observer,
                control=control,
                store=ExperimentStore(directory),
            )
        )
    return directory


def main() -> None:
    shutil.rmtree(RESULTS, ignore_errors=True)
    RESULTS.mkdir(parents=True)
    run(
        "exp_20250101_090000",
        "2025-01-01T09:00:00.000+00:00",
        population=[{"kind": "llm", "count": 3}, {"kind": "scripted", "strategy": "tit_for_tat", "count": 1}],
    )
    run("exp_20250102_093000", "2025-01-02T09:30:00.000+00:00", abort_after=2, condition="baseline")

    # The process died after round 1: no result file, later rounds missing, manifest says running.
    died = run("exp_20250103_100000", "2025-01-03T10:00:00.000+00:00", switches={"labels": "shuffled"})
    (died / "experiment_results.json").unlink()
    for round in (2, 3):
        for kind in ("strategies", "games", "summary"):
            (died / "rounds" / f"{kind}_r{round}.json").unlink()
    manifest = read_json(died / "manifest.json", Manifest)
    write_json(died / "manifest.json", msgspec.structs.replace(manifest, status="running", end_time=None))

    # Corrupt: a manifest cut off mid-write by something that did not write atomically.
    corrupt = run("exp_20250104_110000", "2025-01-04T11:00:00.000+00:00")
    (corrupt / "manifest.json").write_bytes((corrupt / "manifest.json").read_bytes()[:200])
    (corrupt / "rounds" / "games_r2.json").write_text('[{"game_id": ')


if __name__ == "__main__":
    main()
