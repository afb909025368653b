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

from execd.config.schema import Config, SymbolLimits, VenueLimits
from execd.model import reasons
from execd.model.messages import OrderIntent, Side, TradingState
from execd.reader.context import EMPTY, LakehouseContext, Override
from execd.sentinel.book import Book, Position, VenueBook
from execd.sentinel.pacing import FailureCooldown, OrderRate
from execd.sentinel.signatures import verify

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
        "band",
        "equity",
        "gross_cap",
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
        # Precomputed so the hot path multiplies instead of dividing.
        self.band: Decimal | None = (Decimal(self.price_band_bps)
                                     if self.price_band_bps is not None else None)
        self.gross_cap: Decimal | None = (self.max_leverage * self.equity
                                          if self.max_leverage is not None
                                          and self.equity is not None else None)


class Slot:
    """Everything the checks need for one (venue, symbol), found with one lookup."""

    __slots__ = ("book", "limits", "position", "venue")

    def __init__(self, venue: VenueRisk, position: Position, limits: Limits) -> None:
        self.venue = venue
        self.book = venue.book
        self.position = position
        self.limits = limits


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

    def keep_history(self, old: VenueRisk) -> None:
        """Carry ``old``'s counted orders and failures over to these (new) limits."""
        if self.rate is not None and old.rate is not None:
            self.rate.sent.extend(old.rate.sent)
        if self.cooldown is not None and old.cooldown is not None:
            self.cooldown.failures.extend(old.cooldown.failures)
            self.cooldown.until = old.cooldown.until


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
        # Safety Sells the ledger holds: numbers each one's exit intent ids.
        self.safety_sells = 0
        self.context: LakehouseContext = EMPTY
        self.venues: dict[str, VenueRisk] = {}
        self._limits: dict[tuple[str, str], Limits] = {}
        self._slots: dict[str, dict[str, Slot]] = {}
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take limits and policies from ``config`` (at start, and on a reload).

        Positions, pending quantities, the trading state, and the orders and failures
        counted by pacing are kept: a reload changes the rules, not the history they
        are applied to. The venues are the same (adding one needs a restart).
        """
        self.config = config
        risk = config.risk
        signed_planes = risk.signed_planes
        previous = self.venues
        self.venues = {}
        for name, venue in config.venues.items():
            state = self.venues[name] = VenueRisk(
                self.book.venue(name), _merged(risk.limits, venue.limits),
                settlement_of(config, name), venue.plane in signed_planes)
            old = previous.get(name)
            if old is not None:
                state.keep_history(old)
        self.require_run = risk.require_registered_run
        self.crisis = frozenset(risk.crisis_regimes)
        self.enforce_plans = config.governance.enforce
        self.require_plan = config.governance.require_plan
        # Resolved limits and slots are rebuilt on next use.
        self._limits = {}
        self._slots = {name: {} for name in self.venues}

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

    def slot(self, venue: str, symbol: str) -> Slot:
        """The slot of ``symbol`` on ``venue`` (a configured venue)."""
        slots = self._slots[venue]
        found = slots.get(symbol)
        if found is None:
            state = self.venues[venue]
            found = slots[symbol] = Slot(state, state.book.position(symbol),
                                         self.limits(venue, symbol))
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

    def admit(self, intent: OrderIntent, intent_id: uuid.UUID, side: Side, raw: bytes,
              now: int) -> Refusal | Override | None:
        """Check ``intent``; commit it when every check passes.

        Returns the refusal (reason, detail); or None when accepted; or the manual
        Override that carried it through regime parity (accepted, and the sentinel
        records the override). Committed: counted against the venue's rate and
        added to the positions (see :meth:`_settle`).

        This runs for every intent, so the common path is written out inline.
        """
        state = self.state
        if state != "ACTIVE" and state == "HALTED":
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
        slot = self._slots[intent.venue].get(intent.symbol) or self.slot(intent.venue,
                                                                          intent.symbol)
        venue = slot.venue
        if intent.signature is not None or venue.signed:
            refusal = self._signature(intent, raw, venue.signed)
            if refusal is not None:
                return refusal
        if venue.cooldown is not None:
            why = venue.cooldown.refusal(now)
            if why is not None:
                return reasons.RISK_VENUE_COOLDOWN, f"venue={intent.venue} {why}"
        quantity = intent.quantity
        position = slot.position
        constraints = intent.constraints
        if ((state == "REDUCING" or (constraints is not None and constraints.reduce_only))
                and not position.reduces(side, quantity)):
            detail = (f"{side} {quantity} would not only shrink position={position.filled} "
                      f"(pending_buy={position.pending_buy} pending_sell={position.pending_sell})")
            if state == "REDUCING":
                return reasons.TRADING_REDUCING, f"trading state is REDUCING: {detail}"
            return reasons.RISK_REDUCE_ONLY_VIOLATION, f"reduce_only: {detail}"
        limits = slot.limits
        market = context.prices.get(intent.symbol)
        reference = intent.reference_price
        if reference is None:
            reference = market
        band = limits.band
        if band is not None and intent.order_type == "limit":
            limit = intent.limit_price
            assert limit is not None  # a limit order without one was refused already
            if reference is None or abs(limit - reference) * _BPS > band * reference:
                return _band_refusal(limit, reference, band)
        override = None
        if (context.regime in self.crisis and side == "buy" and intent.urgency in _AGGRESSIVE
                and not position.reduces(side, quantity)):
            override = context.overrides.get(intent_id)
            if override is None:
                return (reasons.RISK_REGIME_OVERRIDE_REQUIRED,
                        f"regime={context.regime}: buy {quantity} at urgency={intent.urgency} "
                        f"adds to a long; needs an override naming intent_id={intent_id}")
        price = market if market is not None else _own_price(intent)
        own_leverage = constraints.max_leverage if constraints is not None else None
        at_once = venue.settlement == "fill"
        new: Decimal | None = None  # the position after an at-once fill, once computed
        exposure: Decimal | None = None  # its worst * price, when it grew
        if limits.any_notional or own_leverage is not None:
            if price is None:
                return (reasons.RISK_PRICE_UNKNOWN,
                        f"no reference_price, lakehouse price or limit_price for "
                        f"symbol={intent.symbol}; notional limits need one")
            if at_once:
                # Nothing is ever pending on such a venue: the worst case is the position
                # itself, and what is computed here is reused to settle the fill below.
                cap = limits.max_order_notional
                if cap is not None and quantity * price > cap:
                    return _notional_refusal(quantity, price, cap)
                filled = position.filled
                new = filled + quantity if side == "buy" else filled - quantity
                worst = abs(new)
                if worst > abs(filled):
                    exposure = worst * price
                    refusal = self._growth(limits, slot.book, position, worst, exposure,
                                           price, own_leverage)
                    if refusal is not None:
                        return refusal
            else:
                refusal = self._exposure(limits, slot.book, position, side, quantity, price,
                                         own_leverage)
                if refusal is not None:
                    return refusal
        rate = venue.rate
        if rate is not None:
            why = rate.take(now)
            if why is not None:
                return reasons.RISK_ORDER_RATE_EXCEEDED, f"venue={intent.venue} {why}"
        if at_once:
            # The paper plane's path, inline: the order fills as it is accepted.
            if new is None:
                new = (position.filled + quantity if side == "buy"
                       else position.filled - quantity)
            position.filled = new
            if price is not None:
                position.mark = price
            book = slot.book
            if exposure is not None:
                # The checks valued this very position at this mark already: reuse it.
                book.gross += exposure - position.counted
                position.counted = exposure
                if book.unmarked:
                    book.unmarked.discard(position.symbol)
            else:
                book.recount(position)
            return override
        self._settle(slot, side, quantity, price, now)
        return override

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
        """Notional, asset exposure and leverage, with orders pending (the general case)."""
        cap = limits.max_order_notional
        if cap is not None and quantity * price > cap:
            return _notional_refusal(quantity, price, cap)
        worst = position.worst_after(side, quantity)
        if worst <= position.worst():
            # Cannot grow the position whatever fills: exposure limits do not apply.
            return None
        return self._growth(limits, book, position, worst, worst * price, price, own_leverage)

    @staticmethod
    def _growth(limits: Limits, book: VenueBook, position: Position, worst: Decimal,
                exposure: Decimal, price: Decimal, own_leverage: Decimal | None
                ) -> Refusal | None:
        """Asset exposure and leverage for an order that grows the worst case to ``worst``."""
        cap = limits.max_asset_exposure
        if cap is not None and exposure > cap:
            return (reasons.RISK_ASSET_EXPOSURE_EXCEEDED,
                    f"exposure={exposure} (worst-case position={worst} x price={price}) "
                    f"> max_asset_exposure={cap}")
        gross_cap = limits.gross_cap
        leverage_cap = limits.max_leverage
        if own_leverage is not None and (leverage_cap is None or own_leverage < leverage_cap):
            leverage_cap = own_leverage
            if limits.equity is None:
                return (reasons.RISK_LEVERAGE_EXCEEDED,
                        f"constraints.max_leverage={own_leverage} needs an equity for "
                        "the venue (limits.equity); none is configured")
            gross_cap = own_leverage * limits.equity
        if gross_cap is not None:
            unmarked = book.unmarked
            if unmarked and (len(unmarked) > 1 or position.symbol not in unmarked):
                # Fail closed: a held position without a price makes gross exposure unknown.
                return (reasons.RISK_PRICE_UNKNOWN,
                        "gross exposure cannot be valued: no price for held "
                        f"{', '.join(sorted(unmarked - {position.symbol}))}")
            gross = book.gross - position.counted + exposure
            if gross > gross_cap:
                equity = limits.equity
                assert equity is not None
                return (reasons.RISK_LEVERAGE_EXCEEDED,
                        f"leverage={(gross / equity):.4f} (gross={gross} / equity={equity}) > "
                        f"max_leverage={leverage_cap}")
        return None

    # ------------------------------------------------------------------ commit

    def commit(self, intent: OrderIntent, side: Side, now: int) -> None:
        """Count an intent accepted without checks (a Safety Sell exit)."""
        slot = self.slot(intent.venue, intent.symbol)
        if slot.venue.rate is not None:
            slot.venue.rate.note(now)
        price = self.context.prices.get(intent.symbol)
        self._settle(slot, side, intent.quantity,
                     price if price is not None else _own_price(intent), now)

    @staticmethod
    def _settle(slot: Slot, side: Side, quantity: Decimal, price: Decimal | None,
                now: int) -> None:
        """Add an accepted order to the positions: filled, failed, or pending."""
        position = slot.position
        if price is not None:
            position.mark = price
        venue = slot.venue
        settlement = venue.settlement
        if settlement == "fill":
            position.filled += quantity if side == "buy" else -quantity
        elif settlement == "fail":
            if venue.cooldown is not None:
                venue.cooldown.note_failure(now)
        elif side == "buy":
            position.pending_buy += quantity
        else:
            position.pending_sell += quantity
        # The mark may have moved even when the position did not.
        slot.book.recount(position)

    def hold(self, venue: str, symbol: str, side: Side, quantity: Decimal) -> None:
        """Hold ``quantity`` pending: an order recorded sent whose outcome is still to come."""
        state = self.venues.get(venue)
        if state is None:
            return
        position = state.book.position(symbol)
        if side == "buy":
            position.pending_buy += quantity
        else:
            position.pending_sell += quantity
        state.book.recount(position)

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


def _own_price(intent: OrderIntent) -> Decimal | None:
    """The intent's own price for valuing it: limit, else reference (what paper records).

    Used only when the lakehouse has no price for the symbol: the lakehouse price is
    the mark, so an intent's own prices cannot re-value what is already held.
    """
    return intent.limit_price if intent.limit_price is not None else intent.reference_price


def _notional_refusal(quantity: Decimal, price: Decimal, cap: Decimal) -> Refusal:
    return (reasons.RISK_NOTIONAL_EXCEEDED,
            f"notional={quantity * price} (quantity={quantity} x price={price}) > "
            f"max_order_notional={cap}")


def _band_refusal(limit: Decimal, reference: Decimal | None, band: Decimal) -> Refusal:
    """Why a limit price is refused by the price band (called only when it is)."""
    if reference is None:
        return (reasons.RISK_PRICE_UNKNOWN,
                f"price_band_bps={band} needs a reference_price or a lakehouse price")
    distance = abs(limit - reference) / reference * _BPS
    return (reasons.RISK_PRICE_BAND_EXCEEDED,
            f"limit_price={limit} is {distance:.1f} bps from reference={reference} > "
            f"price_band_bps={band}")
