"""Resume from the browser: R on an interrupted experiment plays the rest on the run screen,
reading the call log off the event loop, and leaves the files an uninterrupted run would;
a completed experiment offers no resume."""

import threading
from pathlib import Path

from acausal_tui import launch
from acausal_tui.app import AcausalApp
from engine.control import RunControl
from engine.providers.base import ChatRequest, Completion
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment
from tests.support.experiment_files import cancelled_in_flight, final_result, only_experiment, outcome, records
from tests.tui.conftest import SIZE, screen_text, settle, wait_until


class AbortAt(SimulatedProvider):
    """The simulated provider; the run is aborted when request number `n` arrives, with
    calls still in flight."""

    def __init__(self, seed: int, control: RunControl, n: int) -> None:
        super().__init__(seed)
        self.control = control
        self.n = n
        self.count = 0

    async def complete(self, request: ChatRequest) -> Completion:
        self.count += 1
        if self.count == self.n:
            self.control.abort("test abort")
        return await super().complete(request)


async def test_resume_from_the_browser_finishes_as_an_uninterrupted_run(make_config, tmp_path, monkeypatch):
    reference = make_config(agents=4, rounds=3, results_dir=str(tmp_path / "reference"))
    ref_result = await run_experiment(reference, provider=SimulatedProvider(reference.seed))
    config = make_config(agents=4, rounds=3)
    control = RunControl()
    interrupted = await run_experiment(config, provider=AbortAt(config.seed, control, 25), control=control)
    assert interrupted.status == "aborted"  # in round 2 (16 calls a round)
    directory = only_experiment(Path(config.results_dir))

    threads: list[str] = []
    opened = launch.open_resume

    def open_resume(directory: Path):
        threads.append(threading.current_thread().name)
        return opened(directory)

    monkeypatch.setattr(launch, "open_resume", open_resume)
    app = AcausalApp(results_dir=directory.parent)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: "R Resume" in screen_text(app))  # the footer offers it
        await pilot.press("R")
        await wait_until(pilot, lambda: app.status is not None, timeout=60)
        assert app.status == "completed" and app.directory == directory
        await wait_until(pilot, lambda: "Finished: completed" in screen_text(app) and "Round 3/3" in screen_text(app))
    assert threads and threading.main_thread().name not in threads  # the call log read off the loop
    assert records(directory) == records(only_experiment(tmp_path / "reference"))
    assert outcome(final_result(directory), cancelled_in_flight(directory)) == outcome(ref_result)


async def test_the_browser_offers_no_resume_for_a_completed_experiment(make_config, tmp_path):
    config = make_config(agents=3, rounds=1)
    await run_experiment(config, provider=SimulatedProvider(config.seed))
    app = AcausalApp(results_dir=Path(config.results_dir))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: "n New" in screen_text(app))  # the footer is drawn
        assert "R Resume" not in screen_text(app)
        await pilot.press("R")
        await pilot.pause()
        assert app.status is None
