"""The Textual app: the live run screen (when started with a run), the live sweep screen (when
started with a sweep) or the experiment browser."""

import asyncio
import gc
import os
import signal
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from acausal_tui.commands import DeskCommands
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.dialogs import ConfirmScreen, HelpScreen
from acausal_tui.screens.run import RunFn, RunScreen
from acausal_tui.screens.sweep import SweepFn, SweepScreen
from engine.config import Config
from engine.control import RunControl
from engine.events import Observer
from engine.models import ExperimentResult
from engine.providers.base import Provider
from engine.providers.factory import make_provider
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
from engine.textsafe import visible


def experiment_runner(
    config: Config, provider: Provider | None = None, now: Callable[[], datetime] = utc_now
) -> RunFn:
    """The coroutine the run screen starts as its worker: a new experiment directory, the run,
    and the provider closed at the end. `now` names the directory (a fixed clock in tests)."""

    async def run(observer: Observer, control: RunControl) -> ExperimentResult:
        backend = provider or make_provider(config)
        store = ExperimentStore(new_experiment_dir(Path(config.results_dir), now()))
        try:
            return await run_experiment(config, provider=backend, observer=observer, control=control,
                                        store=store)
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


SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class AcausalApp(App[None]):
    # app.tcss: what screens share, the run screen and the dialogs; then one file per screen
    # beside it. Listed here, not in each screen's CSS_PATH: Textual never reads the CSS_PATH
    # of the screen an app opens on (its default screen).
    CSS_PATH = ["app.tcss", *(f"screens/{name}.tcss" for name in
                              ("browser", "compare", "experiment", "new_run", "run", "sweep", "transcript"))]
    TITLE = "acausal-tui"
    COMMANDS = App.COMMANDS | {DeskCommands}
    BINDINGS = [
        Binding("q", "request_quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
    ]

    def __init__(self, *, run: RunFn | None = None, sweep: SweepFn | None = None,
                 results_dir: Path = Path("results")) -> None:
        """With `run` (or `sweep`): open on the run (sweep) screen and start it at once;
        with neither: the browser."""
        super().__init__()
        self.run_fn = run
        self.sweep_fn = sweep
        self.results_dir = results_dir
        self._run_screen: RunScreen | None = None
        self._sweep_screen: SweepScreen | None = None
        self.signalled: str | None = None  # the name of the SIGTERM/SIGHUP that ended the app

    def on_mount(self) -> None:
        # The engine allocates fast, which triggers full collections; without this each
        # one walks Textual's whole long-lived object graph and stalls the loop ~100 ms.
        # Once per process: every freeze moves the objects of the apps before it too.
        if not gc.get_freeze_count():
            gc.freeze()
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            try:
                loop.add_signal_handler(signum, self.on_signal, signum)
            except (RuntimeError, ValueError):  # not the main thread (a test's loop)
                return

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            try:
                loop.remove_signal_handler(signum)
            except (RuntimeError, ValueError):
                pass

    def on_signal(self, signum: int) -> None:
        """SIGTERM or SIGHUP: the same clean abort as headless — the run (or sweep) is aborted,
        its partial results saved, then the app exits and restores the terminal; the command
        exits 130. A second signal while the abort is saving exits at once (every file on disk
        is still valid: each is replaced atomically)."""
        if self.signalled is not None:
            os._exit(130)
        self.signalled = signal.Signals(signum).name
        live = self.live_screen
        if live is not None and live.running:
            live.control.abort(f"aborted by {self.signalled}")
            live.stop_and_exit()
        else:
            self.exit()

    @property
    def live_screen(self) -> RunScreen | SweepScreen | None:
        """The screen of the sweep or run the app was opened on (or resumed from the browser)."""
        return self._sweep_screen or self._run_screen

    @property
    def status(self) -> str | None:
        """The run's (or sweep's) final status (None: no run, or not over)."""
        return self.live_screen.final_status if self.live_screen else None

    @property
    def directory(self) -> Path | None:
        """The run's experiment directory (the sweep's directory), once created."""
        return self.live_screen.view.directory if self.live_screen else None

    @property
    def run_in_progress(self) -> bool:
        return self.live_screen is not None and self.live_screen.running

    def start_run(self, run: RunFn) -> None:
        """Open a run screen on `run` and start it (a resumed experiment, from the browser)."""
        self._run_screen = RunScreen(run, self.results_dir)
        self.push_screen(self._run_screen)

    def start_sweep(self, sweep: SweepFn) -> None:
        """Open a sweep screen on `sweep` and start it (from the new-sweep form)."""
        self._sweep_screen = SweepScreen(sweep)
        self.push_screen(self._sweep_screen)

    def warn(self, message: str) -> None:
        self.notify(message, severity="warning", timeout=10, markup=False)

    def notify(self, message: str, *, title: str = "", **options: Any) -> None:
        """Every notification, from any screen, shows outside text (directory names, server
        errors) with its control, bidi and zero-width characters visible, never obeyed."""
        super().notify(visible(message), title=visible(title, one_line=True), **options)

    def get_default_screen(self) -> Screen:
        if self.sweep_fn is not None:
            self._sweep_screen = SweepScreen(self.sweep_fn)
            return self._sweep_screen
        if self.run_fn is not None:
            self._run_screen = RunScreen(self.run_fn, self.results_dir)
            return self._run_screen
        return BrowserScreen(self.results_dir)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("request_quit", "help"):
            return not isinstance(self.screen, ModalScreen)
        return True

    async def action_quit(self) -> None:
        """ctrl+q goes through the same confirmation as q."""
        self.action_request_quit()

    def action_request_quit(self) -> None:
        live = self.live_screen
        if live is None or not live.running:
            self.exit()
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                live.stop_and_exit()

        question = (
            "A sweep is in progress. Quit? Every experiment is aborted and the rounds done so far are "
            "saved with status 'aborted'." if isinstance(live, SweepScreen) else
            "A run is in progress. Quit? The run is aborted and the rounds done so far are saved "
            "with status 'aborted'."
        )
        self.push_screen(ConfirmScreen(question, yes="Quit", no="Keep running"), confirmed)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
