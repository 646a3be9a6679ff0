"""What the engine tells its observers. One typed event per thing that happened.

Observers are called synchronously on the engine's event loop and must return quickly
(queue or batch the work); the headless printer and the TUI are two observers."""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from engine.models import (
    ErrorRecord,
    ExperimentResult,
    GameResult,
    Manifest,
    RoundSummary,
    StrategyRecord,
)


@dataclass(frozen=True, slots=True)
class RunStarted:
    manifest: Manifest
    directory: Path
    first_round: int = 1  # > 1 when a resumed run skips completed rounds


@dataclass(frozen=True, slots=True)
class RoundStarted:
    round: int
    total_rounds: int


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    round: int
    phase: Literal["strategies", "games"]
    total: int  # strategies to collect / games to play


@dataclass(frozen=True, slots=True)
class StrategyCollected:
    record: StrategyRecord


@dataclass(frozen=True, slots=True)
class GameFinished:
    game: GameResult
    label1: str  # the round's Player_{r}_{k} label of player 1
    label2: str


@dataclass(frozen=True, slots=True)
class RoundSummarised:
    """The summary's rates count model-decided moves only; its fallback_rate and
    fallback_decisions say how many were drawn instead."""

    summary: RoundSummary
    overall_cooperation_rate: float | None  # counted moves so far; None when none counts
    total_rounds: int
    overall_fallback_rate: float | None = None  # fallback moves / all moves so far


@dataclass(frozen=True, slots=True)
class CallRetried:
    key: str
    attempt: int  # the attempt that failed (1-based)
    reason: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class ErrorLogged:
    record: ErrorRecord


@dataclass(frozen=True, slots=True)
class Paused:
    in_flight: int


@dataclass(frozen=True, slots=True)
class Resumed:
    pass


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: ExperimentResult
    directory: Path


Event = (
    RunStarted
    | RoundStarted
    | PhaseStarted
    | StrategyCollected
    | GameFinished
    | RoundSummarised
    | CallRetried
    | ErrorLogged
    | Paused
    | Resumed
    | RunFinished
)


class Observer(Protocol):
    def on_event(self, event: Event) -> None: ...


class NullObserver:
    def on_event(self, event: Event) -> None:
        pass
