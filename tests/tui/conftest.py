"""Helpers for driving the real app with Pilot."""

import asyncio
import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from acausal_tui.app import AcausalApp, experiment_runner
from acausal_tui.cli import common as cli_common
from acausal_tui.screens.browser import SHOWN
from engine import limits
from engine.models import Distribution, PowerDistribution, RoundSummary
from engine.providers.base import ChatRequest, Completion, ProviderError
from engine.providers.simulated import SimulatedProvider

FIXTURE_RESULTS = Path(__file__).resolve().parent.parent / "fixtures" / "results"
SIZE = (120, 40)


async def wait_until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 15.0, settle: int = 1) -> None:
    """Until `predicate` holds `settle` checks in a row (10 ms apart), or fail at `timeout`."""
    deadline = time.monotonic() + timeout
    held = 0
    while held < settle:
        held = held + 1 if predicate() else 0
        if held < settle:
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the app")
            await pilot.pause(0.01)


async def settle(pilot: Pilot) -> None:
    """Until the app's workers are done and what they posted is handled."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_browser(pilot: Pilot) -> DataTable:
    """The browser's experiments table, once listed."""
    await settle(pilot)
    return pilot.app.screen.query_one(DataTable)


def cells(table: DataTable, column: int) -> list[str]:
    """A column of a table; the browser's by its index in COLUMNS, others by position."""
    if table.id == "experiments":
        column = SHOWN.index(column)
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


def static_text(app: AcausalApp, selector: str) -> str:
    """The content of a Static on the current screen."""
    return str(app.screen.query_one(selector, Static).content)


def screen_text(app: AcausalApp) -> str:
    """The current screen as plain text, as a terminal would show it."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        record=True,
        color_system=None,
        force_terminal=True,
        legacy_windows=False,
    )
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


class HeldProvider:
    """The simulated provider, except that calls of round `hold_from` on wait for
    `release()`: a run that stops mid-round, deterministically, with calls in flight."""

    name = "simulated"
    simulated = True

    def __init__(self, seed: int, hold_from: int, inner: SimulatedProvider | None = None, kind: str = "") -> None:
        """`kind`: hold only the calls whose key starts with it (e.g. "decision")."""
        self.inner = inner or SimulatedProvider(seed=seed)
        self.hold_from = hold_from
        self.kind = kind
        self.released = asyncio.Event()
        self.held = 0

    def release(self) -> None:
        self.released.set()

    async def complete(self, request: ChatRequest) -> Completion:
        held = int(request.key.split("/")[1].removeprefix("r")) >= self.hold_from
        if held and request.key.startswith(self.kind):
            self.held += 1
            await self.released.wait()
        return await self.inner.complete(request)

    def worst_case_cost(self, request: ChatRequest) -> float:
        return self.inner.worst_case_cost(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class FlakyProvider(SimulatedProvider):
    """The simulated provider with server errors: the first attempt of each key in
    `transient` fails with a retryable 503 (Retry-After 0, and `fast_backoff` below, so
    no waiting); every attempt of a key in `broken` fails with a 400."""

    def __init__(self, seed: int, transient: set[str] = frozenset(), broken: set[str] = frozenset()) -> None:
        super().__init__(seed)
        self.transient, self.broken = set(transient), set(broken)

    async def complete(self, request: ChatRequest) -> Completion:
        if request.key in self.broken:
            raise ProviderError("HTTP 400: [bold]bad request[/]", status=400)
        if request.key in self.transient:
            self.transient.discard(request.key)
            raise ProviderError("HTTP 503: upstream overloaded", status=503, retryable=True, retry_after=0.0)
        return await super().complete(request)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    """Retries wait 1 ms at most (the backoff is a floor even under `Retry-After: 0`)."""
    monkeypatch.setattr(limits, "BACKOFF_BASE_S", 0.001)


@pytest.fixture
def notifications(monkeypatch) -> list[tuple[str, str]]:
    """(title, message) of every notification an app shows, as Textual's App.notify gets them
    (after the app made their characters visible)."""
    shown: list[tuple[str, str]] = []
    notify = App.notify

    def record(self: App, message: str, *, title: str = "", **options: Any) -> None:
        shown.append((title, message))
        notify(self, message, title=title, **options)

    monkeypatch.setattr(App, "notify", record)
    return shown


@pytest.fixture
def run_app(make_config):
    """An app that starts a simulated run of `overrides` at once (results under tmp_path)."""

    def make(backend=None, **overrides) -> AcausalApp:
        """`backend`: a provider to use instead of the one the config names."""
        config = make_config(**overrides)
        return AcausalApp(run=experiment_runner(config, backend), results_dir=Path(config.results_dir))

    return make


@pytest.fixture
def opened(monkeypatch) -> list[AcausalApp]:
    """Replace App.run by a headless Pilot run that waits for the experiment (or sweep) to end."""
    apps: list[AcausalApp] = []

    def run(self: AcausalApp) -> None:
        async def drive() -> None:
            async with self.run_test(size=SIZE) as pilot:
                await self.workers.wait_for_complete()
                await pilot.pause()

        apps.append(self)
        asyncio.run(drive())

    monkeypatch.setattr(AcausalApp, "run", run)
    monkeypatch.setattr(cli_common, "check_terminal", lambda: None)  # the test's Pilot is the terminal
    return apps


def make_summary(round: int, duration_s: float = 1.0, cooperation: float = 0.5) -> RoundSummary:
    return RoundSummary(
        round=round,
        cooperation_rate=cooperation,
        mutual_cooperation_rate=cooperation / 2,
        average_score=2.0,
        score_variance=0.0,
        score_distribution=Distribution(min=1, max=3, avg=2),
        power_distribution=PowerDistribution(mean=100, std=0, min=100, max=100),
        anonymized_games=[],
        strategy_similarity=None,
        fallback_decisions=0,
        duration_s=duration_s,
    )


async def abort_after_changing_mind(pilot, app, screen) -> None:
    """`a`, then `n` (the run goes on), then `a`, `y`: the confirmed abort, run to its end."""
    from acausal_tui.screens.dialogs import ConfirmScreen

    await pilot.press("a")
    assert isinstance(app.screen, ConfirmScreen)
    await pilot.press("n")  # changed my mind: it goes on
    assert app.screen is screen and not screen.control.aborted
    await pilot.press("a")
    await pilot.press("y")
    await app.workers.wait_for_complete()
    await pilot.pause()
