"""Times and durations as people read them.

The ledger keeps integers (nanoseconds since the epoch for wall-clock times, the
producer's units for logical time); what a person reads, in ``ledger tail``,
``ctl status``, reports and errors, is ISO 8601 UTC and short durations. Logical
times are shown as they are: they are not wall-clock times.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

_NS: Final = 1_000_000_000
_EPOCH: Final = dt.datetime(1970, 1, 1)  # naive, read as UTC: isoformat adds no offset


def iso_utc(ns: int, *, digits: int = 3) -> str:
    """``ns`` since the epoch as ISO 8601 UTC, e.g. ``2026-12-01T18:14:13.250Z``.

    ``digits`` (0 to 9) is how many decimals of the second are kept; they are cut,
    not rounded, so a time is never shown later than it was. The year is always four
    digits; a time outside the years 0001 to 9999 is shown as its integer, "not a
    representable time".
    """
    if not 0 <= digits <= 9:
        raise ValueError(f"digits: expected 0 to 9, found {digits}")
    seconds, part = divmod(ns, _NS)
    try:
        # Epoch plus a timedelta, and isoformat, not fromtimestamp and strftime: the C
        # library's %Y does not pad years below 1000 (glibc writes "68-09-03"), and its
        # range is the platform's; datetime's own is exactly the years 1 to 9999, and
        # isoformat always writes four digits of year.
        stamp = (_EPOCH + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")
    except OverflowError:
        return f"{ns} ns (not a representable time)"
    fraction = f"{part:09d}"[:digits]
    return f"{stamp}.{fraction}Z" if digits else f"{stamp}Z"


def duration(seconds: float) -> str:
    """A short duration: ``850ms``, ``12.5s``, ``5m 12s``, ``3h 4m``, ``2d 3h``."""
    if seconds != seconds or seconds < 0:  # NaN or negative: a clock that stepped back
        return "-"
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = int(seconds)
    for unit, size, sub, sub_size in (("d", 86_400, "h", 3_600), ("h", 3_600, "m", 60),
                                      ("m", 60, "s", 1)):
        if whole >= size:
            high, rest = divmod(whole, size)
            low = rest // sub_size
            return f"{high}{unit} {low}{sub}" if low else f"{high}{unit}"
    return f"{whole}s"  # not reached: whole >= 60 here
