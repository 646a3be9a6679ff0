"""Small simulated sweeps for tests: a plan of conditions × seeds, a fake provider whose
identity-framed agents always cooperate, and a sweep where some experiments are judged
invalid."""

from pathlib import Path

import anyio
import msgspec

import engine.sweep
from engine.config import load_config
from engine.models import Validity
from engine.prompts import IDENTITY_STATEMENT
from engine.providers.simulated import SimulatedProvider
from engine.rng import keyed_rng
from engine.sweep import SweepResult, plan_sweep, run_sweep
from tests.support.fakes import FakeProvider

BASE = {"agents": 4, "rounds": 3, "provider": {"name": "simulated"}}


def reply(request) -> str:
    """Identity-framed agents always cooperate; others cooperate 60% of the time."""
    prompt = request.messages[0].content
    if request.key.startswith("strategy/"):
        return "STRATEGY: always cooperate" if IDENTITY_STATEMENT in prompt else "STRATEGY: mixed"
    if "always cooperate" in prompt:
        return "COOPERATE"
    return "COOPERATE" if keyed_rng(0, request.key).random() < 0.6 else "DEFECT"


def plan(tmp_path: Path, conditions: str = "baseline,identity", seeds: int = 3, **overrides):
    return plan_sweep(
        None, {**BASE, "seed": 40, "results_dir": str(tmp_path / "results"), **overrides}, conditions, seeds, env={}
    )


async def sweep(the_plan, provider=lambda: FakeProvider(reply), **options):
    providers = [provider() for _ in the_plan.runs()]
    return await run_sweep(the_plan, providers, **options)


INVALID_REASON = "fallback moves 12% > 5%"


def judge_some_invalid(monkeypatch) -> None:
    """Sweeps run after this mark seed 41 of identity invalid (INVALID_REASON), seed 42 of
    baseline without a validity record (as an older version wrote), the rest valid."""

    class Judged(engine.sweep.Experiment):
        async def run(self):
            result = await super().run()
            if (self.condition.name, self.config.seed) == ("identity", 41):
                validity = Validity(valid=False, reasons=[INVALID_REASON])
            elif (self.condition.name, self.config.seed) == ("baseline", 42):
                validity = None
            else:
                validity = Validity(valid=True)
            return msgspec.structs.replace(result, validity=validity)

    monkeypatch.setattr(engine.sweep, "Experiment", Judged)


def finished_simulated_sweep(base: Path) -> Path:
    """A finished 2-condition × 2-seed sweep of 3 agents × 2 rounds on the simulated
    provider, under `base`: its directory (to copy and spoil)."""
    plan = plan_sweep(
        None,
        {"agents": 3, "rounds": 2, "seed": 7, "provider": {"name": "simulated"}, "results_dir": str(base)},
        "baseline,identity",
        2,
        env={},
    )
    providers = [SimulatedProvider(seed=config.seed or 0) for _, config in plan.runs()]
    _, directory = anyio.run(lambda: run_sweep(plan, providers))
    return directory


def bare_sweep(conditions: list[str], seeds: list[int], **fields) -> SweepResult:
    """A completed sweep result of simulated experiments, built by hand (no files)."""
    return SweepResult(
        sweep_id="s",
        status="completed",
        start_time="",
        conditions=conditions,
        resolved_conditions={},
        seeds=seeds,
        config=load_config(None, {"provider": {"name": "simulated"}}, {}),
        **fields,
    )
