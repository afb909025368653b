"""Prepare: turn an accepted intent into the order a live venue will get.

Pure: a function of the intent, the venue's market rules (from ccxt's
``load_markets``, read once at start-up) and the venue's settings. The result is
either an :class:`OrderPlan` or the outcome that replaces the order (a skip below
the floor, or a refusal the venue would make anyway), so nothing the venue would
refuse on its own rules is ever sent.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from msgspec import Struct

from execd.model import reasons
from execd.model.messages import Accepted, OrderIntent, OrderType, Plan
from execd.model.reasons import Status
from execd.policy.orders import constraints_of, leverage_of, order_type_of, plan_terms

_BPS = Decimal(10_000)
_ONE = Decimal(1)


class MarketRules(Struct, frozen=True):
    """What a venue allows for one symbol, in the symbol's own units.

    ``amount_step`` and ``price_tick`` are the lot size and tick size; None where
    the venue publishes none. Limits are None where the venue sets none.
    """

    symbol: str
    active: bool
    amount_step: Decimal | None
    price_tick: Decimal | None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_cost: Decimal | None = None
    max_cost: Decimal | None = None
    post_only: bool = False
    reduce_only: bool = False
    # The times in force the venue honours besides GTC (ccxt's features: IOC, FOK, ...).
    times_in_force: frozenset[str] = frozenset()


class OrderPlan(Struct, frozen=True):
    """The order to send: rounded amount, rounded price (limits only) and flags, and
    what shaped it (:class:`~execd.model.messages.Plan`'s ``constraints``)."""

    type: OrderType
    amount: Decimal
    price: Decimal | None
    post_only: bool
    reduce_only: bool
    time_in_force: str | None = None
    constraints: tuple[str, ...] = ()

    def plan(self, intent: OrderIntent) -> Plan:
        """The ledger's plan of this order (the outcome and order record carry it)."""
        return Plan(self.type, self.amount, intent.action, plan_terms(intent, self.type)[0],
                    self.price, self.constraints, max_leverage=leverage_of(intent))


# What replaces an order that is not sent: status, reason code, detail.
NotSent = tuple[Status, str, str]


def number(value: Any) -> Decimal | None:
    """A ccxt number (float, str or None) as a Decimal; None when absent or not finite.

    str() keeps a float's shortest exact form; 50000.0 then reads as 50000 and
    0.0100 as 0.01, so the ledger shows values rather than float spellings.
    """
    if value is None:
        return None
    result = Decimal(str(value))
    if not result.is_finite():
        return None
    return result.quantize(_ONE) if result == result.to_integral_value() else result.normalize()


def _decimal(value: Any) -> Decimal | None:
    result = number(value)
    return result if result is not None and result > 0 else None


def rules_from_market(market: dict[str, Any], *, tick_precision: bool,
                      post_only: bool, reduce_only: bool,
                      times_in_force: frozenset[str] = frozenset()) -> MarketRules:
    """MarketRules from one ccxt market structure.

    ``tick_precision``: the exchange's precisionMode is TICK_SIZE (precision values
    are step sizes) rather than DECIMAL_PLACES (precision values are digit counts).
    """
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}

    def step(value: Any) -> Decimal | None:
        if value is None:
            return None
        if tick_precision:
            return _decimal(value)
        return Decimal(1).scaleb(-int(value))

    def limit(group: str, end: str) -> Decimal | None:
        return _decimal((limits.get(group) or {}).get(end))

    return MarketRules(
        symbol=str(market["symbol"]),
        active=market.get("active") is not False,
        amount_step=step(precision.get("amount")),
        price_tick=step(precision.get("price")),
        min_amount=limit("amount", "min"), max_amount=limit("amount", "max"),
        min_price=limit("price", "min"), max_price=limit("price", "max"),
        min_cost=limit("cost", "min"), max_cost=limit("cost", "max"),
        post_only=post_only, reduce_only=reduce_only, times_in_force=times_in_force,
    )


def round_down(value: Decimal, step: Decimal | None) -> Decimal:
    """``value`` truncated to a multiple of ``step`` (lot size: never more than asked)."""
    if step is None:
        return value
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def round_price(price: Decimal, tick: Decimal | None, side: str) -> Decimal:
    """``price`` on the tick grid, rounded to the side that never pays more than asked.

    A buy limit rounds down and a sell limit rounds up, so rounding can only
    tighten the intent's slippage bound, never loosen it.
    """
    if tick is None:
        return price
    mode = ROUND_FLOOR if side == "buy" else ROUND_CEILING
    return (price / tick).to_integral_value(mode) * tick


def prepare(item: Accepted, rules: MarketRules | None, default_slippage_bps: int
            ) -> OrderPlan | NotSent:
    """The order for ``item`` on a venue with ``rules``, or what replaces it."""
    intent = item.intent
    if rules is None:
        return ("REJECTED", reasons.VENUE_SYMBOL_UNKNOWN,
                f"symbol={intent.symbol} is not listed on venue {intent.venue}")
    if not rules.active:
        return ("SKIPPED", reasons.VENUE_MARKET_INACTIVE,
                f"symbol={intent.symbol}: the market is not active on venue {intent.venue}")
    constraints = intent.constraints
    reduce_only = constraints is not None and constraints.reduce_only
    side = item.side

    # Order type from urgency (README, The live plane): critical takes the market; otherwise a
    # limit at the reference price moved by the slippage the intent allows.
    order_type = order_type_of(intent)
    price: Decimal | None = None
    reference = intent.reference_price
    if intent.order_type == "limit":
        price = intent.limit_price
    elif order_type == "limit":
        assert reference is not None
        bps = (constraints.max_slippage_bps if constraints is not None
               and constraints.max_slippage_bps is not None else default_slippage_bps)
        move = reference * bps / _BPS
        price = reference + move if side == "buy" else reference - move

    terms = _terms(intent, order_type, rules)
    if isinstance(terms[0], str):
        return terms
    post_only, tif = terms
    if reduce_only and not rules.reduce_only:
        return ("REJECTED", reasons.VENUE_CONSTRAINT_UNSUPPORTED,
                f"reduce_only: venue {intent.venue} does not support reduce-only orders "
                f"for {intent.symbol}")

    amount = round_down(intent.absolute, rules.amount_step)
    if amount <= 0 or (rules.min_amount is not None and amount < rules.min_amount):
        return ("SKIPPED", reasons.BELOW_FLOOR,
                f"amount={amount} (quantity={intent.quantity} rounded down to "
                f"step={rules.amount_step}) < min_amount={rules.min_amount or rules.amount_step}")
    if rules.max_amount is not None and amount > rules.max_amount:
        return ("REJECTED", reasons.VENUE_LIMIT_EXCEEDED,
                f"amount={amount} > max_amount={rules.max_amount}")
    unticked = price
    if price is not None:
        price = round_price(price, rules.price_tick, side)
        low, high = rules.min_price, rules.max_price
        if price <= 0 or (low is not None and price < low) or (high is not None and price > high):
            return ("REJECTED", reasons.VENUE_LIMIT_EXCEEDED,
                    f"price={price} (rounded to tick={rules.price_tick}) outside "
                    f"min_price={low} .. max_price={high}")

    # Notional on the rounded values, at the order's price (a market order is
    # valued at the reference price; without one, the venue alone can judge).
    valued_at = price if price is not None else reference
    if valued_at is not None:
        notional = amount * valued_at
        if rules.min_cost is not None and notional < rules.min_cost:
            return ("SKIPPED", reasons.BELOW_FLOOR,
                    f"notional={notional} (amount={amount} x price={valued_at}) < "
                    f"min_notional={rules.min_cost}")
        if rules.max_cost is not None and notional > rules.max_cost:
            return ("REJECTED", reasons.VENUE_LIMIT_EXCEEDED,
                    f"notional={notional} (amount={amount} x price={valued_at}) > "
                    f"max_notional={rules.max_cost}")
    shaped = constraints_of(
        intent, item.rule, from_reference=order_type == "limit" and intent.order_type != "limit",
        rounded=amount != intent.quantity, ticked=price != unticked, post_only=post_only,
        reduce_only=reduce_only)
    return OrderPlan(order_type, amount, price, post_only, reduce_only, tif, shaped)


def time_in_force_refusal(intent: OrderIntent, rules: MarketRules) -> NotSent | None:
    """Why the venue cannot honour ``intent``'s time in force (as :func:`prepare` refuses
    each of its orders), or None: asked of a schedule's parent at admission."""
    if intent.execution is None or intent.execution.time_in_force is None:
        return None
    terms = _terms(intent, order_type_of(intent), rules)
    return terms if isinstance(terms[0], str) else None


def _terms(intent: OrderIntent, order_type: OrderType, rules: MarketRules
           ) -> tuple[bool, str | None] | NotSent:
    """(post-only, the ``timeInForce`` to send) for an order of ``order_type``, or the
    refusal of what the venue cannot honour. ``PO`` is post-only."""
    constraints = intent.constraints
    post_only = constraints is not None and constraints.post_only
    tif = intent.execution.time_in_force if intent.execution is not None else None
    if tif == "PO":
        post_only, tif = True, None
    sent = _time_in_force(tif, order_type, rules, intent.venue)
    if isinstance(sent, tuple):
        return sent
    if post_only and (order_type != "limit" or not rules.post_only):
        why = ("a market order cannot be post-only" if order_type != "limit"
               else f"venue {intent.venue} does not support post-only orders")
        return ("REJECTED", reasons.VENUE_CONSTRAINT_UNSUPPORTED, f"post_only: {why}")
    return post_only, sent


def _time_in_force(tif: str | None, order_type: OrderType, rules: MarketRules,
                   venue: str) -> str | NotSent | None:
    """The ``timeInForce`` to send (None: the venue's default, GTC for a limit), or the
    refusal of one the venue (or ccxt) cannot honour for this order."""
    if tif is None or tif == "GTC":
        return None
    if order_type == "market":
        if tif == "IOC":
            return None  # a market order takes what it can at once: IOC by nature
        return ("REJECTED", reasons.EXECUTION_TIME_IN_FORCE_UNSUPPORTED,
                f"time_in_force={tif}: a market order takes IOC or GTC only")
    if tif == "GTD" or tif not in rules.times_in_force:
        why = ("ccxt passes no good-till-date" if tif == "GTD"
               else f"venue {venue} does not support it (supported: "
                    f"{', '.join(['GTC', *sorted(rules.times_in_force)])})")
        return ("REJECTED", reasons.EXECUTION_TIME_IN_FORCE_UNSUPPORTED,
                f"time_in_force={tif}: {why}")
    return tif
