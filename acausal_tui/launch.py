"""What the app starts on its live screens: a new experiment, a sweep, and an experiment
resumed from the browser (opened off the event loop)."""

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import anyio

from acausal_tui.screens.run import RunFn
from acausal_tui.screens.sweep import SweepFn
from engine.config import Config, ConfigError
from engine.control import RunControl
from engine.events import Observer
from engine.models import ExperimentResult
from engine.providers.base import Provider
from engine.providers.factory import make_provider
from engine.resume import open_resume, resume_runner
from engine.runner import run_experiment, utc_now
from engine.store import ExperimentStore, new_experiment_dir
from engine.sweep import (
    SweepControl,
    SweepObserver,
    SweepPlan,
    SweepResult,
    make_providers,
    run_sweep,
)


def unknown_price(model: str) -> str:
    """The warning for a model without a known price."""
    return f"no price known for model {model!r}: its cost counts as 0 (set provider.prices)"


def experiment_runner(config: Config, provider: Provider | None = None, now: Callable[[], datetime] = utc_now) -> RunFn:
    """The coroutine the run screen starts as its worker: a new experiment directory, the run,
    and the provider closed at the end. `now` names the directory (a fixed clock in tests)."""

    async def run(observer: Observer, control: RunControl) -> ExperimentResult:
        backend = provider or make_provider(config)
        store = ExperimentStore(new_experiment_dir(Path(config.results_dir), now()))
        try:
            return await run_experiment(config, provider=backend, observer=observer, control=control, store=store)
        finally:
            await backend.aclose()

    return run


def sweep_runner(plan: SweepPlan, providers: Sequence[Provider] | None = None) -> SweepFn:
    """The coroutine the sweep screen starts as its worker. `providers[i]` serves the i-th
    experiment of `plan.runs()` (default: one per experiment from its config)."""

    async def run(observer: SweepObserver, control: SweepControl) -> SweepResult:
        backends = providers if providers is not None else make_providers([c for _, c in plan.runs()])
        result, _ = await run_sweep(plan, backends, observer=observer, control=control)
        return result

    return run


async def resumed_runner(directory: Path, warn: Callable[[str], None]) -> RunFn:
    """The coroutine that continues the experiment in `directory` (engine/resume.py). Opening
    reads the whole call log: off the event loop, and never cancelled while it runs (a
    cancelled open would leave the directory locked). Raises AcausalError (ResumeError,
    LockError, ConfigError) saying why it cannot; `warn` gets the notes on what was repaired
    and, later, the unknown-price warnings."""
    resumable = await anyio.to_thread.run_sync(open_resume, directory)
    try:
        provider = make_provider(resumable.config, on_unknown_price=lambda model: warn(unknown_price(model)))
    except ConfigError:
        resumable.store.close()
        raise
    for note in resumable.notes:
        warn(note)
    return resume_runner(resumable, provider)
