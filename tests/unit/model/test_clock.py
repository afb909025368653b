import pytest

from execd.model.clock import LogicalClock, WallClock
from execd.model.errors import ClockRegression


def test_logical_clock_moves_only_forward_when_told() -> None:
    clock = LogicalClock(5)
    assert clock.now() == 5
    clock.advance(5)
    clock.advance(9)
    assert clock.now() == 9
    with pytest.raises(ClockRegression, match="before the current time 9"):
        clock.advance(8)
    assert clock.now() == 9


def test_wall_clock_refuses_ticks() -> None:
    with pytest.raises(ClockRegression):
        WallClock().advance(1)
    assert WallClock().now() > 0
