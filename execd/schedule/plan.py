"""A parent order's slices: when each child is due and how much it asks for. Pure.

Every planner works in whole *lots* (the venue's amount step; a caller without market
rules passes the granularity it trades in), so a child is never rounded again on its
way out and the children add up to the parent exactly. A share is spread by the
largest-remainder rule (each slice within one lot of its exact share, the sum exact),
then every share below the venue's floor (its minimum amount or notional, in lots) is
merged into its neighbour: no child is ever planned below the floor, and no lot is
lost on the way (DESIGN, seed 004 "Routing & Scheduling"). A quantity that is not a
whole number of lots keeps its remainder out of the plan (``Plan.unplanned``): it
cannot be sent, and the parent's outcome says so.

Times are in the clock's units (the producer's on the logical clock, nanoseconds on
the wall clock); slices of a window ``[start, end)`` fall at
``start + (end - start) * i // count``, integers only, so a plan is the same bytes in
every process.

* :func:`twap`: equal shares at equal intervals;
* :func:`vwap`: shares in proportion to a volume profile (:class:`Profile`) at the
  slices' times;
* :func:`pov_share`: one interval's child under a participation cap of the volume the
  market traded in it (a plan cannot know volume in advance: the scheduler asks this
  at each interval's end);
* :func:`iceberg` and :func:`iceberg_share`: the visible children of what is left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_CEILING, Context, Decimal, Inexact, InvalidOperation, Rounded
from fractions import Fraction

from msgspec import Struct


class Slice(Struct, frozen=True, array_like=True, gc=False):
    """One child of a schedule: released at clock time ``due``, for ``lots`` lots."""

    due: int
    lots: int


class Floor(Struct, frozen=True):
    """How a venue rounds and bounds one child: its lot, and the smallest child it
    takes (by amount, and by notional at ``price``; None where it sets none)."""

    lot: Decimal
    min_quantity: Decimal | None = None
    min_notional: Decimal | None = None
    price: Decimal | None = None

    def smallest(self) -> int:
        """The smallest child in lots (at least one)."""
        lots = 1
        if self.min_quantity is not None:
            lots = max(lots, int((self.min_quantity / self.lot).to_integral_value(ROUND_CEILING)))
        if self.min_notional is not None and self.price is not None and self.price > 0:
            by_notional = self.min_notional / (self.price * self.lot)
            lots = max(lots, int(by_notional.to_integral_value(ROUND_CEILING)))
        return lots


class Plan(Struct, frozen=True):
    """The slices of a parent (in time order, none empty) and what of its quantity no
    slice holds: the part below one lot (``unplanned``), which cannot be sent."""

    slices: tuple[Slice, ...]
    lot: Decimal
    unplanned: Decimal

    @property
    def planned(self) -> Decimal:
        """The quantity the slices hold together."""
        return sum((s.lots for s in self.slices), 0) * self.lot


class Profile(Struct, frozen=True):
    """A volume profile: the share of the market's volume in each of ``len(weights)``
    equal bins of a ``period`` (a day, in clock units, for a daily profile), from the
    period's start (clock time 0 modulo ``period``)."""

    period: int
    weights: tuple[Decimal, ...]

    def weight_at(self, time: int) -> Decimal:
        """The weight of the bin that clock time ``time`` falls in."""
        bins = len(self.weights)
        return self.weights[(time % self.period) * bins // self.period]


#: The profile a VWAP follows when none is given: every bin the same, so it plans as a
#: TWAP does (README, "Execution algorithms").
FLAT = Profile(1, (Decimal(1),))


# Decimal's own divmod, where it is exact: any rounding (a quotient beyond 28 digits)
# raises, and the integers below take over. Several times faster, and asked per child.
_EXACT = Context(prec=28, traps=[InvalidOperation, Inexact, Rounded])


def lots_of(quantity: Decimal, lot: Decimal) -> tuple[int, Decimal]:
    """(whole lots in ``quantity``, the remainder below one lot), exactly: in integers
    over the finer of the two exponents, so no division rounds at the context's
    precision (which could make the remainder negative). Both finite, ``lot`` > 0."""
    if not quantity.is_signed():  # -0 and below: the integers' sign rules
        try:
            lots, rest = _EXACT.divmod(quantity, lot)
            return int(lots), rest
        except ArithmeticError:
            pass
    q_whole, q_exp = _integral(quantity)
    lot_whole, lot_exp = _integral(lot)
    exponent = min(q_exp, lot_exp)
    lots, rest = divmod(q_whole * 10 ** (q_exp - exponent),
                        lot_whole * 10 ** (lot_exp - exponent))
    return lots, Decimal((0 if rest >= 0 else 1, tuple(map(int, str(abs(rest)))), exponent))


def _integral(value: Decimal) -> tuple[int, int]:
    """``value`` as (integer, exponent): value == integer x 10**exponent."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    whole = int("".join(map(str, digits)) or "0")
    return (-whole if sign else whole), exponent


def due_times(start: int, end: int, count: int) -> list[int]:
    """The release times of ``count`` slices spread over ``[start, end)``."""
    return [start + (end - start) * i // count for i in range(count)]


def allocate(units: int, weights: Sequence[Fraction | int], floor: int) -> list[int]:
    """``units`` spread over ``weights`` in proportion, then the shares below ``floor``
    merged into a neighbour; one share per weight (a merged-away share is 0).

    The spread is the largest-remainder rule: each share is its exact share rounded
    down, and the units left go one each to the largest remainders (the earlier slice
    first on a tie), so every share is within one unit of exact and the sum is exact.
    Merging then walks forward, carrying a share below ``floor`` into the next slice;
    what is carried past the last slice joins the last one kept (or the last slice).
    ValueError unless every weight is at least 0 and some is above 0.
    """
    if not weights or any(w < 0 for w in weights):
        raise ValueError("weights must be at least 0, and not all 0")
    # In integers over one denominator: exact as Fractions are, and far cheaper.
    scale = math.lcm(*(w.denominator for w in weights))  # an int's is 1
    whole = [int(w * scale) for w in weights]
    total = sum(whole)
    if total <= 0:
        raise ValueError("weights must be at least 0, and not all 0")
    shares = [units * w // total for w in whole]
    rests = [units * w % total for w in whole]  # each exact share's remainder, x total
    left = units - sum(shares)
    if left:
        order = sorted(range(len(whole)), key=lambda i: (-rests[i], i))
        for i in order[:left]:
            shares[i] += 1
    carried = 0
    for i, share in enumerate(shares):
        share += carried
        carried, shares[i] = (share, 0) if share < floor else (0, share)
    if carried:
        kept = [i for i, share in enumerate(shares) if share]
        shares[kept[-1] if kept else len(shares) - 1] += carried
    return shares


def _plan(quantity: Decimal, times: list[int], weights: Sequence[Fraction | int],
          floor: Floor) -> Plan:
    units, rest = lots_of(quantity, floor.lot)
    shares = allocate(units, weights, floor.smallest()) if units else [0] * len(times)
    slices = tuple(Slice(due, share) for due, share in zip(times, shares, strict=True)
                   if share)
    return Plan(slices, floor.lot, rest)


def twap(quantity: Decimal, start: int, end: int, count: int, floor: Floor) -> Plan:
    """``quantity`` in ``count`` equal slices over ``[start, end)``. ValueError unless
    ``count`` is at least 1 and ``end`` after ``start``."""
    _check_window(start, end, count)
    return _plan(quantity, due_times(start, end, count), [1] * count, floor)


def vwap(quantity: Decimal, start: int, end: int, count: int, floor: Floor,
         profile: Profile = FLAT) -> Plan:
    """``quantity`` in ``count`` slices over ``[start, end)``, each in proportion to
    ``profile``'s weight at its time. ValueError as :func:`twap`, or when the profile
    weighs every slice's time 0."""
    _check_window(start, end, count)
    times = due_times(start, end, count)
    weights = [Fraction(profile.weight_at(t)) for t in times]
    if not any(weights):
        raise ValueError("the volume profile is 0 at every slice of the window")
    return _plan(quantity, times, weights, floor)


def iceberg(quantity: Decimal, start: int, visible: Decimal, floor: Floor) -> Plan:
    """``quantity`` shown ``visible`` at a time, every slice due at ``start``: the
    scheduler sends them one by one, each once the one before has settled (the last
    takes what would remain below the floor). ValueError unless ``visible`` > 0."""
    if visible <= 0:
        raise ValueError(f"visible={visible} must be > 0")
    units, rest = lots_of(quantity, floor.lot)
    shown = max(lots_of(visible, floor.lot)[0], 1)
    shares = []
    while units:
        share = iceberg_share(units, shown, floor)
        shares.append(share)
        units -= share
    return Plan(tuple(Slice(start, share) for share in shares), floor.lot, rest)


def pov_share(left: int, volume: Decimal, participation: Decimal, lot: Decimal,
              smallest: int = 1) -> int:
    """The child, in lots of ``lot``, for an interval in which the market traded
    ``volume``: never more than ``participation`` of it, nor more than the ``left``
    lots, nor below ``smallest`` lots (the venue's floor; 0: this interval passes, and
    what is left waits for a later one). A child never leaves a remainder below the
    floor, which no later child could send: it is made smaller, to leave one floor's
    worth, or it waits."""
    # In Fractions: a Decimal division rounds at 28 digits, and could round up to a
    # lot above the cap.
    cap = math.floor(Fraction(volume) * Fraction(participation) / Fraction(lot))
    share = min(left, max(cap, 0))
    if share < smallest:
        return 0
    if 0 < left - share < smallest:
        trimmed = left - smallest
        return trimmed if trimmed >= smallest else 0
    return share


def iceberg_share(left: int, visible: int, floor: Floor) -> int:
    """The next visible child, in lots: ``visible`` lots (at least the floor) or what is
    left, and all that is left when what would remain is below the floor."""
    smallest = floor.smallest()
    show = max(visible, smallest)
    return left if left - show < smallest else show


def _check_window(start: int, end: int, count: int) -> None:
    if count < 1:
        raise ValueError(f"{count} slices: at least 1")
    if end <= start:
        raise ValueError(f"the window ends at {end}, not after its start {start}")
