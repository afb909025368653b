"""The Risk Sentinel's checks: one small pure function each, run in one documented order.

Each check reads what it needs and returns None (pass) or a
:class:`~execd.model.refusal.Refusal` whose detail names the numbers
(``notional=125000 > max_order_notional=100000``). None of them changes anything:
committing an accepted intent (counting it against the rate, adding it to the book) is
:meth:`execd.sentinel.risk.Risk.admit`'s separate last step. The first refusal wins, so
the order is part of the behaviour (README, "The Risk Sentinel"); cheapest and most
absolute first:

``GATES`` read only the intent, the rules and the lakehouse context. They run before
the intent's (venue, symbol) slot is looked up, because a lookup opens a (flat)
position in the book, and an intent that fails a gate must leave no trace there.

1. :func:`trading_halted` — ``TRADING_HALTED``
2. :func:`governance` — ``GOVERNANCE_PLAN_MISSING`` / ``_UNKNOWN`` / ``_NOT_COMMITTED``
3. :func:`registered_run` — ``PROVENANCE_RUN_UNREGISTERED``

``CHECKS`` read a :class:`Candidate`: the intent with its slot, the rules, the
context and the time.

4. :func:`signature` — ``PROVENANCE_SIGNATURE_MISSING`` / ``_INVALID``
5. :func:`venue_cooldown` — ``RISK_VENUE_COOLDOWN``
6. :func:`trading_reducing` — ``TRADING_REDUCING``
7. :func:`reduce_only` — ``RISK_REDUCE_ONLY_VIOLATION``
8. :func:`price_band` — ``RISK_PRICE_BAND_EXCEEDED`` / ``RISK_PRICE_UNKNOWN``
9. :func:`regime_parity` — ``RISK_REGIME_OVERRIDE_REQUIRED``
10. :func:`priced` — ``RISK_PRICE_UNKNOWN`` (notional limits need a price)
11. :func:`order_notional` — ``RISK_NOTIONAL_EXCEEDED``
12. :func:`asset_exposure` — ``RISK_ASSET_EXPOSURE_EXCEEDED``
13. :func:`leverage` — ``RISK_LEVERAGE_EXCEEDED`` / ``RISK_PRICE_UNKNOWN``
14. :func:`order_rate` — ``RISK_ORDER_RATE_EXCEEDED``

Each table entry pairs a check with when it is *needed*: a test of the rules, the
context and the slot only, which is False only where the check could not refuse anything.
:func:`gates_for` and :func:`checks_for` keep the needed ones, in table order, and
:class:`~execd.sentinel.risk.Risk` keeps them per slot until the rules, the context or
the config change, so an intent pays only for the checks that can refuse it.

A new check is a function here and a place in one of the two tables (with when it is
needed); tests/unit/sentinel/test_checks.py lists the order and fails until it is
updated.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from msgspec import Struct

from execd.model import reasons
from execd.model.messages import OrderIntent, Side, TradingState
from execd.model.refusal import Refusal
from execd.reader.context import LakehouseContext, Override
from execd.sentinel.book import Position, VenueBook
from execd.sentinel.limits import Limits
from execd.sentinel.signatures import verify
from execd.sentinel.slots import Slot, VenueRisk

_BPS = Decimal(10_000)
_AGGRESSIVE = frozenset(("high", "critical"))


class Rules(Struct, frozen=True, gc=False):
    """What the checks take from the config and the operator, as of one moment.

    Rebuilt by :class:`~execd.sentinel.risk.Risk` on a reload and on every change of
    the trading state, never changed in place.
    """

    state: TradingState = "ACTIVE"
    state_note: str = ""
    enforce_plans: bool = False
    require_plan: bool = False
    require_run: bool = True
    crisis: frozenset[str] = frozenset()
    # risk.signatures, as configured: named in the refusal of an unsigned intent.
    signatures: str = "live"
    key: bytes | None = None


class Candidate(Struct, frozen=True, gc=False):
    """One intent as the checks see it: with its slot, the rules, the context and ``now``.

    ``venue``, ``book``, ``position`` and ``limits`` are the parts of the intent's
    :class:`~execd.sentinel.slots.Slot`, one attribute away for the hot path.

    ``market`` is the lakehouse price of the symbol; ``price`` the one notional limits
    value the order at (the lakehouse price, else the intent's own: see
    :func:`own_price`); ``own_leverage`` the intent's ``constraints.max_leverage``.
    ``grown``: the worst-case position after this order when the order grows it and
    notional limits apply (see :meth:`~execd.sentinel.book.Position.grown`), else None;
    ``exposure`` is then ``grown x price``, computed once for the checks and the commit.
    """

    intent: OrderIntent
    intent_id: uuid.UUID
    side: Side
    raw: bytes
    now: int
    quantity: Decimal  # the intent's, sized: read once here, not per check
    rules: Rules
    context: LakehouseContext
    venue: VenueRisk
    book: VenueBook
    position: Position
    limits: Limits
    market: Decimal | None
    price: Decimal | None
    own_leverage: Decimal | None
    grown: Decimal | None
    exposure: Decimal | None


Gate = Callable[[Rules, LakehouseContext, OrderIntent], Refusal | None]
Check = Callable[[Candidate], Refusal | None]
GateNeeded = Callable[[Rules], bool]


def own_price(intent: OrderIntent) -> Decimal | None:
    """The intent's own price for valuing it: limit, else reference (what paper records).

    Used only when the lakehouse has no price for the symbol: the lakehouse price is
    the mark, so an intent's own prices cannot re-value what is already held.
    """
    return intent.limit_price if intent.limit_price is not None else intent.reference_price


def own_leverage(intent: OrderIntent) -> Decimal | None:
    """The intent's own leverage cap (``constraints.max_leverage``), if it sets one."""
    constraints = intent.constraints
    return constraints.max_leverage if constraints is not None else None


def candidate(intent: OrderIntent, intent_id: uuid.UUID, side: Side, raw: bytes, now: int,
              rules: Rules, context: LakehouseContext, slot: Slot) -> Candidate:
    """``intent`` as the checks see it on ``slot``: its prices and worst case worked out once.

    This runs for every intent that reaches a check, so :func:`own_price` and
    :func:`own_leverage` are written out here rather than called.
    """
    market = context.prices.get(intent.symbol)
    price = market
    if price is None:
        price = intent.limit_price
        if price is None:
            price = intent.reference_price
    constraints = intent.constraints
    leverage = constraints.max_leverage if constraints is not None else None
    position = slot.position
    quantity = intent.absolute
    grown = exposure = None
    if price is not None and (slot.limits.any_notional or leverage is not None):
        grown = position.grown(side, quantity, slot.at_once)
        if grown is not None:
            exposure = grown * price
    return Candidate(intent, intent_id, side, raw, now, quantity, rules, context, slot.venue,
                     slot.book, position, slot.limits, market, price, leverage, grown, exposure)


# ------------------------------------------------------------------ gates


def trading_halted(rules: Rules, context: LakehouseContext, intent: OrderIntent
                   ) -> Refusal | None:
    """HALTED refuses everything (Safety Sell does not come through here)."""
    if rules.state == "HALTED":
        return Refusal(reasons.TRADING_HALTED, f"trading state is HALTED ({rules.state_note})")
    return None


def governance(rules: Rules, context: LakehouseContext, intent: OrderIntent) -> Refusal | None:
    """With governance enforced, an intent runs only under a COMMITTED plan."""
    if not rules.enforce_plans:
        return None
    plan_id = intent.plan_id
    plans = context.plans
    if plan_id is None:
        if rules.require_plan:
            return Refusal(reasons.GOVERNANCE_PLAN_MISSING,
                           "governance.require_plan is set and the intent names no plan_id")
        return None
    state = plans.get(plan_id)
    if state is None:
        return Refusal(reasons.GOVERNANCE_PLAN_UNKNOWN,
                       f"plan_id={plan_id} is not in the plan ledger ({len(plans)} plans)")
    if state != "COMMITTED":
        return Refusal(reasons.GOVERNANCE_PLAN_NOT_COMMITTED,
                       f"plan_id={plan_id} state={state}; needs COMMITTED")
    return None


def registered_run(rules: Rules, context: LakehouseContext, intent: OrderIntent
                   ) -> Refusal | None:
    """The intent's ``source_run`` must be in the audit registry (when required)."""
    if rules.require_run and intent.source_run not in context.runs:
        return Refusal(reasons.PROVENANCE_RUN_UNREGISTERED,
                       f"source_run={intent.source_run!r} is not in audit/runs.jsonl "
                       f"({len(context.runs)} runs registered)")
    return None


# ------------------------------------------------------------------ the order's checks


def signature(c: Candidate) -> Refusal | None:
    """A signature the venue requires must be there; one that is there must be valid."""
    intent = c.intent
    venue = c.venue
    if intent.signature is None:
        if not venue.signed:
            return None
        return Refusal(reasons.PROVENANCE_SIGNATURE_MISSING,
                       f"venue={intent.venue} is on the {venue.plane} plane and "
                       f"risk.signatures={c.rules.signatures!r}")
    key = c.rules.key
    if key is None:
        # Signed, but no key here to check it with, and not required: nothing to prove.
        return None
    if not verify(key, c.raw, intent.signature):
        return Refusal(reasons.PROVENANCE_SIGNATURE_INVALID,
                       "HMAC-SHA256 of the canonical intent does not match signature="
                       f"{intent.signature[:12]}…")
    return None


def venue_cooldown(c: Candidate) -> Refusal | None:
    """A venue cooling down after repeated failures takes no order."""
    cooldown = c.venue.cooldown
    if cooldown is not None:
        why = cooldown.refusal(c.now)
        if why is not None:
            return Refusal(reasons.RISK_VENUE_COOLDOWN, f"venue={c.intent.venue} {why}")
    return None


def _not_only_shrinking(c: Candidate) -> str:
    position = c.position
    return (f"{c.side} {c.intent.quantity} would not only shrink position={position.filled} "
            f"(pending_buy={position.pending_buy} pending_sell={position.pending_sell})")


def trading_reducing(c: Candidate) -> Refusal | None:
    """REDUCING accepts only what shrinks a position, whatever else fills."""
    if c.rules.state == "REDUCING" and not c.position.reduces(c.side, c.quantity):
        return Refusal(reasons.TRADING_REDUCING,
                       f"trading state is REDUCING: {_not_only_shrinking(c)}")
    return None


def reduce_only(c: Candidate) -> Refusal | None:
    """``constraints.reduce_only``: the order must fit inside what remains of the position."""
    constraints = c.intent.constraints
    if (constraints is not None and constraints.reduce_only
            and not c.position.reduces(c.side, c.quantity)):
        return Refusal(reasons.RISK_REDUCE_ONLY_VIOLATION, f"reduce_only: {_not_only_shrinking(c)}")
    return None


def price_band(c: Candidate) -> Refusal | None:
    """A limit price at most ``price_band_bps`` from the reference (intent's, else lakehouse)."""
    band = c.limits.band
    intent = c.intent
    if band is None or intent.order_type != "limit":
        return None
    limit = intent.limit_price
    assert limit is not None  # a limit order without one was refused already
    reference = intent.reference_price
    if reference is None:
        reference = c.market
    if reference is None:
        return Refusal(reasons.RISK_PRICE_UNKNOWN,
                       f"price_band_bps={band} needs a reference_price or a lakehouse price")
    if abs(limit - reference) * _BPS > band * reference:
        distance = abs(limit - reference) / reference * _BPS
        return Refusal(reasons.RISK_PRICE_BAND_EXCEEDED,
                       f"limit_price={limit} is {distance:.1f} bps from reference={reference} "
                       f"> price_band_bps={band}")
    return None


def needs_override(c: Candidate) -> bool:
    """In a crisis regime, an aggressive buy that adds to a long needs an operator's word."""
    return (c.context.regime in c.rules.crisis and c.side == "buy"
            and c.intent.urgency in _AGGRESSIVE
            and not c.position.reduces(c.side, c.quantity))


def regime_parity(c: Candidate) -> Refusal | None:
    """Refuses what :func:`needs_override` names, unless an override names its intent id."""
    if needs_override(c) and c.intent_id not in c.context.overrides:
        return Refusal(reasons.RISK_REGIME_OVERRIDE_REQUIRED,
                       f"regime={c.context.regime}: buy {c.intent.quantity} at "
                       f"urgency={c.intent.urgency} adds to a long; needs an override naming "
                       f"intent_id={c.intent_id}")
    return None


def override_of(c: Candidate) -> Override | None:
    """The override that carried an accepted intent through regime parity, if one did."""
    return c.context.overrides.get(c.intent_id) if needs_override(c) else None


def priced(c: Candidate) -> Refusal | None:
    """Notional, exposure and leverage limits need a price for the order."""
    if c.price is None and (c.limits.any_notional or c.own_leverage is not None):
        return Refusal(reasons.RISK_PRICE_UNKNOWN,
                       f"no reference_price, lakehouse price or limit_price for "
                       f"symbol={c.intent.symbol}; notional limits need one")
    return None


def order_notional(c: Candidate) -> Refusal | None:
    """``quantity x price <= max_order_notional``."""
    cap = c.limits.max_order_notional
    price = c.price
    if cap is None or price is None:
        return None
    quantity = c.quantity
    if quantity * price > cap:
        return Refusal(reasons.RISK_NOTIONAL_EXCEEDED,
                       f"notional={quantity * price} (quantity={quantity} x price={price}) > "
                       f"max_order_notional={cap}")
    return None


def asset_exposure(c: Candidate) -> Refusal | None:
    """The worst-case position after an order that grows it, x price, within the cap."""
    cap = c.limits.max_asset_exposure
    exposure = c.exposure
    if cap is None or exposure is None:
        return None
    if exposure > cap:
        return Refusal(reasons.RISK_ASSET_EXPOSURE_EXCEEDED,
                       f"exposure={exposure} (worst-case position={c.grown} x price={c.price}) "
                       f"> max_asset_exposure={cap}")
    return None


def leverage(c: Candidate) -> Refusal | None:
    """The venue's worst-case gross exposure over equity, within the lower leverage cap.

    The cap is ``max_leverage``, or the intent's own ``constraints.max_leverage`` when
    that is lower (which needs an equity). Fails closed when a held position has no
    price at all: the gross exposure is unknown then.
    """
    exposure = c.exposure
    if exposure is None:
        return None
    limits = c.limits
    gross_cap = limits.gross_cap
    leverage_cap = limits.max_leverage
    own = c.own_leverage
    if own is not None and (leverage_cap is None or own < leverage_cap):
        leverage_cap = own
        if limits.equity is None:
            return Refusal(reasons.RISK_LEVERAGE_EXCEEDED,
                           f"constraints.max_leverage={own} needs an equity for "
                           "the venue (limits.equity); none is configured")
        gross_cap = own * limits.equity
    if gross_cap is None:
        return None
    book, position = c.book, c.position
    unmarked = book.unmarked
    if unmarked and (len(unmarked) > 1 or position.symbol not in unmarked):
        return Refusal(reasons.RISK_PRICE_UNKNOWN,
                       "gross exposure cannot be valued: no price for held "
                       f"{', '.join(sorted(unmarked - {position.symbol}))}")
    gross = book.gross - position.counted + exposure
    if gross > gross_cap:
        equity = limits.equity
        assert equity is not None
        return Refusal(reasons.RISK_LEVERAGE_EXCEEDED,
                       f"leverage={(gross / equity):.4f} (gross={gross} / equity={equity}) > "
                       f"max_leverage={leverage_cap}")
    return None


def order_rate(c: Candidate) -> Refusal | None:
    """At most ``max_orders`` per ``rate_window`` on the venue (counted when committed)."""
    rate = c.venue.rate
    # Only a window that holds max_orders already can refuse (OrderRate.refusal), and
    # from ``watch`` on, refusal also prunes what can no longer refuse (OrderRate.prune).
    if rate is not None and len(rate.sent) >= rate.watch:
        why = rate.refusal(c.now)
        if why is not None:
            return Refusal(reasons.RISK_ORDER_RATE_EXCEEDED, f"venue={c.intent.venue} {why}")
    return None


class Shape(Struct, frozen=True, gc=False):
    """What of an intent decides which checks can refuse it, read before it is valued.

    ``limit``: a limit order (its limit price values it, and the price band applies to it),
    else a market order. ``constrained``: it carries ``constraints`` (reduce_only, its own
    max_leverage).
    """

    limit: bool
    constrained: bool


# Every shape, in the order of :meth:`Shape.index`.
SHAPES = (Shape(False, False), Shape(False, True), Shape(True, False), Shape(True, True))


class Needed(Protocol):
    """When a check is needed: False only where it could not refuse anything.

    A test of the rules, the context and the slot, and, when ``shape`` is given, of what
    the intents of that :class:`Shape` have in common; without one, any intent.
    """

    def __call__(self, rules: Rules, context: LakehouseContext, slot: Slot,
                 shape: Shape | None = None, /) -> bool:
        """Whether the check can refuse anything there."""


def _always(rules: Rules, context: LakehouseContext, slot: Slot,
            shape: Shape | None = None, /) -> bool:
    return True


def _constrained(rules: Rules, context: LakehouseContext, slot: Slot,
                 shape: Shape | None = None, /) -> bool:
    # Only constraints.reduce_only makes an intent reduce-only.
    return shape is None or shape.constrained


def _limit_banded(rules: Rules, context: LakehouseContext, slot: Slot,
                  shape: Shape | None = None, /) -> bool:
    return slot.limits.band is not None and (shape is None or shape.limit)


def _unpriced(rules: Rules, context: LakehouseContext, slot: Slot,
              shape: Shape | None = None, /) -> bool:
    # A limit order is valued at its limit price at worst: it always has a price.
    return shape is None or not shape.limit


def _leveraged(rules: Rules, context: LakehouseContext, slot: Slot,
               shape: Shape | None = None, /) -> bool:
    # No cap of the venue's: only the intent's own constraints.max_leverage can refuse.
    return slot.limits.gross_cap is not None or shape is None or shape.constrained


GATES: tuple[tuple[Gate, GateNeeded], ...] = (
    (trading_halted, lambda rules: rules.state == "HALTED"),
    (governance, lambda rules: rules.enforce_plans),
    (registered_run, lambda rules: rules.require_run),
)
CHECKS: tuple[tuple[Check, Needed], ...] = (
    (signature, lambda rules, context, slot, shape=None, /: (slot.venue.signed
                                                           or rules.key is not None)),
    (venue_cooldown, lambda rules, context, slot, shape=None, /: slot.venue.cooldown is not None),
    (trading_reducing, lambda rules, context, slot, shape=None, /: rules.state == "REDUCING"),
    (reduce_only, _constrained),
    (price_band, _limit_banded),
    (regime_parity, lambda rules, context, slot, shape=None, /: context.regime in rules.crisis),
    (priced, _unpriced),
    (order_notional, lambda rules, context, slot, shape=None, /: (
        slot.limits.max_order_notional is not None)),
    (asset_exposure, lambda rules, context, slot, shape=None, /: (
        slot.limits.max_asset_exposure is not None)),
    (leverage, _leveraged),
    (order_rate, lambda rules, context, slot, shape=None, /: slot.venue.rate is not None),
)


def gates_for(rules: Rules) -> tuple[Gate, ...]:
    """The gates that can refuse anything under ``rules``, in table order."""
    return tuple(gate for gate, needed in GATES if needed(rules))


def checks_for(rules: Rules, context: LakehouseContext, slot: Slot,
               shape: Shape | None = None) -> tuple[Check, ...]:
    """The checks that can refuse anything on ``slot`` under ``rules`` and ``context``.

    With ``shape``: anything an intent of that shape, only.
    """
    return tuple(check for check, needed in CHECKS if needed(rules, context, slot, shape))
