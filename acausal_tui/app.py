"""The Textual app: the live run screen (when started with a run), the live sweep screen (when
started with a sweep) or the experiment browser."""

import asyncio
import gc
import os
import signal
import sys
from pathlib import Path
from typing import Any

import anyio
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from acausal_tui.commands import DeskCommands
from acausal_tui.launch import experiment_runner, resumed_runner, sweep_runner
from acausal_tui.messages import OpenExperiment
from acausal_tui.screens.browser import BrowserScreen
from acausal_tui.screens.dialogs import ConfirmScreen, HelpScreen, key_rows
from acausal_tui.screens.experiment import ExperimentScreen
from acausal_tui.screens.new_run import NewRunScreen
from acausal_tui.screens.run import RunFn, RunScreen
from acausal_tui.screens.sweep import SweepFn, SweepScreen
from acausal_tui.screens.transcript import ReportScreen, TranscriptScreen
from engine.errors import AcausalError
from engine.store import load_experiment
from engine.sweep import SweepPlan
from engine.textsafe import visible

# What the command line and tests start the app with (acausal_tui/launch.py).
__all__ = ["AcausalApp", "experiment_runner", "sweep_runner"]
RUN_IN_PROGRESS = "a run is in progress: start the new one once it has ended"

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)  # SIGINT: `kill -INT` (Ctrl+C is a key here)


class AcausalApp(App[None]):
    # app.tcss: what screens share and the run screen; then one file per screen
    # beside it. Listed here, not in each screen's CSS_PATH: Textual never reads the CSS_PATH
    # of the screen an app opens on (its default screen).
    CSS_PATH = [
        "app.tcss",
        *(
            f"screens/{name}.tcss"
            for name in ("browser", "compare", "dialogs", "experiment", "new_run", "run", "sweep", "transcript")
        ),
    ]
    TITLE = "acausal-tui"
    COMMANDS = App.COMMANDS | {DeskCommands}
    BINDINGS = [
        Binding("q", "request_quit", "Quit", id="quit", tooltip="quit (asks first while a run or sweep is going)"),
        Binding("question_mark", "help", "Help", key_display="?", id="help", tooltip="this help (esc closes it)"),
    ]

    def __init__(
        self, *, run: RunFn | None = None, sweep: SweepFn | None = None, results_dir: Path = Path("results")
    ) -> None:
        """With `run` (or `sweep`): open on the run (sweep) screen and start it at once;
        with neither: the browser."""
        super().__init__()
        self.run_fn = run
        self.sweep_fn = sweep
        self.results_dir = results_dir
        self._live: RunScreen | SweepScreen | None = None  # the latest run or sweep screen
        self.signalled: str | None = None  # the name of the SIGTERM/SIGHUP that ended the app
        self.hung_up = False  # SIGHUP came with the terminal gone (closed window, dropped SSH)
        self.resuming = False  # an experiment is being opened to resume it

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
        """SIGTERM, SIGHUP or SIGINT: the same clean abort as headless — the run (or sweep) is aborted,
        its partial results saved, then the app exits and restores the terminal; the command
        exits 130. A second signal while the abort is saving exits at once (every file on disk
        is still valid: each is replaced atomically)."""
        if self.signalled is not None:
            os._exit(130)
        self.signalled = signal.Signals(signum).name
        self.hung_up = signum == getattr(signal, "SIGHUP", None) and terminal_gone()
        live = self.live_screen
        if live is not None and live.running:
            live.control.abort(f"aborted by {self.signalled}")
            live.stop_and_exit()
        else:
            self.exit()

    def exit(self, *args: Any, **kwargs: Any) -> None:
        """When the terminal hung up, the process leaves at once (130 for the run it aborted;
        a run that had ended keeps its own code), its run's results already saved (the run
        has ended when the app exits). Textual's restoring of
        the terminal would write to it, and with no terminal to take the writes that blocked
        the process for good (an outside review: alive, deaf to SIGTERM, after `tmux
        kill-session`)."""
        if self.hung_up:
            from acausal_tui.cli.run import app_exit_code  # the command's code, as when the app closes

            os._exit(app_exit_code(self))  # a run that had ended keeps its own (0, or 4 if INVALID)
        super().exit(*args, **kwargs)

    @property
    def live_screen(self) -> RunScreen | SweepScreen | None:
        """The screen of the run or sweep the app was opened on, or of the latest one started
        from it (the form, or resume in the browser)."""
        return self._live

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
        self._live = RunScreen(run, self.results_dir)
        self.push_screen(self._live)

    def start_sweep(self, sweep: SweepFn) -> None:
        """Open a sweep screen on `sweep` and start it (from the new-sweep form)."""
        self._live = SweepScreen(sweep)
        self.push_screen(self._live)

    # -- what screens ask of the app ------------------------------------------------

    async def on_new_run_screen_start(self, message: NewRunScreen.Start) -> None:
        """The form's checked experiment (or sweep) replaces the form on its live screen;
        refused, with the form still open, while a run is in progress."""
        if self.run_in_progress:
            message.form.show_error(RUN_IN_PROGRESS)
            for provider in message.providers:
                await provider.aclose()
            return
        if self.screen is message.form:
            self.pop_screen()
        if isinstance(message.target, SweepPlan):
            self.start_sweep(sweep_runner(message.target, message.providers))
        else:
            self.start_run(experiment_runner(message.target, message.providers[0]))

    def on_browser_screen_resume(self, message: BrowserScreen.Resume) -> None:
        if self.run_in_progress:
            self.notify("A run is in progress: resume once it has ended", severity="warning")
        elif not self.resuming:
            self.resuming = True
            self.run_worker(self.resume(message.directory), group="resume", exit_on_error=False)

    async def resume(self, directory: Path) -> None:
        try:
            run = await resumed_runner(directory, self.warn)
        except AcausalError as exc:
            self.notify(str(exc), title=f"Cannot resume {directory.name}", severity="error", markup=False)
        else:
            self.start_run(run)
        finally:
            self.resuming = False

    def on_open_experiment(self, message: OpenExperiment) -> None:
        self.run_worker(self.open_experiment(message.directory), group="open", exclusive=True, exit_on_error=False)

    async def open_experiment(self, directory: Path) -> None:
        loaded = await anyio.to_thread.run_sync(load_experiment, directory)
        if not loaded.readable:
            self.notify(
                "; ".join(loaded.problems), title=f"{directory.name} is unreadable", severity="error", markup=False
            )
            return
        self.push_screen(ExperimentScreen(loaded))

    def warn(self, message: str) -> None:
        self.notify(message, severity="warning", timeout=10, markup=False)

    def notify(self, message: str, *, title: str = "", **options: Any) -> None:
        """Every notification, from any screen, shows outside text (directory names, server
        errors) with its control, bidi and zero-width characters visible, never obeyed."""
        super().notify(visible(message), title=visible(title, one_line=True), **options)

    def get_default_screen(self) -> Screen:
        if self.sweep_fn is not None:
            self._live = SweepScreen(self.sweep_fn)
            return self._live
        if self.run_fn is not None:
            self._live = RunScreen(self.run_fn, self.results_dir)
            return self._live
        return BrowserScreen(self.results_dir)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("request_quit", "help"):
            return not isinstance(self.screen, ModalScreen)
        if action == "quit":  # ctrl+q: over a question already asked it would ask a second one
            return not isinstance(self.screen, ConfirmScreen)
        return True

    async def action_quit(self) -> None:
        """ctrl+q goes through the same confirmation as q."""
        self.action_request_quit()

    def action_request_quit(self) -> None:
        live = self.live_screen
        if live is None or not live.running:
            self.exit()
            return

        def confirmed(yes: bool) -> None:
            if yes:
                live.stop_and_exit()

        question = (
            "A sweep is in progress. Quit? Every experiment is aborted and the rounds done so far are "
            "saved with status 'aborted'."
            if isinstance(live, SweepScreen)
            else "A run is in progress. Quit? The run is aborted and the rounds done so far are saved "
            "with status 'aborted'."
        )
        live.ask_about_run(question, "Quit", confirmed)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_help()))

    def key_help(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """The help's sections: each screen's BINDINGS (so the help cannot drift from the
        keys), then the keys its widgets or Textual provide."""
        sections = [
            ("Run screen", RunScreen.BINDINGS, ()),
            ("Sweep screen", SweepScreen.BINDINGS, ()),
            (
                "Browser",
                BrowserScreen.BINDINGS,
                [("enter", "open the highlighted experiment (or sweep)"), ("Home End", "first / last experiment")],
            ),
            ("Experiment (opened from the browser)", ExperimentScreen.BINDINGS, ()),
            ("New experiment or sweep (the form)", NewRunScreen.BINDINGS, [("tab", "next field")]),
            ("Transcript", TranscriptScreen.BINDINGS, ()),
            ("Report (e.g. an audit)", ReportScreen.BINDINGS, ()),
            (
                "Everywhere",
                self.BINDINGS,
                [("^q", "quit, as q"), ("^p", "command palette: new experiment or sweep, browse, and more")],
            ),
        ]
        return [(where, key_rows(bindings, self.get_key_display, extra)) for where, bindings, extra in sections]


def terminal_gone() -> bool:
    """Whether the terminal hung up: a write to it fails (EIO) rather than showing. (A
    SIGHUP sent with `kill` leaves it there: the app then gives it back as for SIGTERM.)"""
    try:
        os.write(sys.__stdout__.fileno(), b"\x1b[0m")  # a harmless attribute reset
    except (OSError, AttributeError, ValueError):
        return True
    return False
