"""Benchmark: a 10 x 10 zero-latency simulated run inside the app (headless Textual,
`App.run_test`) against the headless CLI runner, in the same process; and the app at
100 agents (`--large`): longest event-loop stall and key-to-screen latency.

    .venv/bin/python bench/bench_tui.py [--trials 5]
    .venv/bin/python bench/bench_tui.py --large [--agents 100 --rounds 2 --latency-ms 100]

Prints, per mode, the wall time of the run (from the engine starting to its result;
median and best of the trials) and of the whole thing (app start-up and shutdown
included), the app / headless ratios (target for the run <= 1.3), and the longest
event-loop stall during the run, measured by a ticker task that sleeps 1 ms and records
how late it wakes up (target < 100 ms). Both modes run alternately in this process, so
machine load hits both alike; the best-of figure is the least disturbed by it.

`--large` (3 trials unless told): the run screen with 100 agents (simulated, 100 ms per
call, 128 slots), a key (`]`, next agent in the strategy pane) pressed every 250 ms through
Pilot while the engine runs; key-to-screen is the time from the press to the first frame the
screen composes after the key's action ran (headless, so the frame is composed but not
written to a terminal). Prints, median and worst over the trials, the longest stall while
the engine runs (up to its last event) with the loop thread's CPU time in it (what is left
once a loaded machine's waits for a core are taken out), the key-to-screen p90 (targets:
stall < 100 ms, p90 < 100 ms), and the longest stall in the second after the run, when the
result is drawn and the rounds' frozen garbage is collected."""

import argparse
import asyncio
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acausal_tui.app import AcausalApp, experiment_runner  # noqa: E402
from acausal_tui.cli import run_headless  # noqa: E402
from engine.config import Config, load_config  # noqa: E402
from engine.runner import with_seed  # noqa: E402

TICK_S = 0.001


class StallMeter:
    """A task on the event loop that notes how late each 1 ms sleep wakes up, and how much
    CPU the loop's thread used meanwhile (`longest_cpu`: the part of a stall that is this
    process's own work, not waiting for a core on a loaded machine)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.longest_cpu = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before, cpu_before = time.perf_counter(), time.thread_time()
            await asyncio.sleep(TICK_S)
            self.longest = max(self.longest, time.perf_counter() - before - TICK_S)
            self.longest_cpu = max(self.longest_cpu, time.thread_time() - cpu_before)
            self.ticks += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()


def make_config(results_dir: Path) -> Config:
    overrides = {
        "agents": 10,
        "rounds": 10,
        "seed": 1,
        "results_dir": str(results_dir),
        "provider": {"name": "simulated", "latency_ms": 0},
    }
    return with_seed(load_config(None, overrides, env={}))


async def timed(run: Callable[[], Awaitable[object]], meter: StallMeter, times: list[float]) -> None:
    meter.start()
    started = time.perf_counter()
    try:
        await run()
    finally:
        times.append(time.perf_counter() - started)
        meter.stop()


async def headless_trial(config: Config) -> tuple[float, float, float]:
    meter, times = StallMeter(), []
    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # the progress lines
        await timed(lambda: run_headless(config), meter, times)
    return times[0], time.perf_counter() - started, meter.longest


async def app_trial(config: Config) -> tuple[float, float, float]:
    meter, times = StallMeter(), []
    engine = experiment_runner(config)

    async def run(observer, control):
        result = None

        async def go() -> None:
            nonlocal result
            result = await engine(observer, control)

        await timed(go, meter, times)
        return result

    started = time.perf_counter()
    app = AcausalApp(run=run, results_dir=Path(config.results_dir))
    async with app.run_test(headless=True, size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.status == "completed", app.status
    return times[0], time.perf_counter() - started, meter.longest


class KeyMeter:
    """Press-to-frame latencies: `pressed` before a key goes in, `handled` when its action
    runs (a wrapped action), and the next composed frame (a wrapped App._display) closes it."""

    def __init__(self, app: AcausalApp) -> None:
        self.latencies: list[float] = []
        self.pressed: float | None = None
        self.handled = False
        display = app._display

        def timed_display(screen, renderable) -> None:
            display(screen, renderable)
            if renderable is not None and self.handled and self.pressed is not None:
                self.latencies.append(time.perf_counter() - self.pressed)
                self.pressed, self.handled = None, False

        app._display = timed_display  # type: ignore[method-assign]


async def large_trial(args: argparse.Namespace, results_dir: Path) -> tuple[StallMeter, list[float], StallMeter]:
    """One run: (the stalls while the engine runs, key-to-screen latencies, the stalls in the
    second after its last event: the result drawn and the run's garbage collected)."""
    from acausal_tui.screens.run import RunScreen
    from engine.events import RunFinished

    overrides = {
        "agents": args.agents,
        "rounds": args.rounds,
        "seed": 1,
        "results_dir": str(results_dir),
        "provider": {"name": "simulated", "latency_ms": args.latency_ms, "max_concurrency": 128},
    }
    config = with_seed(load_config(None, overrides, env={}))
    meter, after = StallMeter(), StallMeter()
    engine = experiment_runner(config)
    over = asyncio.Event()

    class Watch:  # the run is over at the engine's last event, before the screen shows it
        def __init__(self, observer) -> None:
            self.observer = observer

        def on_event(self, event) -> None:
            if isinstance(event, RunFinished):
                meter.stop()
                after.start()
                over.set()
            self.observer.on_event(event)

    app = AcausalApp(run=lambda observer, control: engine(Watch(observer), control), results_dir=results_dir)
    keys = KeyMeter(app)
    action = RunScreen.action_agent

    def timed_action(screen: RunScreen, step: int) -> None:
        action(screen, step)
        keys.handled = True

    RunScreen.action_agent = timed_action  # type: ignore[method-assign]
    try:
        async with app.run_test(headless=True, size=(160, 50)) as pilot:
            meter.start()
            while not over.is_set():
                keys.pressed, keys.handled = time.perf_counter(), False
                await pilot.press("right_square_bracket")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(over.wait(), 0.25)
            keys.pressed = None  # a press the run's end overtook is not counted
            await asyncio.sleep(1.0)
            after.stop()
            assert app.status == "completed", app.status
    finally:
        RunScreen.action_agent = action  # type: ignore[method-assign]
    return meter, keys.latencies, after


def large(args: argparse.Namespace) -> None:
    stalls, cpus, p90s, afters, after_cpus, all_latencies = [], [], [], [], [], []
    for _ in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            meter, latencies, after = asyncio.run(large_trial(args, Path(tmp)))
        lat = sorted(latencies)
        p90 = lat[int(0.9 * (len(lat) - 1))] if lat else float("nan")
        stalls.append(meter.longest), cpus.append(meter.longest_cpu), p90s.append(p90)
        afters.append(after.longest), after_cpus.append(after.longest_cpu)
        all_latencies += lat
        print(
            f"  trial: stall {1000 * meter.longest:.0f} ms (CPU {1000 * meter.longest_cpu:.0f} ms), key-to-screen "
            f"p90 {1000 * p90:.0f} ms over {len(lat)} presses, after the run {1000 * after.longest:.0f} ms "
            f"(CPU {1000 * after.longest_cpu:.0f} ms)",
            flush=True,
        )

    def ms(values: list[float]) -> str:
        return f"{1000 * statistics.median(values):.0f} ms, {1000 * max(values):.0f} ms"

    print(
        f"app, {args.agents} agents x {args.rounds} rounds, simulated {args.latency_ms:g} ms, 128 slots, "
        f"{args.trials} trials (median, worst):"
    )
    print(
        f"  longest event-loop stall while the run goes {ms(stalls)} (target < 100 ms); "
        f"the loop thread's CPU in it {ms(cpus)}"
    )
    print(
        f"  key-to-screen p90 {ms(p90s)} (target < 100 ms); all {len(all_latencies)} presses: "
        f"p50 {1000 * statistics.median(all_latencies):.0f} ms, worst {1000 * max(all_latencies):.0f} ms"
    )
    print(
        f"  longest stall in the second after the run (result drawn, garbage collected) {ms(afters)}; "
        f"CPU {ms(after_cpus)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, help="default 5 (3 with --large)")
    parser.add_argument("--large", action="store_true", help="the 100-agent stall and key-to-screen figures")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    args = parser.parse_args()
    if args.trials is None:
        args.trials = 3 if args.large else 5
    if args.large:
        large(args)
        return
    rows: dict[str, list[tuple[float, float, float]]] = {"headless CLI": [], "app": []}
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(Path(tmp))
        asyncio.run(app_trial(config))  # warm-up: imports, CSS parsing
        for _ in range(args.trials):  # alternate, so drift hits both alike
            rows["headless CLI"].append(asyncio.run(headless_trial(config)))
            rows["app"].append(asyncio.run(app_trial(config)))
    print(f"10 agents x 10 rounds, simulated provider, zero latency; {args.trials} trials each")
    print(f"{'':14}{'run median':>12}{'run best':>10}{'total median':>14}{'stall median':>14}{'stall worst':>13}")
    figures = {}
    for mode, trials in rows.items():
        runs, totals, stalls = zip(*trials, strict=True)
        figures[mode] = (statistics.median(runs), min(runs), statistics.median(totals))
        print(
            f"{mode:<14}{statistics.median(runs):>11.3f}s{min(runs):>9.3f}s{statistics.median(totals):>13.3f}s"
            f"{1000 * statistics.median(stalls):>11.1f} ms{1000 * max(stalls):>10.1f} ms"
        )
    (h_median, h_best, h_total), (a_median, a_best, a_total) = figures["headless CLI"], figures["app"]
    print(
        f"ratio app / headless: run {a_median / h_median:.2f} (median), {a_best / h_best:.2f} (best); "
        f"target <= 1.3; total {a_total / h_total:.2f}"
    )


if __name__ == "__main__":
    main()
