"""The collector's young-generation threshold is raised while runs go and put back after
the last one ends (engine/collect.py)."""

import gc

import pytest

from engine.collect import YOUNG_THRESHOLD, fewer_collections
from engine.events import RoundStarted
from engine.providers.simulated import SimulatedProvider
from engine.runner import run_experiment


@pytest.fixture
def default_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


class Thresholds:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_event(self, event) -> None:
        if isinstance(event, RoundStarted):
            self.seen.append(gc.get_threshold()[0])


async def test_a_run_raises_the_threshold_and_puts_it_back(make_config, default_thresholds):
    observer = Thresholds()
    result = await run_experiment(make_config(agents=3, rounds=2), provider=SimulatedProvider(7), observer=observer)
    assert result.status == "completed"
    assert observer.seen == [YOUNG_THRESHOLD, YOUNG_THRESHOLD]
    assert gc.get_threshold() == (700, 10, 10)


def test_the_threshold_goes_back_when_the_last_of_overlapping_runs_ends(default_thresholds):
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the second run still goes
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_is_never_lowered(default_thresholds):
    gc.set_threshold(50_000, 20, 30)
    with fewer_collections():
        assert gc.get_threshold() == (50_000, 20, 30)
    assert gc.get_threshold() == (50_000, 20, 30)


def test_collection_left_off_stays_off(default_thresholds):
    gc.set_threshold(0, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == (0, 10, 10)


def test_the_threshold_goes_back_when_a_run_fails(default_thresholds):
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == (700, 10, 10)
