"""Round durations (and so the ETA) leave out the time a run spent paused."""

from engine import control as control_module
from engine import runner
from engine.control import RunControl
from engine.providers.base import ChatRequest, Completion
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment


class Clock:
    """Stands in for the `time` module of the runner and the control: time moves only when
    the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class PausingProvider(SimulatedProvider):
    """At the first call of round 2: pause, let 100 s pass, resume."""

    def __init__(self, seed: int, control: RunControl, clock: Clock) -> None:
        super().__init__(seed)
        self.control, self.clock, self.done = control, clock, False

    async def complete(self, request: ChatRequest) -> Completion:
        if not self.done and request.key.split("/")[1] == "r2":
            self.done = True
            self.control.pause()
            self.clock.now += 100.0
            self.control.resume()
        self.clock.now += 0.001  # every call takes 1 ms
        return await super().complete(request)


async def test_a_rounds_duration_leaves_out_the_time_paused(make_config, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(runner, "time", clock)
    monkeypatch.setattr(control_module, "time", clock)
    config = make_config(agents=3, rounds=3)
    control = RunControl()
    result = await run_experiment(config, provider=PausingProvider(config.seed, control, clock), control=control)
    durations = [s.duration_s for s in result.round_summaries]
    assert control.paused_seconds() == 100.0
    assert all(d < 1.0 for d in durations), durations  # round 2 would be 100 s with the pause
