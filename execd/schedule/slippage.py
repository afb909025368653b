"""A schedule's slippage against its arrival price, and what a breach changes. Pure.

A parent planned under a policy rule with a ``slippage`` tolerance keeps it, and its
arrival price, in its ``schedule`` record (:class:`~execd.model.messages.Slippage`).
Each child that fills is measured (:func:`breach`): its average price against the
arrival price, and the parent's average so far, in basis points, positive when worse
for the side (a buy above, a sell below). The scheduler core asks this on every
settlement, live and in the fold alike, so a restart finds the same breaches and the
same responses; the sentinel records each one (a ``slippage`` record).

The comparisons are exact, with no division: a child's ``adverse * 10000 > max_bps *
arrival``; the parent's from its exact notional (the sum of price times quantity, which
the core keeps in :data:`EXACT`), ``(notional - arrival * executed) * 10000 > max_bps *
arrival * executed`` for a buy. Only the recorded prices and bps are rounded, to 28
and 12 significant digits.
"""

from __future__ import annotations

import uuid
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any, Final

from execd.model.messages import MAX_TIME, ScheduleRecord, Side, SlippageRecord

# Exact: addition, subtraction and multiplication take as many digits as they need
# (a lakehouse price has no digit limit), and nothing here divides in it.
EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_SHOWN: Final = Context(prec=12)
_BPS: Final = Decimal(10_000)


def adverse(side: Side, arrival: Decimal, price: Decimal) -> Decimal:
    """How much worse ``price`` is than ``arrival`` for ``side`` (negative: better)."""
    return EXACT.subtract(price, arrival) if side == "buy" else EXACT.subtract(arrival, price)


def bps(side: Side, arrival: Decimal, price: Decimal) -> Decimal:
    """``price`` against ``arrival`` in basis points, positive when worse (12 digits)."""
    return _shown_bps(adverse(side, arrival, price), arrival)


def _beyond(worse: Decimal, base: Decimal, most: int | None) -> bool:
    """Whether ``worse`` is more than ``most`` bps of ``base``."""
    return most is not None and EXACT.multiply(worse, _BPS) > EXACT.multiply(Decimal(most),
                                                                             base)


def _shown_bps(worse: Decimal, base: Decimal) -> Decimal:
    return _plain(_SHOWN.divide(EXACT.multiply(worse, _BPS), base).normalize(_SHOWN))


def _plain(shown: Decimal) -> Decimal:
    """``shown`` as "100", not "1E+2": an exponent only where its digits cannot say it."""
    exponent = shown.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0 and shown.adjusted() < 28:
        return shown.quantize(Decimal(1))
    return shown


def breach(record: ScheduleRecord, child: uuid.UUID, price: Decimal, notional: Decimal,
           executed: Decimal) -> SlippageRecord | None:
    """The breach of ``record``'s tolerance by child ``child`` filled at ``price`` (its
    average), the parent's children having filled ``executed`` for ``notional`` with
    it; None when within both."""
    terms, arrival = record.slippage, record.arrival
    if terms is None or arrival is None or not executed:
        return None
    side = record.side
    order_worse = adverse(side, arrival, price)
    fair = EXACT.multiply(arrival, executed)
    parent_worse = adverse(side, fair, notional)
    breached = [name for name, worse, base, most in (
        ("order", order_worse, arrival, terms.max_order_bps),
        ("parent", parent_worse, fair, terms.max_parent_bps)) if _beyond(worse, base, most)]
    if not breached:
        return None
    average = _plain((notional / executed).normalize())
    return SlippageRecord(record.intent_id, child, record.rule or "", arrival, price,
                          _shown_bps(order_worse, arrival), average,
                          _shown_bps(parent_worse, fair), ",".join(breached), terms.response)


def stretch(dues: Any, first: int, factor: int) -> int | None:
    """Make what is left of a schedule from slice ``first`` on last ``factor`` times as
    long, measured from the due time of the slice before it (the one just sent):
    ``dues`` (an array of due times) changes in place. The next slice's new due time
    (None: no slice is left)."""
    if first >= len(dues):
        return None
    base = dues[first - 1] if first > 0 else dues[0]
    for index in range(first, len(dues)):
        # Never past the ledger's range of times: such a slice is due at its end.
        dues[index] = min(MAX_TIME, base + (dues[index] - base) * factor)
    return int(dues[first])


def halt_reason(found: SlippageRecord) -> str:
    """The reason a ``halt`` response records for trading going to HALTED."""
    return (f"slippage breach ({found.breached}) by child {found.child} of {found.intent_id}: "
            f"{found.bps} bps, the parent {found.parent_bps} bps, against arrival "
            f"{found.arrival}")
