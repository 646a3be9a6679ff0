"""The one ETA formula (engine.control.eta_seconds) the headless printer and the run screen
show: the mean of the last 3 round durations x the rounds left."""

import pytest

from engine.control import eta_seconds


def test_eta_is_the_mean_of_the_last_three_rounds_times_the_rounds_left():
    assert eta_seconds([], 5) is None
    assert eta_seconds([4.0], 5) == pytest.approx(20.0)
    assert eta_seconds([100.0, 1.0, 2.0, 3.0], 6) == pytest.approx(12.0)  # the slow first round has left the window
    assert eta_seconds([1.0, 2.0, 3.0], 0) == 0.0
