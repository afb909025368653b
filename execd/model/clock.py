"""Clocks: the only place in execd that may read the system time.

The paper plane runs on a :class:`LogicalClock` that moves only when a tick arrives
from outside, which is what makes a replay byte-identical. The live plane may use
:class:`WallClock`. Everything else receives time as a value.
"""

from __future__ import annotations

import time
from typing import Protocol

from execd.model.errors import ClockRegression


class Clock(Protocol):
    """Source of the current time, as an integer."""

    @property
    def logical(self) -> bool:
        """True when time moves only by ticks from outside."""
        ...

    def now(self) -> int:
        """The current time."""
        ...

    def advance(self, to: int) -> None:
        """Move the clock to ``to``; raises ClockRegression when ``to`` < now()."""
        ...


class LogicalClock:
    """A clock that moves only when told to, and never backwards."""

    logical = True

    def __init__(self, start: int = 0) -> None:
        self._now = start

    def now(self) -> int:
        """The time of the last tick (or the start time)."""
        return self._now

    def advance(self, to: int) -> None:
        """Move to ``to``. Equal ticks are accepted; earlier ones are refused."""
        if to < self._now:
            raise ClockRegression(f"tick {to} is before the current time {self._now}")
        self._now = to


class WallClock:
    """Nanoseconds since the epoch, read from the system: for the live plane only."""

    logical = False

    def now(self) -> int:
        """The system time in nanoseconds."""
        return time.time_ns()

    def advance(self, to: int) -> None:
        """A wall clock cannot be moved from outside."""
        raise ClockRegression("the wall clock cannot be advanced by a tick")


def monotonic_ns() -> int:
    """Nanoseconds on a clock that never steps: for windows, waits and deadlines."""
    return time.monotonic_ns()


def monotonic() -> float:
    """Seconds on a monotonic clock, for timeouts and measurements outside the paper path."""
    return time.monotonic()


def utc_now_iso() -> str:
    """The wall-clock time as ISO 8601 UTC, for operator actions (never the paper path)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
