"""What a sweep tells its observer, and the control that pauses, resumes and aborts every
experiment of a sweep at once."""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from engine.control import RunControl
from engine.events import Event
from engine.sweep_file import SweepResult, SweepRun


class SweepControl(RunControl):
    """Pause, resume and abort every experiment of a sweep at once."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[RunControl] = []
        self._paused = False

    def add(self, control: RunControl) -> None:
        self.controls.append(control)
        if self.aborted:
            control.abort(self.abort_reason or "aborted")
        elif self._paused:
            control.pause()

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        self._paused = not self.aborted
        for control in self.controls:
            control.pause()

    def resume(self) -> None:
        self._paused = False
        for control in self.controls:
            control.resume()

    def abort(self, reason: str = "aborted by the user") -> None:
        if self.abort_reason is None:
            self.abort_reason = reason
        self._paused = False
        for control in self.controls:
            control.abort(reason)


@dataclass(frozen=True, slots=True)
class SweepStarted:
    result: SweepResult
    directory: Path


@dataclass(frozen=True, slots=True)
class ExperimentEvent:
    """An event of one experiment of the sweep."""

    run: SweepRun
    event: Event


@dataclass(frozen=True, slots=True)
class ExperimentDone:
    run: SweepRun
    finished: int  # experiments finished so far, this one included
    total: int


@dataclass(frozen=True, slots=True)
class SweepFinished:
    result: SweepResult
    directory: Path


SweepEvent = SweepStarted | ExperimentEvent | ExperimentDone | SweepFinished


class SweepObserver(Protocol):
    def on_event(self, event: SweepEvent) -> None: ...


class Forward:
    """The observer of one experiment of the sweep: its events go on to the sweep's observer."""

    def __init__(self, observer: SweepObserver | None, run: SweepRun) -> None:
        self.observer = observer
        self.run = run
        self.started = False  # the experiment has said something: it did start

    def on_event(self, event: Event) -> None:
        self.started = True
        if self.observer is not None:
            self.observer.on_event(ExperimentEvent(self.run, event))
