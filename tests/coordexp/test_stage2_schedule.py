from fractions import Fraction

import pytest

from coordexp.stage2.schedule import RealizedRatio, channel_for_step, count_b, is_channel_b


@pytest.mark.parametrize("b", [0.0, 0.05, 0.5, 0.85, 0.875, 1.0, Fraction(1, 3)])
def test_prefix_counts_equal_floor(b):
    # the number of B steps in 0..n-1 is floor(n*b) for every n: the schedule is a Bresenham line
    exact = Fraction(repr(b)) if isinstance(b, float) else Fraction(b)
    seen = 0
    for n in range(1, 1201):
        seen += is_channel_b(n - 1, b)
        assert seen == count_b(n, b) == int(exact * n)


def test_extremes():
    assert not any(is_channel_b(s, 0) for s in range(500))
    assert all(is_channel_b(s, 1) for s in range(500))


def test_exact_count_for_0_875():
    assert sum(is_channel_b(s, 0.875) for s in range(1000)) == 875


def test_resume_is_stateless():
    full = [channel_for_step(s, 0.85) for s in range(300)]
    resumed = [channel_for_step(s, 0.85) for s in range(137, 300)]
    assert full[137:] == resumed


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_bad_ratio(bad):
    with pytest.raises(ValueError, match="b_ratio"):
        is_channel_b(0, bad)


def test_bad_step():
    with pytest.raises(ValueError, match="optimizer step"):
        is_channel_b(-1, 0.5)


def test_realized_ratio_window_and_order():
    rr = RealizedRatio(window=4)
    assert rr.value is None
    for s, f in enumerate([1, 1, 0, 0, 0, 0]):
        rr.record(s, bool(f))
    assert rr.value == 0.0
    with pytest.raises(ValueError, match="once"):
        rr.record(5, True)
    assert RealizedRatio.should_log(0.85) and not RealizedRatio.should_log(0) and not RealizedRatio.should_log(1)


def test_realized_ratio_long_horizon():
    rr = RealizedRatio()
    for s in range(1000):
        rr.record(s, is_channel_b(s, 0.85))
        if s >= 199:  # any 200-step window holds floor-differences: within 1/200 of b
            assert abs(rr.value - 0.85) <= 1 / 200
