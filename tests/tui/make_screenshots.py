"""Save the README's screenshots to docs/ (SVG, 120 x 40; the run screen also at 80 x 24,
the default terminal), from the real app:

    .venv/bin/python -m tests.tui.make_screenshots"""

import asyncio
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from acausal_tui.app import AcausalApp, experiment_runner
from engine.config import load_config
from engine.runner import with_seed
from tests.tui.conftest import FIXTURE_RESULTS, SIZE, FlakyProvider, HeldProvider, wait_until

DOCS = Path(__file__).resolve().parents[2] / "docs"
START = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def config(results: Path):
    return with_seed(
        load_config(None, {"seed": 42, "results_dir": str(results), "provider": {"name": "simulated"}}, env={})
    )


async def run_screens(results: Path) -> None:
    """Mid-run (paused, with retries in the log), then the end of the run."""
    flaky = FlakyProvider(42, transient={"strategy/r2/a3", "decision/r3/g7/p2/t0", "decision/r5/g12/p1/t0"})
    held = HeldProvider(42, hold_from=6, inner=flaky)
    app = AcausalApp(run=experiment_runner(config(results), held, now=lambda: START), results_dir=results)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: held.held == 10)
        await pilot.pause(1.2)  # the strategy pane redraws at most once a second
        await pilot.press("p")
        await pilot.pause(0.3)
        app.save_screenshot("run-screen.svg", str(DOCS))
        held.release()
        await pilot.press("p")
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        app.save_screenshot("run-finished.svg", str(DOCS))


async def small_run_screen(results: Path) -> None:
    """The run screen at 80x24, mid-run: the layout everything else grows from."""
    held = HeldProvider(42, hold_from=4, kind="decision")
    app = AcausalApp(run=experiment_runner(config(results), held, now=lambda: START), results_dir=results)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: held.held > 0 and not app.screen.buffer.events)
        await pilot.pause(1.2)  # the strategy pane redraws at most once a second
        app.save_screenshot("run-80x24.svg", str(DOCS))
        held.release()
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        app.save_screenshot("run-finished-80x24.svg", str(DOCS))


async def browser_screens() -> None:
    app = AcausalApp(results_dir=Path("results"))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.save_screenshot("browser.svg", str(DOCS))
        await pilot.press("ctrl+end", "enter", "3")
        await pilot.pause()
        app.save_screenshot("agent-history.svg", str(DOCS))
        await pilot.press("4")
        await pilot.pause()
        app.save_screenshot("strategies.svg", str(DOCS))


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # paths on screen read results/…, as in a real project directory
        asyncio.run(run_screens(Path("results")))
        asyncio.run(small_run_screen(Path("results-80x24")))
    os.chdir(FIXTURE_RESULTS.parent)
    asyncio.run(browser_screens())


if __name__ == "__main__":
    main()
