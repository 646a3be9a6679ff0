"""A round's files saved while the next round plays: one save at a time, in round order;
the events sent meanwhile held back until the round is on disk; the state taken back to
the saved rounds if a save fails."""

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from engine.events import Event
from engine.models import RoundSummary
from engine.moves import MoveTally
from engine.state import ExperimentState


@dataclass
class Unsaved:
    """Where the state stood before a round whose files are not saved yet."""

    summaries: list[RoundSummary]
    moves: MoveTally
    powers: list[float]
    total_scores: list[float]

    @classmethod
    def before(cls, state: ExperimentState) -> "Unsaved":
        return cls(
            list(state.summaries),
            dataclasses.replace(state.moves),
            list(state.powers),
            list(state.total_scores),
        )

    def restore(self, state: ExperimentState) -> None:
        """The state as it was (the similarity corpus, the histories and the latest
        strategies aside)."""
        state.summaries, state.moves = self.summaries, self.moves
        state.powers, state.total_scores = self.powers, self.total_scores


class RoundSaves:
    """The experiment's round saves in the background and the events they hold back.
    `send` delivers an event to the observer."""

    def __init__(self, send: Callable[[Event], None]) -> None:
        self.send = send
        self.held: list[Event] | None = None  # events held back while a round is being saved
        self.unsaved: Unsaved | None = None  # the round being saved: the state before it
        self.saved: anyio.Event | None = None  # set once the round last started is saved

    def notify(self, event: Event) -> None:
        if self.held is not None:
            self.held.append(event)
        else:
            self.send(event)

    async def previous(self) -> None:
        """Wait until the round started last is saved (a failed save cancels the wait)."""
        if self.saved is not None:
            await self.saved.wait()

    def start(self, group: TaskGroup, save: Callable[[], Awaitable[None]], unsaved: Unsaved, done: Event) -> None:
        """Run `save` in `group`, shielded; then send `done` and the events held meanwhile.
        Call `previous()` first: one save at a time."""
        saved = self.saved = anyio.Event()
        self.unsaved = unsaved
        self.held = [] if self.held is None else self.held

        async def run() -> None:
            with anyio.CancelScope(shield=True):  # a round is saved whole or not at all
                await save()
            self.unsaved = None
            self.release(done)
            saved.set()

        group.start_soon(run)

    def release(self, *first: Event) -> None:
        """Send `first`, then the events held back."""
        held, self.held = self.held or [], None
        for event in (*first, *held):
            self.send(event)

    def forget_unsaved(self, state: ExperimentState) -> None:
        """After a failed save: the state as the files say (the result follows it)."""
        unsaved, self.unsaved = self.unsaved, None
        if unsaved is not None:
            unsaved.restore(state)
