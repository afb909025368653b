"""The Risk Sentinel's checks: trading state, governance, provenance and limits.

:class:`Risk` is synchronous and does no I/O. Each check is a function of the
intent, the state (positions, pacing, trading state, the lakehouse context), the
limits from config, and the time it is given; the first check that fails is the
intent's refusal, as a reason code and a detail that names the numbers
(``notional=125000 > max_order_notional=100000``). An intent that passes is
*committed*: counted against the venue's rate, and its quantity added to the
positions (settled at once where the venue's outcome is known in advance).

Check order, cheapest and most absolute first: trading state, governance,
provenance (registry, then signature), venue cooldown, reduce-only, price band,
regime parity, order notional, asset exposure, leverage, order rate.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

from execd import reasons
from execd.config import Config, SymbolLimits, VenueLimits
from execd.context import EMPTY, LakehouseContext, Override
from execd.exposure import Book, Position, VenueBook
from execd.messages import OrderIntent, Plane, Side, TradingState
from execd.pacing import FailureCooldown, OrderRate
from execd.signatures import verify

# How a venue's outcome relates to acceptance: known at once (the paper plane fills,
# the live stub fills or fails) or only when the venue answers.
Settlement = Literal["fill", "fail", "async"]
Refusal = tuple[str, str]

_BPS = Decimal(10_000)
_AGGRESSIVE = frozenset(("high", "critical"))


class Limits:
    """The limits in force for one (venue, symbol): symbol over venue over ``[risk.limits]``."""

    __slots__ = (
        "any_notional",
        "equity",
        "max_asset_exposure",
        "max_leverage",
        "max_order_notional",
        "price_band_bps",
    )

    def __init__(self, layers: list[SymbolLimits]) -> None:
        def first(name: str) -> object:
            for layer in layers:
                value = getattr(layer, name, None)
                if value is not None:
                    return value
            return None

        self.max_order_notional: Decimal | None = first("max_order_notional")  # type: ignore[assignment]
        self.max_asset_exposure: Decimal | None = first("max_asset_exposure")  # type: ignore[assignment]
        self.price_band_bps: int | None = first("price_band_bps")  # type: ignore[assignment]
        self.max_leverage: Decimal | None = first("max_leverage")  # type: ignore[assignment]
        self.equity: Decimal | None = first("equity")  # type: ignore[assignment]
        self.any_notional = (self.max_order_notional is not None
                             or self.max_asset_exposure is not None
                             or self.max_leverage is not None)


class VenueRisk:
    """The per-venue part of the state: book, pacing, and how outcomes settle."""

    __slots__ = ("book", "cooldown", "rate", "settlement", "signed")

    def __init__(self, book: VenueBook, limits: VenueLimits, settlement: Settlement,
                 signed: bool) -> None:
        self.book = book
        self.settlement = settlement
        self.signed = signed
        self.rate = (OrderRate(limits.max_orders, limits.rate_window)
                     if limits.max_orders and limits.rate_window else None)
        self.cooldown = (FailureCooldown(limits.failure_limit, limits.failure_window,
                                         limits.cooldown)
                         if limits.failure_limit and limits.failure_window and limits.cooldown
                         else None)


def _merged(top: VenueLimits, venue: VenueLimits) -> VenueLimits:
    values = {f: getattr(venue, f) if getattr(venue, f) is not None else getattr(top, f)
              for f in VenueLimits.__struct_fields__}
    return VenueLimits(**values)


def settlement_of(config: Config, venue: str) -> Settlement:
    """How the adapter configured for ``venue`` settles its orders."""
    v = config.venues[venue]
    if v.adapter_kind == "paper":
        return "fill"
    if v.adapter_kind == "stub":
        return "fill" if v.stub_result == "fill" else "fail"
    return "async"


class Risk:
    """The sentinel's risk state and checks."""

    def __init__(self, config: Config, book: Book | None = None,
                 key: bytes | None = None) -> None:
        self.config = config
        self.book = book or Book()
        self.key = key
        self.state: TradingState = "ACTIVE"
        self.state_note = ""
        self.context: LakehouseContext = EMPTY
        self.override: Override | None = None
        risk = config.risk
        signed_planes = {"none": (), "live": ("live",), "all": ("paper", "live")}[risk.signatures]
        self.venues: dict[str, VenueRisk] = {}
        for name, venue in config.venues.items():
            self.venues[name] = VenueRisk(
                self.book.venue(name), _merged(risk.limits, venue.limits),
                settlement_of(config, name), venue.plane in signed_planes)
        self.require_run = risk.require_registered_run
        self.crisis = frozenset(risk.crisis_regimes)
        self.enforce_plans = config.governance.enforce
        self.require_plan = config.governance.require_plan
        self._limits: dict[tuple[str, str], Limits] = {}

    # ------------------------------------------------------------------ inputs

    def limits(self, venue: str, symbol: str) -> Limits:
        """The limits for ``symbol`` on ``venue`` (resolved once, then cached)."""
        key = (venue, symbol)
        found = self._limits.get(key)
        if found is None:
            v = self.config.venues[venue]
            layers: list[SymbolLimits] = [v.limits, self.config.risk.limits]
            symbol_limits = v.symbols.get(symbol)
            if symbol_limits is not None:
                layers.insert(0, symbol_limits)
            found = self._limits[key] = Limits(layers)
        return found

    def set_context(self, context: LakehouseContext) -> None:
        """A new lakehouse context: its prices become the marks of held symbols."""
        self.context = context
        prices = context.prices
        for book in self.book.venues.values():
            for symbol, position in book.positions.items():
                price = prices.get(symbol)
                if price is not None:
                    book.set_mark(position, price)

    def set_state(self, state: TradingState, note: str) -> TradingState:
        """Change the trading state; returns the previous one."""
        previous, self.state, self.state_note = self.state, state, note
        return previous

    # ------------------------------------------------------------------ checks

    def check(self, intent: OrderIntent, intent_id: uuid.UUID, side: Side, raw: bytes,
              now: int) -> Refusal | None:
        """The refusal of ``intent``, or None when every check passes.

        Sets :attr:`override` when a manual override carried the intent through
        regime parity (the sentinel records it).
        """
        self.override = None
        if self.state == "HALTED":
            return reasons.TRADING_HALTED, f"trading state is HALTED ({self.state_note})"
        context = self.context
        if self.enforce_plans:
            refusal = self._plan(intent.plan_id, context.plans)
            if refusal is not None:
                return refusal
        if self.require_run and intent.source_run not in context.runs:
            return (reasons.PROVENANCE_RUN_UNREGISTERED,
                    f"source_run={intent.source_run!r} is not in audit/runs.jsonl "
                    f"({len(context.runs)} runs registered)")
        venue = self.venues[intent.venue]
        if intent.signature is not None or venue.signed:
            refusal = self._signature(intent, raw, venue.signed)
            if refusal is not None:
                return refusal
        if venue.cooldown is not None:
            why = venue.cooldown.refusal(now)
            if why is not None:
                return reasons.RISK_VENUE_COOLDOWN, f"venue={intent.venue} {why}"
        quantity = intent.quantity
        position = venue.book.position(intent.symbol)
        reduce_only = intent.constraints is not None and intent.constraints.reduce_only
        if (reduce_only or self.state == "REDUCING") and not position.reduces(side, quantity):
            detail = (f"{side} {quantity} would not only shrink position={position.filled} "
                      f"(pending_buy={position.pending_buy} pending_sell={position.pending_sell})")
            if self.state == "REDUCING":
                return reasons.TRADING_REDUCING, f"trading state is REDUCING: {detail}"
            return reasons.RISK_REDUCE_ONLY_VIOLATION, f"reduce_only: {detail}"
        limits = self.limits(intent.venue, intent.symbol)
        reference = intent.reference_price
        if reference is None:
            reference = context.prices.get(intent.symbol)
        if limits.price_band_bps is not None and intent.order_type == "limit":
            refusal = _band(intent.limit_price, reference, limits.price_band_bps)
            if refusal is not None:
                return refusal
        if (context.regime in self.crisis and side == "buy" and intent.urgency in _AGGRESSIVE
                and not position.reduces(side, quantity)):
            self.override = context.overrides.get(intent_id)
            if self.override is None:
                return (reasons.RISK_REGIME_OVERRIDE_REQUIRED,
                        f"regime={context.regime}: buy {quantity} at urgency={intent.urgency} "
                        f"adds to a long; needs an override naming intent_id={intent_id}")
        own_leverage = intent.constraints.max_leverage if intent.constraints else None
        if limits.any_notional or own_leverage is not None:
            price = reference if reference is not None else intent.limit_price
            if price is None:
                return (reasons.RISK_PRICE_UNKNOWN,
                        f"no reference_price, lakehouse price or limit_price for "
                        f"symbol={intent.symbol}; notional limits need one")
            refusal = self._exposure(limits, venue.book, position, side, quantity, price,
                                     own_leverage)
            if refusal is not None:
                return refusal
        if venue.rate is not None:
            why = venue.rate.refusal(now)
            if why is not None:
                return reasons.RISK_ORDER_RATE_EXCEEDED, f"venue={intent.venue} {why}"
        return None

    def _plan(self, plan_id: str | None, plans: Mapping[str, str]) -> Refusal | None:
        if plan_id is None:
            if self.require_plan:
                return (reasons.GOVERNANCE_PLAN_MISSING,
                        "governance.require_plan is set and the intent names no plan_id")
            return None
        state = plans.get(plan_id)
        if state is None:
            return (reasons.GOVERNANCE_PLAN_UNKNOWN,
                    f"plan_id={plan_id} is not in the plan ledger ({len(plans)} plans)")
        if state != "COMMITTED":
            return (reasons.GOVERNANCE_PLAN_NOT_COMMITTED,
                    f"plan_id={plan_id} state={state}; needs COMMITTED")
        return None

    def _signature(self, intent: OrderIntent, raw: bytes, required: bool) -> Refusal | None:
        if intent.signature is None:
            return (reasons.PROVENANCE_SIGNATURE_MISSING,
                    f"venue={intent.venue} is on the {self.config.venues[intent.venue].plane} "
                    f"plane and risk.signatures={self.config.risk.signatures!r}")
        if self.key is None:
            # Signed, but no key here to check it with, and not required: nothing to prove.
            return None
        if not verify(self.key, raw, intent.signature):
            return (reasons.PROVENANCE_SIGNATURE_INVALID,
                    "HMAC-SHA256 of the canonical intent does not match signature="
                    f"{intent.signature[:12]}…")
        return None

    def _exposure(self, limits: Limits, book: VenueBook, position: Position, side: Side,
                  quantity: Decimal, price: Decimal, own_leverage: Decimal | None
                  ) -> Refusal | None:
        cap = limits.max_order_notional
        if cap is not None:
            notional = quantity * price
            if notional > cap:
                return (reasons.RISK_NOTIONAL_EXCEEDED,
                        f"notional={notional} (quantity={quantity} x price={price}) > "
                        f"max_order_notional={cap}")
        worst_before = position.worst()
        worst = position.worst_after(side, quantity)
        if worst <= worst_before:
            # Cannot grow the position whatever fills: exposure limits do not apply.
            return None
        cap = limits.max_asset_exposure
        if cap is not None and worst * price > cap:
            return (reasons.RISK_ASSET_EXPOSURE_EXCEEDED,
                    f"exposure={worst * price} (worst-case position={worst} x price={price}) "
                    f"> max_asset_exposure={cap}")
        leverage_cap = limits.max_leverage
        if own_leverage is not None and (leverage_cap is None or own_leverage < leverage_cap):
            leverage_cap = own_leverage
        if leverage_cap is not None:
            equity = limits.equity
            if equity is None:
                return (reasons.RISK_LEVERAGE_EXCEEDED,
                        f"constraints.max_leverage={own_leverage} needs an equity for "
                        "the venue (limits.equity); none is configured")
            gross = book.gross_after(position, side, quantity, price)
            if gross > leverage_cap * equity:
                return (reasons.RISK_LEVERAGE_EXCEEDED,
                        f"leverage={(gross / equity):.4f} (gross={gross} / equity={equity}) > "
                        f"max_leverage={leverage_cap}")
        return None

    # ------------------------------------------------------------------ commit

    def commit(self, intent: OrderIntent, side: Side, now: int) -> None:
        """Count an accepted intent: rate, and positions (settled now if the venue is)."""
        venue = self.venues[intent.venue]
        if venue.rate is not None:
            venue.rate.note(now)
        book = venue.book
        position = book.position(intent.symbol)
        price = intent.reference_price
        if price is None:
            price = self.context.prices.get(intent.symbol)
            if price is None:
                price = intent.limit_price
        if price is not None:
            book.set_mark(position, price)
        settlement = venue.settlement
        if settlement == "fill":
            book.fill(position, side, intent.quantity)
        elif settlement == "fail":
            if venue.cooldown is not None:
                venue.cooldown.note_failure(now)
        else:
            book.reserve(position, side, intent.quantity)

    def observe(self, venue: str, symbol: str, side: Side, status: str, reason: str | None,
                filled: Decimal, price: Decimal | None, now: int, reserved: Decimal | None
                ) -> None:
        """Fold one recorded outcome of an order a venue was asked for.

        ``reserved``: the quantity held pending for it, or None when the outcome is
        read back from the ledger at start-up (nothing was pending then).
        """
        state = self.venues.get(venue)
        if state is None:
            return
        book = state.book
        position = book.position(symbol)
        if reserved is not None:
            book.settle(position, side, reserved, filled)
        elif filled:
            book.fill(position, side, filled)
        if price is not None:
            book.set_mark(position, price)
        if reserved is None and state.rate is not None:
            # Read back at start-up: the order counts against the rate it was sent under.
            state.rate.note(now)
        if state.cooldown is not None and status == "FAILED" and reason in (
                reasons.EXECUTION_NOT_AVAILABLE, reasons.EXECUTION_REJECTED):
            state.cooldown.note_failure(now)

    def plane_of(self, venue: str) -> Plane:
        """The configured plane of ``venue``."""
        return self.config.venues[venue].plane


def _band(limit: Decimal | None, reference: Decimal | None, band: int) -> Refusal | None:
    if limit is None:
        return None
    if reference is None:
        return (reasons.RISK_PRICE_UNKNOWN,
                f"price_band_bps={band} needs a reference_price or a lakehouse price")
    distance = abs(limit - reference) / reference * _BPS
    if distance > band:
        return (reasons.RISK_PRICE_BAND_EXCEEDED,
                f"limit_price={limit} is {distance:.1f} bps from reference={reference} > "
                f"price_band_bps={band}")
    return None
