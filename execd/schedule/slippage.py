"""A schedule's slippage against its arrival price, and what a breach changes. Pure.

A parent planned under a policy rule with a ``slippage`` tolerance keeps it, and its
arrival price, in its ``schedule`` record (:class:`~execd.model.messages.Slippage`).
Each child that fills is measured (:func:`breach`): its average price against the
arrival price, and the parent's average so far, in basis points, positive when worse
for the side (a buy above, a sell below). The scheduler core asks this on every
settlement, live and in the fold alike, so a restart finds the same breaches and the
same responses; the sentinel records each one (a ``slippage`` record).

The comparisons are exact (``adverse * 10000 > max_bps * arrival``, in a context wide
enough for any two 24-digit numbers); only the recorded bps are rounded, to 12
significant digits.
"""

from __future__ import annotations

import uuid
from decimal import Context, Decimal
from typing import Any, Final

from execd.model.messages import MAX_TIME, ScheduleRecord, Side, SlippageRecord

_EXACT: Final = Context(prec=120)
_SHOWN: Final = Context(prec=12)
_BPS: Final = Decimal(10_000)


def adverse(side: Side, arrival: Decimal, price: Decimal) -> Decimal:
    """How much worse ``price`` is than ``arrival`` for ``side`` (negative: better)."""
    return _EXACT.subtract(price, arrival) if side == "buy" else _EXACT.subtract(arrival, price)


def bps(side: Side, arrival: Decimal, price: Decimal) -> Decimal:
    """``price`` against ``arrival`` in basis points, positive when worse (12 digits)."""
    shown = _SHOWN.divide(_EXACT.multiply(adverse(side, arrival, price), _BPS),
                          arrival).normalize(_SHOWN)
    # "100", not "1E+2": an exponent only where 12 digits cannot say it plainly.
    exponent = shown.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0 and shown.adjusted() < 12:
        shown = shown.quantize(Decimal(1))
    return shown


def _beyond(side: Side, arrival: Decimal, price: Decimal, most: int | None) -> bool:
    if most is None:
        return False
    return _EXACT.multiply(adverse(side, arrival, price), _BPS) > _EXACT.multiply(
        Decimal(most), arrival)


def breach(record: ScheduleRecord, child: uuid.UUID, price: Decimal,
           average: Decimal) -> SlippageRecord | None:
    """The breach of ``record``'s tolerance by child ``child`` filled at ``price`` (its
    average), the parent's average being ``average`` with it; None when within both."""
    terms, arrival = record.slippage, record.arrival
    if terms is None or arrival is None:
        return None
    side = record.side
    breached = [name for name, at, most in (("order", price, terms.max_order_bps),
                                            ("parent", average, terms.max_parent_bps))
                if _beyond(side, arrival, at, most)]
    if not breached:
        return None
    return SlippageRecord(record.intent_id, child, record.rule or "", arrival, price,
                          bps(side, arrival, price), average, bps(side, arrival, average),
                          ",".join(breached), terms.response)


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
