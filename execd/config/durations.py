"""Durations in the config file: ``"500ms"``, ``"1.5s"``, ``"5m"`` beside bare integers.

A duration key's schema annotation names the unit of its bare integer (:data:`MS` for
the ``*_ms`` keys, :data:`CLOCK` for the limit windows); the loader
(:mod:`execd.config.load`) turns a duration string into that integer before the types
are checked, so every struct, the reload's comparison and the outcome digest
(:mod:`execd.config.digest`) only ever see integers: ``"1s"`` and ``1000`` are the same
config. Pure: no I/O, nothing read but the text.

A string is one number and one unit, with no space: ``250ms``, ``1.5s``, ``-2m``
(refused by the key's bounds). The number is read exactly (no float), and a duration
that is not a whole number of the key's unit is refused, never rounded.

Clock units are nanoseconds on the wall clock but the producer's own unit on the
logical clock (README.md, "Input": a tick is "an integer in the producer's unit"), so
a duration string for a window only means something under ``clock.kind = "wall"``.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Final

from msgspec import Struct

from execd.model.times import duration

# Each unit a duration may be written in, in nanoseconds, smallest first.
SUFFIXES: Final[dict[str, int]] = {
    "ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
    "h": 3_600_000_000_000, "d": 86_400_000_000_000,
}
# Bounded digits: a number read is never longer than a real duration needs, and
# int() never meets a string past its digit limit. No leading zero ("01s"), as in a
# JSON number, which every other number execd reads is (README.md, "Input").
_TEXT: Final = re.compile(r"(-?)(0|[1-9][0-9]{0,19})(?:\.([0-9]{1,9}))?([a-z]{1,2})")


class Unit(Struct, frozen=True):
    """What a duration key's bare integer counts; put in the key's schema annotation.

    ``name``: the unit in words, for problem lines. ``ns``: its size in nanoseconds.
    ``clock``: the key is in clock units, nanoseconds only when ``clock.kind = "wall"``.
    """

    name: str
    ns: int
    clock: bool = False

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The units a duration for this key may be written in: none smaller than its own."""
        return tuple(s for s, size in SUFFIXES.items() if size >= self.ns)


MS: Final = Unit("milliseconds", SUFFIXES["ms"])
"""A ``*_ms`` key: a bare integer is milliseconds."""

CLOCK: Final = Unit("nanoseconds", SUFFIXES["ns"], clock=True)
"""A limit window: a bare integer is in clock units (nanoseconds on the wall clock)."""


def parse(text: str, unit: Unit, ge: int | None = None, le: int | None = None) -> int:
    """``text`` (``"250ms"``, ``"1.5s"``) as an integer of ``unit``, within ``ge`` .. ``le``.

    Raises ValueError whose message is what the key expected, for the problem line:
    :func:`expected` for a text that is not one number and a unit this key takes, or
    out of the key's bounds; "a whole number of ..." for a duration that is not one.
    """
    match = _TEXT.fullmatch(text)
    if match is None or match.group(4) not in unit.suffixes:
        raise ValueError(expected(unit, ge, le))
    sign, whole, fraction, suffix = match.groups()
    number = Fraction(int(whole))
    if fraction:
        number += Fraction(int(fraction), 10 ** len(fraction))
    count = number * SUFFIXES[suffix] / unit.ns
    if count.denominator != 1:
        raise ValueError(f"a whole number of {unit.name}")
    value = -int(count) if sign else int(count)
    if (ge is not None and value < ge) or (le is not None and value > le):
        raise ValueError(expected(unit, ge, le))
    return value


def expected(unit: Unit, ge: int | None = None, le: int | None = None) -> str:
    """What a duration key takes, in words: its range, then the forms it may be written in.

    ``a duration from 10ms to 10m (an integer of milliseconds, or a number with a unit
    ms, s, m, h, d: "250ms", "1.5s")``.
    """
    if ge is not None and le is not None:
        span = f" from {show(ge, unit)} to {show(le, unit)}"
    elif ge is not None:
        span = f" of at least {show(ge, unit)}"
    elif le is not None:
        span = f" of at most {show(le, unit)}"
    else:
        span = ""
    owner = ", the wall clock's unit" if unit.clock else ""
    return (f"a duration{span} (an integer of {unit.name}{owner}, or a number with a unit "
            f"{', '.join(unit.suffixes)}: \"250ms\", \"1.5s\")")


def logical_window(clock_kind: str) -> str:
    """What a window takes when the clock is not the wall clock: a bare integer only."""
    return (f"an integer of clock units (under clock.kind = {clock_kind!r} the producer's "
            "own unit, in which a duration means nothing; durations need clock.kind = "
            "\"wall\", whose unit is nanoseconds)")


def show(count: int, unit: Unit) -> str:
    """``count`` of ``unit`` for people, exactly: as :func:`execd.model.times.duration`
    writes it (``10m``, ``1.5s``) when that is exact, else in the largest unit it is a
    whole number of (``1500ns``, ``9223372036854775807ns``): a bound is never rounded."""
    ns = count * unit.ns
    if ns >= 0:
        text = duration(ns / SUFFIXES["s"])
        if _exact(text) == ns:
            return text
    size, suffix = next((size, s) for s, size in reversed(SUFFIXES.items()) if ns % size == 0)
    return f"{ns // size}{suffix}"


def _exact(text: str) -> int | None:
    """The nanoseconds ``text`` (``5m 12s``) says, or None when it is no such text."""
    try:
        return sum(parse(part, CLOCK) for part in text.split(" "))
    except ValueError:
        return None
