import pytest

from engine.game import BASE_PAYOFFS, initial_powers, pairings, payoffs, update_powers


def test_base_matrix():
    assert BASE_PAYOFFS[("COOPERATE", "COOPERATE")] == (3, 3)
    assert BASE_PAYOFFS[("COOPERATE", "DEFECT")] == (0, 5)
    assert BASE_PAYOFFS[("DEFECT", "COOPERATE")] == (5, 0)
    assert BASE_PAYOFFS[("DEFECT", "DEFECT")] == (1, 1)


def test_power_scaled_payoffs_amplify_the_weaker_player():
    # p1 = 80, p2 = 120, both cooperate: 3 * 120/80 = 4.5 for the weaker, 3 * 80/120 = 2 for the stronger
    assert payoffs("COOPERATE", "COOPERATE", 80, 120, True) == pytest.approx((4.5, 2.0))
    # weaker defects on stronger: 5 * 120/80 = 7.5, 0
    assert payoffs("DEFECT", "COOPERATE", 80, 120, True) == pytest.approx((7.5, 0.0))
    assert payoffs("DEFECT", "DEFECT", 100, 50, True) == pytest.approx((0.5, 2.0))


def test_dynamics_off_gives_the_plain_matrix():
    assert payoffs("DEFECT", "COOPERATE", 80, 120, False) == (5.0, 0.0)


def test_power_update_worked_example_with_clamping():
    # scores 10, 20, 30 -> mean 20; deltas -1, 0, +1
    assert update_powers([100, 100, 100], [10, 20, 30]) == pytest.approx([99, 100, 101])
    # 149.5 + 0.1 * (40 - 20) = 151.5 -> 150; 50.5 + 0.1 * (0 - 20) = 48.5 -> 50
    assert update_powers([149.5, 50.5, 100], [40, 0, 20]) == pytest.approx([150, 50, 100])


@pytest.mark.parametrize("n", [2, 3, 10, 50])
def test_round_robin_has_every_pair_once(n):
    pairs = pairings(n)
    assert len(pairs) == n * (n - 1) // 2
    assert len(set(pairs)) == len(pairs)
    assert all(i < j for i, j in pairs)
    assert pairs == sorted(pairs)


def test_initial_powers():
    powers = initial_powers(42, 200, "random")
    assert all(50 <= p <= 150 for p in powers)
    assert len(set(powers)) > 150
    assert powers == initial_powers(42, 200, "random")
    assert powers[:10] == initial_powers(42, 10, "random")  # keyed per agent, not by draw order
    assert initial_powers(42, 5, "equal") == [100.0] * 5
