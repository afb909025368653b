"""Execute, the pure half: what an order's venue state means as an outcome.

Reads ccxt's unified order structure (status, filled, average, cost, fees) and the
order record written before the order was sent; decides final or not, and builds
the one outcome of the intent: FILLED (the requested quantity), PARTIALLY_FILLED or
FAILED, with the quantities requested, sent and filled, the average price, fees and
slippage against the intent's reference price.

Fees: an order structure does not always carry the fees of all it filled (Binance's
order query carries none; its create reply carries those of the fills made at once).
:func:`own_fees` says how much of the fill the structure's fees cover, and
:func:`fees_of_trades` sums the venue's trades of the order when they are needed.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any, NamedTuple

from execd.model import reasons
from execd.model.messages import ExecutionOutcome, Fee, OrderRecord
from execd.model.reasons import Status
from execd.venues.ccxt.prepare import number

_BPS = Decimal(10_000)
_CENT = Decimal("0.01")
_ZERO = Decimal(0)
_ONE = Decimal(1)
# ccxt's unified order statuses that end an order.
FINAL = frozenset(("closed", "canceled", "cancelled", "expired", "rejected"))


def is_final(order: dict[str, Any]) -> bool:
    """Whether the venue will not change this order any more."""
    return order.get("status") in FINAL


def filled_of(order: dict[str, Any]) -> Decimal:
    """How much of the order has filled (base units); zero when the venue does not say."""
    return number(order.get("filled")) or _ZERO


def fees_of(order: dict[str, Any]) -> tuple[Fee, ...]:
    """The order's fees, summed per currency, in currency order."""
    listed = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
    totals: dict[str, Decimal] = {}
    for fee in listed:
        cost = number(fee.get("cost")) if isinstance(fee, dict) else None
        currency = fee.get("currency") if isinstance(fee, dict) else None
        if cost is not None and isinstance(currency, str):
            totals[currency] = totals.get(currency, _ZERO) + cost
    return tuple(Fee(totals[c], c) for c in sorted(totals))


class KnownFees(NamedTuple):
    """Fees summed per currency, and how much of the order's fill (base units) they cover."""

    fees: tuple[Fee, ...]
    covered: Decimal


def _summed(totals: dict[str, Decimal]) -> tuple[Fee, ...]:
    return tuple(Fee(_tidy(totals[c]), c) for c in sorted(totals))


def _tidy(value: Decimal) -> Decimal:
    # As prepare.number prints a venue's number: no trailing zeros, no exponent.
    return value.quantize(_ONE) if value == value.to_integral_value() else value.normalize()


def own_fees(order: dict[str, Any]) -> KnownFees:
    """The fees the order structure carries, and how much of its fill they are for.

    A structure with trades (Binance's FULL create reply lists its fills) covers what
    those trades add up to; one without trades but with fees (a venue that reports
    the order's cumulative fee) covers all it filled; one with neither covers nothing.
    """
    fees = fees_of(order)
    trades = order.get("trades")
    if isinstance(trades, list) and trades:
        return KnownFees(fees, fees_of_trades(trades).covered)
    return KnownFees(fees, filled_of(order) if fees else _ZERO)


def fees_of_trades(trades: Any) -> KnownFees:
    """ccxt trade structures of one order: their fees per currency and their total amount.

    A trade listed twice (same id) counts once; anything that is not a trade
    structure counts as nothing, so a short or odd reply shows as not covering the
    fill rather than failing.
    """
    totals: dict[str, Decimal] = {}
    covered = _ZERO
    seen: set[str] = set()
    for trade in trades if isinstance(trades, list) else ():
        if not isinstance(trade, dict):
            continue
        trade_id = trade.get("id")
        if trade_id is not None:
            if str(trade_id) in seen:
                continue
            seen.add(str(trade_id))
        covered += number(trade.get("amount")) or _ZERO
        listed = trade.get("fees") or ([trade["fee"]] if trade.get("fee") else [])
        for fee in listed if isinstance(listed, list) else ():
            cost = number(fee.get("cost")) if isinstance(fee, dict) else None
            currency = fee.get("currency") if isinstance(fee, dict) else None
            if cost is not None and isinstance(currency, str):
                totals[currency] = totals.get(currency, _ZERO) + cost
    return KnownFees(_summed(totals), covered)


def fees_so_far(own: KnownFees, read: KnownFees | None) -> KnownFees:
    """Of the structure's own fees and those read from trades, the ones that cover more."""
    return read if read is not None and read.covered >= own.covered else own


def held_change(symbol: str, side: str, filled: Decimal, fees: tuple[Fee, ...]) -> Decimal:
    """How far a fill moved the position the account holds in ``symbol``'s base asset.

    A spot venue may take its fee in the base asset (Binance does on buys unless BNB
    pays): a buy then delivers less than it filled, and a sell costs more. Booking
    the gross fill would leave a position the account cannot sell, so a Safety Sell
    of it would be refused for insufficient funds. Contracts (``BASE/QUOTE:SETTLE``)
    hold no base asset: their fill is the position change.
    """
    base, slash, rest = symbol.partition("/")
    if not slash or ":" in rest:
        return filled
    fee = sum((f.cost for f in fees if f.currency == base), _ZERO)
    return filled - fee if side == "buy" else filled + fee


def slippage_bps(side: str, average: Decimal | None, reference: Decimal | None
                 ) -> Decimal | None:
    """Average price against the reference, in bps: positive is worse for ``side``."""
    if average is None or reference is None or not reference:
        return None
    move = (average - reference) if side == "buy" else (reference - average)
    return (move / reference * _BPS).quantize(_CENT)


def outcome_of_order(record: OrderRecord, order: dict[str, Any], *, execution_id: str,
                     time: int, cancelled_by_us: bool = False,
                     wall_time: int | None = None, fees: tuple[Fee, ...] | None = None,
                     fees_complete: bool = True) -> ExecutionOutcome:
    """The outcome of a final order (``is_final(order)``).

    ``time`` is the intent's logical time; ``wall_time`` when the outcome was known.
    ``fees``: the order's fees when read elsewhere (its trades); by default those
    its structure carries. ``fees_complete``: false when they may be short.
    """
    filled = filled_of(order)
    average = number(order.get("average"))
    if average is None and filled:
        cost = number(order.get("cost"))
        average = cost / filled if cost is not None else None
    status: Status
    reason: str | None = None
    detail: str | None = None
    state = order.get("status")
    requested, amount = record.requested_quantity, record.amount
    if filled >= requested:
        status = "FILLED"
    elif filled >= amount:
        # The order did all it asked for, but it asked for less than the intent:
        # FILLED means the requested quantity (README, Outcomes), so this is not a fill.
        status, reason = "PARTIALLY_FILLED", reasons.EXECUTION_LOT_ROUNDED
        detail = (f"filled={filled} of requested={requested}: the order was for "
                  f"amount={amount} (the requested quantity rounded down to the lot size) "
                  f"and filled in full")
    else:
        why = ("cancelled by execd after order_timeout_ms" if cancelled_by_us
               else f"venue status {state}")
        if filled > 0:
            status, reason = "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED
        elif state == "rejected":
            status, reason = "FAILED", reasons.EXECUTION_REJECTED
        else:
            status, reason = "FAILED", reasons.EXECUTION_EXPIRED
        asked = f" (requested={requested})" if requested != amount else ""
        detail = f"filled={filled} of amount={amount}{asked} ({why})"
    venue_id = order.get("id")
    return _outcome(record, execution_id, time, status, filled, reason, detail,
                    average=average, venue_order_id=str(venue_id) if venue_id else None,
                    fees=fees_of(order) if fees is None else fees,
                    slippage=slippage_bps(record.side, average, record.reference_price),
                    wall_time=wall_time, fees_complete=fees_complete)


def not_executed(record: OrderRecord, *, execution_id: str, time: int, reason: str,
                 detail: str, wall_time: int | None = None) -> ExecutionOutcome:
    """The FAILED outcome of an order that did not execute at all."""
    return _outcome(record, execution_id, time, "FAILED", _ZERO, reason, detail,
                    wall_time=wall_time)


# Wide enough that a base fee at the average price is exact.
_WIDE = Context(prec=80)


def fees_in_quote(symbol: str, fees: tuple[Fee, ...], average: Decimal | None
                  ) -> Decimal | None:
    """``fees`` in ``symbol``'s quote currency (``BTC/USDT``, ``BTC/USDT:USDT``: USDT):
    a quote fee as it is, a base fee at ``average``; None when there are none, or one
    is in a third currency (its price is not the order's to know)."""
    if not fees:
        return None
    base, _, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    total = _ZERO
    for fee in fees:
        if fee.currency == quote and quote:
            total = _WIDE.add(total, fee.cost)
        elif fee.currency == base and average is not None:
            total = _WIDE.add(total, _WIDE.multiply(fee.cost, average))
        else:
            return None
    return total


def _outcome(record: OrderRecord, execution_id: str, time: int, status: Status,
             filled: Decimal, reason: str | None, detail: str | None, *,
             average: Decimal | None = None, venue_order_id: str | None = None,
             fees: tuple[Fee, ...] = (), slippage: Decimal | None = None,
             wall_time: int | None = None, fees_complete: bool = True) -> ExecutionOutcome:
    return ExecutionOutcome(
        execution_id=execution_id, intent_id=record.intent_id, status=status,
        filled_quantity=filled, logical_time=time, plane="live", venue=record.venue,
        symbol=record.symbol, side=record.side, requested_quantity=record.requested_quantity,
        average_price=average, reason=reason, detail=detail, source=record.source,
        intent=record.intent,
        client_order_id=record.client_order_id, venue_order_id=venue_order_id, fees=fees,
        slippage_bps=slippage, sent_quantity=record.amount, wall_time=wall_time,
        parent=record.parent,
        fees_complete=fees_complete, plan=record.plan, sizing=record.sizing,
        fees_quote=fees_in_quote(record.symbol, fees, average),
    )
