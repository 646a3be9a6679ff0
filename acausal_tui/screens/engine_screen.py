"""What the run and sweep screens share: the engine runs as one async worker on the app's
event loop; its observer only appends events to a buffer, and the screen folds them into
its view at most 10 times a second, so the UI stays responsive however fast the engine goes.
The base owns the worker, the buffer and its flush timer, the pause/resume/abort control
and actions, the status line and the quit plumbing; a screen adds its widgets and view."""

import asyncio
import gc
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from rich.text import Text
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from acausal_tui.screens.dialogs import ConfirmScreen
from acausal_tui.widgets.text import literal

FLUSH_INTERVAL_S = 0.1
# Screen refreshes to wait before the engine starts: the first paint, then the Footer's
# recompose that the first paint triggers (starting earlier, both compete with the run).
SETTLE_REFRESHES = 2
ERROR_LINES = 200

E = TypeVar("E")


class EventBuffer(Generic[E]):
    """The observer handed to the engine: called synchronously on the event loop, it only
    appends; the screen drains it on a timer."""

    def __init__(self) -> None:
        self.events: list[E] = []

    def on_event(self, event: E) -> None:
        self.events.append(event)

    def drain(self) -> list[E]:
        events, self.events = self.events, []
        return events


def freeze_survivors() -> None:
    """Called as each round starts: what is alive now is moved out of the collector's reach
    (`gc.freeze`). A full collection walks every object it can reach; at 100 agents the
    drawn screen's caches and the engine's round data made each one a 50-80 ms stall.
    The cost: cyclic garbage alive at that moment is kept until `collect_frozen()`."""
    gc.freeze()


def collect_frozen() -> None:
    """Collect what earlier runs' freezes kept, then freeze again. Called as a run or sweep
    starts, not as one ends: after a 100-agent run this full collection is a 100 ms stall,
    which at the end fell in the second the result appears; at a start it is part of the
    start-up. Until then a finished run keeps the cyclic garbage its freezes caught (a few
    thousand small objects: old footer keys, styles)."""
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()
        gc.freeze()


def control_bindings(pause: str, resume: str, abort: str, what: str) -> list[Binding]:
    """The pause/resume (one key, shown by state) and abort bindings, with a screen's labels;
    `what` they act on, for the key help."""
    pausing = f"pause / resume {what}: no new call starts"
    aborting = f"abort {what}, asking first; the rounds done are saved"
    return [
        Binding("p", "pause", pause, id="pause", tooltip=pausing),
        Binding("p", "resume", resume, id="resume", tooltip=pausing),
        Binding("a", "abort", abort, id="abort", tooltip=aborting),
    ]


class EngineScreen(Screen):
    """A screen that runs the engine (`engine_fn(buffer, control)`) as its worker. Subclasses
    compose their widgets, call `start_engine()` once mounted, and provide `flush`, `redraw`,
    `in_flight` and `log_errors`."""

    WORKER_NAME = "engine"
    ABORT_QUESTION = ""
    ABORT_YES = "Abort"
    # What the footer's Pause / Resume / Abort follow: running, paused, aborting or over.
    # Setting it redraws the bindings (check_action reads it).
    engine_state: reactive[str] = reactive("running", bindings=True)

    def __init__(self, engine_fn: Callable[[Any, Any], Awaitable[Any]], control: Any, view: Any) -> None:
        super().__init__()
        self.engine_fn = engine_fn
        self.control = control
        self.buffer: EventBuffer[Any] = EventBuffer()
        self.view = view
        self.worker: Worker[Any] | None = None
        self.failure: str | None = None
        self.exit_when_done = False
        self._shown: dict[str, str] = {}  # widget id -> last text, to skip identical updates

    def start_engine(self) -> None:
        """Show the view, start the flush timer and the engine's worker."""
        collect_frozen()
        self.flush()
        self.set_interval(FLUSH_INTERVAL_S, self.flush)
        self.worker = self.run_worker(self.engine(), name=self.WORKER_NAME, group="engine", exit_on_error=False)

    async def engine(self) -> Any:
        for _ in range(SETTLE_REFRESHES):
            painted = asyncio.Event()
            self.call_after_refresh(painted.set)
            await painted.wait()
        return await self.engine_fn(self.buffer, self.control)

    @property
    def final_status(self) -> str | None:
        """The status once it is over: the result's, or `failed` when the worker raised."""
        if self.view.result is not None:
            return self.view.result.status
        return "failed" if self.failure is not None else None

    @property
    def running(self) -> bool:
        return self.worker is not None and not self.worker.is_finished

    # -- what a screen provides -----------------------------------------------------

    def flush(self) -> None:
        """Fold the buffered events into the view and redraw what changed."""
        raise NotImplementedError

    def redraw(self) -> None:
        raise NotImplementedError

    def in_flight(self) -> int:
        """The calls in flight, for the status line."""
        raise NotImplementedError

    def log_errors(self, text: Text) -> None:
        raise NotImplementedError

    # -- rendering ------------------------------------------------------------------

    def set_text(self, widget_id: str, text: Text, layout: bool = False) -> None:
        """Update a Static when its text changed. A layout pass of the screen is asked for
        only when the widget's size follows its text (an auto width or height) and the text's
        length changed: a fixed-size panel is just repainted."""
        shown = self._shown.get(widget_id)
        if shown != text.markup:
            widget = self.query_one(f"#{widget_id}", Static)
            sizes = (widget.styles.width, widget.styles.height)
            sized_by_text = any(size is not None and size.is_auto for size in sizes)
            layout = layout or shown is None or (sized_by_text and len(shown) != len(text.markup))
            self._shown[widget_id] = text.markup
            widget.update(text, layout=layout)

    def status_text(self) -> Text:
        result = self.view.result
        if result is not None:
            style = "bold green" if result.status == "completed" else "bold red"
            text = Text(f"Finished: {result.status}", style=style)
            if result.message:
                text.append(" — ")
                text.append_text(literal(result.message))
            return text
        if self.failure is not None:
            return Text(f"Failed: {self.failure}", style="bold red")
        if self.control.aborted:
            return Text(f"Aborting… {self.in_flight()} calls in flight", style="bold red")
        if self.control.paused:
            return Text(
                f"⏸ Paused — no new calls are sent; {self.in_flight()} calls still in flight",
                style="bold black on yellow",
            )
        return Text("▶ Running", style="bold green")

    # -- the worker -----------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.worker or not event.worker.is_finished:
            return
        self.flush()
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.failure = f"{type(error).__name__}: {error}"
            self.log_errors(literal(f"error  {self.failure}", style="bold red"))
            self.redraw()
        self.engine_state = "over"
        dialog = self.app.screen
        if isinstance(dialog, ConfirmScreen) and dialog.about_run:  # its question no longer holds
            dialog.dismiss(False)
        if self.exit_when_done:
            self.app.exit()

    def stop_and_exit(self) -> None:
        """Abort (partial results are saved) and leave once the worker is done."""
        self.exit_when_done = True
        self.control.abort("aborted by the user (quit)")
        self.engine_state = "aborting" if self.running else "over"
        if not self.running:
            self.app.exit()

    # -- actions --------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "pause":
            return self.engine_state == "running"
        if action == "resume":
            return self.engine_state == "paused"
        if action == "abort":
            return self.engine_state in ("running", "paused")
        return True

    def action_pause(self) -> None:
        self.control.pause()
        self.engine_state = "paused"
        self.redraw()

    def action_resume(self) -> None:
        self.control.resume()
        self.engine_state = "running"
        self.redraw()

    def action_abort(self) -> None:
        def confirmed(yes: bool) -> None:
            if yes and self.running:
                self.control.abort()
                self.engine_state = "aborting"
                self.redraw()

        self.ask_about_run(self.ABORT_QUESTION, self.ABORT_YES, confirmed)

    def ask_about_run(self, question: str, yes: str, then: Callable[[bool], None]) -> None:
        """A yes/no question about the running run (abort? quit?). While it is open no new
        call starts, as after `p`, so nothing is spent while the researcher reads it; "no"
        lets the run go on (still paused if it was paused before)."""
        hold = not self.control.paused
        if hold:
            self.control.pause()
            self.engine_state = "paused"  # the footer says so too, as after `p`
            self.redraw()

        def answered(answer: bool | None) -> None:
            if hold and not answer and self.control.paused:
                self.control.resume()
                if self.engine_state == "paused":  # not ended meanwhile
                    self.engine_state = "running"
                self.redraw()
            then(bool(answer))

        self.app.push_screen(ConfirmScreen(question, yes=yes, no="Keep running", about_run=True), answered)
