"""The market's traded volume per interval, for POV schedules: ``market/volume.json``.

Research or a market-data job writes it (write-then-rename, as every lakehouse file):
per symbol, the intervals that have ended, each ``[start, end, volume]`` in clock
units and the symbol's base unit, in time order and not overlapping::

    {"BTC/USDT": [[0, 60, "812.5"], [60, 120, "640"]], "ETH/USDT": []}

A symbol must be listed (an empty list will do: its first interval has not ended
yet) for a POV on it to be planned. A symbol whose intervals are unusable (out of
order, overlapping, a negative or non-decimal volume, more than :data:`MAX_BARS`), or
every symbol when the file cannot be read or decoded, is *unusable*: a POV on it is
refused, and an open POV on it waits for a usable file (fail closed, as every
lakehouse file is: reader/context.py).

A POV child is sized by one interval (``schedule.plan.pov_share``): the latest that
ended by the sentinel's time and after the schedule's last child was released, and
lies inside the schedule's window. An interval is used by at most one child, so no
interval's cap is ever passed twice (README, "Execution algorithms").

A volume is a decimal within 1e-18 .. 1e15 (or 0) of at most 30 significant digits.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

MAX_BARS = 100_000
Name = Annotated[str, Meta(min_length=1, max_length=256)]
_decode = msgspec.json.Decoder(dict[Name, list[tuple[int, int, Decimal]]]).decode


class Bars(Struct, frozen=True):
    """One symbol's ended intervals: their starts, ends and volumes, in time order."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    volumes: tuple[Decimal, ...]

    def latest(self, since: int, now: int, start: int, end: int) -> tuple[int, Decimal] | None:
        """(end, volume) of the latest interval that ended after ``since`` and by
        ``now``, within the window ``[start, end)`` (an interval ending at the window's
        end is not used: nothing is sent after it); None when there is none."""
        i = bisect_right(self.ends, min(now, end - 1)) - 1
        if i < 0 or self.ends[i] <= since or self.starts[i] < start:
            return None
        return self.ends[i], self.volumes[i]

    def after(self, since: int, start: int, end: int) -> int | None:
        """When the first interval after ``since`` within ``[start, end)`` ends (None:
        the file has none yet), so the scheduler wakes for it."""
        i = max(bisect_right(self.ends, since), bisect_left(self.starts, start))
        if i < len(self.ends) and self.ends[i] < end:
            return self.ends[i]
        return None


class Volumes(Struct, frozen=True):
    """The usable symbols' intervals, and what is unusable: ``every`` symbol (the file
    could not be read), or those ``symbols``."""

    bars: dict[str, Bars]
    every: bool = False
    symbols: frozenset[str] = frozenset()

    def of(self, symbol: str) -> Bars | None:
        """``symbol``'s intervals, or None (unlisted or unusable)."""
        return None if self.every else self.bars.get(symbol)


NONE = Volumes({})


def _usable(rows: list[tuple[int, int, Decimal]]) -> Bars | None:
    if len(rows) > MAX_BARS:
        return None
    previous = 0  # clock times are at least 0
    for start, end, volume in rows:
        if not (previous <= start < end <= 2**63 - 1):
            return None
        # The same range as prices, and a bounded number of digits: a child's cap is
        # computed exactly (in Fractions), which 1E-100000000 would make endless.
        if not (volume.is_finite() and volume >= 0 and len(volume.as_tuple().digits) <= 30
                and (volume == 0 or -18 <= volume.adjusted() <= 15)):
            return None
        previous = end
    return Bars(tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))


def parse(data: bytes, name: str) -> tuple[Volumes, str | None]:
    """The intervals in ``data`` (the file's bytes) and the problem, if any."""
    try:
        entries = _decode(data)
    except msgspec.DecodeError as exc:
        return Volumes({}, every=True), f"{name}: {exc}"
    except RecursionError:
        return Volumes({}, every=True), f"{name}: JSON nested too deep to decode"
    good, bad = {}, []
    for symbol, rows in entries.items():
        bars = _usable(rows)
        if bars is None:
            bad.append(symbol)
        else:
            good[symbol] = bars
    if not bad:
        return Volumes(good), None
    shown = ", ".join(sorted(bad)[:5])
    return (Volumes(good, symbols=frozenset(bad)),
            f"{name}: no usable intervals for {shown} ([start, end, volume] each, start < "
            f"end, in time order, not overlapping, volume 0 or within 1e-18 .. 1e15 of at "
            f"most 30 digits, at most {MAX_BARS})")


def path_of(market: Path) -> Path:
    """Where the intervals are, in the lakehouse's ``market/``."""
    return market / "volume.json"
