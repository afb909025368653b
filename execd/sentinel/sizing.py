"""Sizing (README, "Sizing"): the absolute quantity of an intent that gives a fraction.

Pure. Seed 001's portfolio manager says "add half", "trim a quarter", "exit": an
intent gives ``size_frac`` of its ``position`` or of an ``allocation`` instead of a
quantity, and an EXIT without either means the whole position. The sentinel resolves
it here, before any other check, so every check after it (and every venue) sees an
absolute quantity, and the outcome says what it was resolved from
(:class:`~execd.model.messages.Sizing`).

The position is the one the Risk Sentinel keeps: filled, plus pending buys, minus
pending sells (what it will be once every order in flight fills, as a Safety Sell
counts it), so two "trim half" intents in a row trim a half and then a quarter.
Every venue here is spot: a position is a long, and a fraction of a short is not
sized (an EXIT of none is ``SIZE_ZERO``).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation

import msgspec

from execd.model import reasons
from execd.model.messages import OrderIntent, Sizing, normal
from execd.model.refusal import Refusal
from execd.sentinel.book import Position

_ZERO, _ONE = Decimal(0), Decimal(1)
# A quantity sized from a fraction is cut to this many decimal places: below any lot
# a venue has, and what the sentinel's quantity range check accepts.
PLACES = Decimal("1e-18")
# Wide enough for any product or quotient of the numbers the sentinel accepts
# (quantities and prices are 1e-18 .. 1e18 with at most 40 digits; allocations too),
# so the rounding below is the only one.
_EXACT = Context(prec=120, Emin=-999_999, Emax=999_999, rounding=ROUND_DOWN)
_EXITS = frozenset(("EXIT", "EMERGENCY_EXIT"))
# Actions that size from the book's allocation when the intent names a book (seed 001:
# "add half of the allocation"); a reduction sizes from the position.
_GROWS = frozenset(("ADD", "RECLAIM"))


def _plain(value: Decimal) -> Decimal:
    """``value`` cut to :data:`PLACES`, without trailing zeros or an exponent."""
    cut = value.quantize(PLACES, rounding=ROUND_DOWN, context=_EXACT)
    if cut == cut.to_integral_value():
        return cut.quantize(_ONE, context=_EXACT)
    return cut.normalize(_EXACT)


def expected(position: Position) -> Decimal:
    """The position once every order in flight fills."""
    return position.filled + position.pending_buy - position.pending_sell


def held_now(position: Position) -> Decimal:
    """What a sell may take now: filled, less the sells in flight (buys in flight may
    not fill, so they are not there to sell)."""
    return max(position.filled - position.pending_sell, _ZERO)


_SELLS = frozenset(("TRIM", "EXIT", "EMERGENCY_EXIT"))
# Within 1e-18 .. 1e15 by adjusted exponent, as every number the sentinel takes
# (sentinel/core.py): below 1e16.
_LEAST, _BEYOND = Decimal("1e-18"), Decimal("1e16")


class Sized(msgspec.Struct, frozen=True, gc=False):
    """An intent with its quantity, and how it was found (None: the line gave it)."""

    intent: OrderIntent
    sizing: Sizing | None = None


def size(intent: OrderIntent, position: Position | None,
         allocations: Mapping[str, Decimal] | None, price: Decimal | None) -> Sized | Refusal:
    """``intent`` with an absolute quantity and its upper-case action; or why not.

    ``position``: the Risk Sentinel's for the intent's venue and symbol (None: none
    known, as for an intent that names a route); ``allocations``: the lakehouse's over
    the config's (None: the lakehouse's file cannot be read, so none is known);
    ``price``: what the Risk Sentinel prices the intent at (the lakehouse's, else its
    own), for a fraction of an allocation.
    """
    intent = normal(intent)
    action, frac, quantity = intent.action, intent.size_frac, intent.quantity
    if quantity is not None:
        if frac is not None or intent.size_of is not None or intent.allocation is not None:
            return Refusal(reasons.SIZE_CONFLICT, "quantity and size_frac/size_of/allocation "
                           "both given: say the size one way")
        return Sized(intent)
    if action == "HOLD":
        return Refusal(reasons.INTENT_HOLD, "action=HOLD: nothing to execute", "SKIPPED")
    if frac is None:
        if intent.size_of is not None or intent.allocation is not None:
            return Refusal(reasons.SIZE_MISSING, "size_of/allocation without size_frac")
        if action not in _EXITS:
            return Refusal(reasons.SIZE_MISSING, f"no quantity and no size_frac "
                           f"(only EXIT and EMERGENCY_EXIT may leave both out; "
                           f"action={intent.action})")
        return _exit(intent, position)
    try:
        usual = frac.is_finite() and _ZERO < frac <= _ONE
    except InvalidOperation:
        usual = False
    if not usual:
        return Refusal(reasons.SIZE_FRAC_OUT_OF_RANGE, f"size_frac={frac} must be > 0 and <= 1")
    basis = intent.size_of or ("allocation" if intent.allocation is not None or (
        action in _GROWS and intent.book_id is not None) else "position")
    if basis == "allocation":
        return _of_allocation(intent, frac, position, allocations, price)
    if intent.allocation is not None:
        return Refusal(reasons.SIZE_CONFLICT, "allocation given with size_of=position")
    if position is None:
        return Refusal(reasons.SIZE_POSITION_UNKNOWN, "size_of=position needs a venue "
                       "(an intent that names a route has no position to size from)")
    held = expected(position)
    if held <= _ZERO:
        return Refusal(reasons.SIZE_ZERO, f"size_frac={frac} of position={held}: "
                       "nothing to size from", "SKIPPED")
    quantity = _plain(_EXACT.multiply(frac, held))
    if _sells(intent):  # never more than is held now
        quantity = min(quantity, held_now(position))
    return _sized(intent, Sizing("position", frac, held, quantity))


def _sells(intent: OrderIntent) -> bool:
    return intent.action in _SELLS or (intent.action is None and intent.side == "sell")


def _exit(intent: OrderIntent, position: Position | None) -> Sized | Refusal:
    if position is None:
        return Refusal(reasons.SIZE_POSITION_UNKNOWN, f"action={intent.action} without a "
                       "quantity needs a venue (an intent that names a route has no position)")
    # What is held now: a buy in flight (a schedule's hold) may never fill.
    held = held_now(position)
    if held <= _ZERO:
        return Refusal(reasons.SIZE_ZERO, f"action={intent.action} of position="
                       f"{position.filled} (less {position.pending_sell} being sold): "
                       "nothing to exit", "SKIPPED")
    return _sized(intent, Sizing("exit", _ONE, held, held))


def _of_allocation(intent: OrderIntent, frac: Decimal, position: Position | None,
                   allocations: Mapping[str, Decimal] | None, price: Decimal | None
                   ) -> Sized | Refusal:
    name = intent.allocation or (f"book:{intent.book_id}" if intent.book_id else None)
    if name is None:
        return Refusal(reasons.SIZE_ALLOCATION_UNKNOWN,
                       "size_of=allocation needs allocation or book_id")
    if allocations is None:
        return Refusal(reasons.SIZE_ALLOCATION_UNKNOWN, f"allocation {name!r}: "
                       "portfolio/allocations.json cannot be read (the context record's "
                       "problems say why)")
    amount = allocations.get(name)
    if amount is None:
        known = ", ".join(sorted(allocations)[:8]) or "none"
        return Refusal(reasons.SIZE_ALLOCATION_UNKNOWN,
                       f"allocation {name!r} is not in portfolio/allocations.json or "
                       f"[allocations] (known: {known})")
    try:
        usual = price is not None and _LEAST <= price < _BEYOND
    except InvalidOperation:
        usual = False
    if price is None or not usual:
        return Refusal(reasons.SIZE_PRICE_UNKNOWN, f"size_frac of allocation {name!r} needs "
                       "a price within 1e-18 .. 1e15: the lakehouse's prices, "
                       f"reference_price or limit_price (found {price})")
    base = _EXACT.divide(amount, price)
    quantity = _plain(_EXACT.multiply(frac, base))
    if _sells(intent):
        if position is None:
            return Refusal(reasons.SIZE_POSITION_UNKNOWN, "a sell sized from an allocation "
                           "needs a venue: it never sells more than is held there")
        # A reduction never sells more than is held (nor goes short on spot).
        quantity = min(quantity, held_now(position))
    if quantity <= _ZERO:
        return Refusal(reasons.SIZE_ZERO, f"size_frac={frac} of allocation {name!r} "
                       f"({amount} at {price}) is below 1e-18, or nothing is held",
                       "SKIPPED")
    return _sized(intent, Sizing("allocation", frac, _plain(base), quantity, name, price))


def _sized(intent: OrderIntent, sizing: Sizing) -> Sized | Refusal:
    if sizing.quantity <= _ZERO:
        return Refusal(reasons.SIZE_ZERO, f"size_frac={sizing.frac} of {sizing.base} is "
                       "below 1e-18", "SKIPPED")
    return Sized(msgspec.structs.replace(intent, quantity=sizing.quantity), sizing)
