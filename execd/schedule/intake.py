"""An intent's ``execution`` object, checked and planned: its refusal, or its schedule. Pure.

:func:`schedule_of` is what the sentinel asks of an intent that names an algorithm
(README, "Execution algorithms"): None for ``immediate`` (one order, as always), a
:class:`~execd.model.refusal.Refusal` with an ``EXECUTION_*`` reason for anything that
cannot be planned as written, or the :class:`~execd.model.messages.ScheduleRecord` its
slices make. Everything here is a function of the intent, the venue's plane and the
sentinel's time: the same intent plans to the same bytes in every process.

The paper plane has no market rules, so a schedule there slices in units of the
quantity's last written digit (``"2.50"`` in lots of 0.01; ``"3"`` in lots of 1): the
children always add up to the parent exactly, and none is smaller than one such unit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Final

from msgspec import Raw

from execd.model import reasons
from execd.model.messages import (
    MAX_TIME,
    Execution,
    OrderIntent,
    Plane,
    PovTerms,
    ScheduleRecord,
    Side,
    Source,
)
from execd.model.refusal import Refusal
from execd.reader.profiles import NONE as NO_PROFILES
from execd.reader.profiles import Profiles
from execd.reader.volumes import NONE as NO_VOLUMES
from execd.reader.volumes import Volumes
from execd.schedule import plan
from execd.schedule.plan import FLAT, Floor, Profile

ALGORITHMS: Final = ("immediate", "twap", "vwap", "iceberg", "pov")
TIMES_IN_FORCE: Final = ("GTC", "IOC", "FOK", "GTD", "PO")
#: The most children one schedule may plan: bounds a schedule's record and memory.
MAX_SLICES: Final = 10_000
#: The most significant digits of a scheduled quantity: its lots and every child's
#: quantity then stay exact within Decimal's 28 digits.
MAX_DIGITS: Final = 24
# Quantities and prices must lie within 1e-18 .. 1e15 (as the sentinel checks them).
_LEAST, _BEYOND = Decimal(1).scaleb(-18), Decimal(1).scaleb(16)

# The parameters each algorithm reads; any other one given is refused, so a typo'd
# intent (visible on a twap) is not executed as something it did not mean.
_TIMED = frozenset(("start", "end", "duration", "slices", "interval"))
_PARAMETERS: Final[dict[str, frozenset[str]]] = {
    "immediate": frozenset(),
    "twap": _TIMED,
    "vwap": _TIMED,
    "iceberg": frozenset(("start", "visible")),
    "pov": frozenset(("start", "end", "duration", "participation")),
}
_COMMON = frozenset(("algorithm", "time_in_force", "expire_at"))


def parameters_of(algorithm: str) -> frozenset[str]:
    """The parameters ``algorithm`` reads (none for one execd does not know)."""
    return _PARAMETERS.get(algorithm, frozenset())


def slices_json(slices: Iterable[plan.Slice]) -> Raw:
    """A schedule record's ``slices``: ``[[due, lots], ...]``, as msgspec writes them."""
    return Raw(b"[" + b",".join(b"[%d,%d]" % (s.due, s.lots) for s in slices) + b"]")


def lot_of(quantity: Decimal) -> Decimal:
    """The paper plane's lot for ``quantity``: one unit of its last written digit."""
    exponent = quantity.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite quantity: the sentinel checked it
    return Decimal(1).scaleb(exponent)


def _invalid(reason: str, detail: str) -> Refusal:
    return Refusal(reason, detail)


def time_in_force(execution: Execution, now: int) -> Refusal | None:
    """Why ``execution``'s time in force is refused, or None."""
    tif, expire = execution.time_in_force, execution.expire_at
    if tif is None and expire is None:
        return None
    if tif not in TIMES_IN_FORCE:
        return _invalid(reasons.EXECUTION_TIME_IN_FORCE_INVALID,
                        f"time_in_force={tif!r}: expected one of {', '.join(TIMES_IN_FORCE)}")
    if (tif == "GTD") != (expire is not None):
        return _invalid(reasons.EXECUTION_TIME_IN_FORCE_INVALID,
                        "time_in_force=GTD needs expire_at, and expire_at needs GTD")
    if expire is not None and not now < expire <= MAX_TIME:
        return _invalid(reasons.EXECUTION_TIME_IN_FORCE_INVALID,
                        f"expire_at={expire} is not after the intent's time {now}")
    # Whether the venue honours it is the live venue's to say (venues/ccxt/prepare.py),
    # from its market features; the paper plane fills at once, which honours them all.
    return None


def schedule_of(intent: OrderIntent, intent_id: uuid.UUID, side: Side, plane: Plane,
                now: int, raw: bytes, source: Source | None,
                profiles: Profiles = NO_PROFILES,
                floor: Floor | None = None,
                volumes: Volumes = NO_VOLUMES) -> Refusal | ScheduleRecord | None:
    """The schedule ``intent`` asks for (see the module docstring); a VWAP follows its
    symbol's profile in ``profiles`` (the lakehouse's), or the flat one; a POV needs its
    symbol listed in ``volumes``. ``floor``: a live venue's lot and smallest order
    (None: the paper plane's lot, no floor)."""
    execution = intent.execution
    if execution is None:
        return None
    algorithm = execution.algorithm
    if algorithm not in _PARAMETERS:
        return _invalid(reasons.EXECUTION_ALGORITHM_UNKNOWN,
                        f"algorithm={algorithm!r}: expected one of {', '.join(ALGORITHMS)}")
    refusal = time_in_force(execution, now)
    if refusal is not None:
        return refusal
    extra = sorted(name for name in execution.__struct_fields__
                   if getattr(execution, name) is not None and name not in _COMMON
                   and name not in _PARAMETERS[algorithm])
    if extra:
        return _invalid(reasons.EXECUTION_PARAMETER_INVALID,
                        f"{', '.join(extra)}: not a parameter of {algorithm}")
    if algorithm == "immediate":
        return None
    digits = len(intent.absolute.as_tuple().digits)
    if digits > MAX_DIGITS:
        return _invalid(reasons.EXECUTION_PARAMETER_INVALID,
                        f"quantity={intent.absolute} has {digits} significant digits: a "
                        f"schedule splits at most {MAX_DIGITS}")
    profile = FLAT
    if algorithm == "vwap":
        if profiles.unusable(intent.symbol):
            return _invalid(reasons.EXECUTION_PROFILE_UNUSABLE,
                            f"symbol={intent.symbol!r}: the lakehouse's volume profile for it "
                            "cannot be used (the context record's problems say why)")
        profile = profiles.profiles.get(intent.symbol, FLAT)
    floor = floor if floor is not None else Floor(lot_of(intent.absolute))
    made = (_pov(execution, intent.absolute, now, floor) if algorithm == "pov"
            else _plan(execution, intent.absolute, now, profile, floor))
    if isinstance(made, Refusal):
        return made
    if algorithm == "pov" and volumes.of(intent.symbol) is None:
        return _invalid(reasons.EXECUTION_VOLUME_UNUSABLE,
                        f"symbol={intent.symbol!r} has no usable intervals in the lakehouse's "
                        "market/volume.json (the context record's problems say why)")
    plan_, terms = made if isinstance(made, tuple) else (made, None)
    if plan_.planned < floor.smallest() * floor.lot:
        return Refusal(reasons.BELOW_FLOOR,
                       f"quantity={intent.absolute} plans {plan_.planned} in lots of "
                       f"{floor.lot}: below the smallest order the venue takes", "SKIPPED")
    return ScheduleRecord(intent_id, intent.venue, intent.symbol, side, algorithm,
                          intent.absolute, plan_.lot, slices_json(plan_.slices),
                          Raw(raw), plan_.unplanned, algorithm != "iceberg", source, terms,
                          intent.priority)


def _pov(execution: Execution, quantity: Decimal, now: int,
         floor: Floor) -> tuple[plan.Plan, PovTerms] | Refusal:
    """A POV's one slice (all its lots, due at its end: what it may send by then) and
    its terms, or why it cannot be planned."""
    participation = execution.participation
    # At least 1e-18 and at most 24 digits, as quantities: each child's cap is exact.
    if participation is None or not (
            participation.is_finite() and 0 < participation <= 1
            and participation.adjusted() >= -18
            and len(participation.as_tuple().digits) <= MAX_DIGITS):
        return _invalid(reasons.EXECUTION_PARAMETER_INVALID,
                        f"participation={participation}: a POV needs a share of the market's "
                        f"volume within 1e-18 .. 1, of at most {MAX_DIGITS} significant digits")
    start = now if execution.start is None else execution.start
    if not 0 <= start <= MAX_TIME:
        return _invalid(reasons.EXECUTION_WINDOW_INVALID, f"start={start} is outside 0 .. 2**63-1")
    end = _end(execution, start, now)
    if isinstance(end, Refusal):
        return end
    units, rest = plan.lots_of(quantity, floor.lot)
    slices = (plan.Slice(end, units),) if units else ()
    return (plan.Plan(slices, floor.lot, rest),
            PovTerms(start, end, participation, floor.smallest()))


def _plan(execution: Execution, quantity: Decimal, now: int, profile: Profile,
          floor: Floor) -> plan.Plan | Refusal:
    start = now if execution.start is None else execution.start
    if not 0 <= start <= MAX_TIME:
        return _invalid(reasons.EXECUTION_WINDOW_INVALID, f"start={start} is outside 0 .. 2**63-1")
    if execution.algorithm == "iceberg":
        visible = execution.visible
        if visible is None or not (visible.is_finite() and _LEAST <= visible < _BEYOND):
            return _invalid(reasons.EXECUTION_PARAMETER_INVALID,
                            f"visible={visible}: an iceberg needs a visible quantity within "
                            "1e-18 .. 1e15")
        units = plan.lots_of(quantity, floor.lot)[0]
        shown = max(plan.lots_of(visible, floor.lot)[0], floor.smallest())
        if -(-units // shown) > MAX_SLICES:
            return _invalid(reasons.EXECUTION_PARAMETER_INVALID,
                            f"visible={visible} shows quantity={quantity} in more than "
                            f"{MAX_SLICES} children")
        return plan.iceberg(quantity, start, visible, floor)
    window = _window(execution, start, now)
    if isinstance(window, Refusal):
        return window
    end, count = window
    if execution.algorithm == "vwap":
        try:
            return plan.vwap(quantity, start, end, count, floor, profile)
        except ValueError as exc:  # every slice in bins of weight 0
            return _invalid(reasons.EXECUTION_PROFILE_UNUSABLE, f"{exc}: nothing to plan by")
    return plan.twap(quantity, start, end, count, floor)


def _end(execution: Execution, start: int, now: int) -> int | Refusal:
    """The end of a schedule's window, or why it has none that is still to come."""
    end, duration = execution.end, execution.duration
    if (end is None) == (duration is None):
        return _invalid(reasons.EXECUTION_WINDOW_INVALID,
                        "a schedule needs exactly one of end and duration")
    if end is None:
        assert duration is not None
        end = start + duration
    if not start < end <= MAX_TIME:
        return _invalid(reasons.EXECUTION_WINDOW_INVALID,
                        f"the window [{start}, {end}) ends before it starts, or past 2**63-1")
    if end <= now:
        return _invalid(reasons.EXECUTION_WINDOW_INVALID,
                        f"the window [{start}, {end}) is over: the intent's time is {now}")
    return end


def _window(execution: Execution, start: int, now: int) -> tuple[int, int] | Refusal:
    """(end, slices) of a timed schedule, or why it cannot be planned."""
    end = _end(execution, start, now)
    if isinstance(end, Refusal):
        return end
    slices, interval = execution.slices, execution.interval
    if (slices is None) == (interval is None):
        return _invalid(reasons.EXECUTION_WINDOW_INVALID,
                        "a schedule needs exactly one of slices and interval")
    if interval is not None:
        if interval <= 0:
            return _invalid(reasons.EXECUTION_WINDOW_INVALID, f"interval={interval} must be > 0")
        slices = -(-(end - start) // interval)
    assert slices is not None
    if not 1 <= slices <= MAX_SLICES:
        return _invalid(reasons.EXECUTION_WINDOW_INVALID,
                        f"{slices} slices: expected 1 .. {MAX_SLICES}")
    return end, slices
