"""The Risk Sentinel's risk state, and admitting an intent against it.

:class:`Risk` is synchronous and does no I/O. It holds the state the checks read (the
book of positions, per-venue pacing, the trading state, the lakehouse context, the
limits from config) and admits an intent in two steps: the checks of
:mod:`execd.sentinel.checks`, in the order of their tables (the first that fails is the
intent's refusal), then the commit: an accepted intent is counted against the venue's
rate and added to the book (settled at once where the venue's outcome is known in
advance). The checks never change anything; only the commit does, through the book's
and the pacing's own methods (README, "The Risk Sentinel"). Each slot keeps the checks
that can refuse anything there (:func:`~execd.sentinel.checks.checks_for`), chosen again
whenever the rules, the context or the config change.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from execd.config.schema import Config, SymbolLimits
from execd.model import reasons
from execd.model.messages import HoldingsIn, OrderIntent, Side, TradingState
from execd.model.refusal import Refusal
from execd.reader.context import EMPTY, LakehouseContext, Override
from execd.sentinel.book import Book
from execd.sentinel.checks import (
    SHAPES,
    Gate,
    Rules,
    candidate,
    checks_for,
    gates_for,
    override_of,
    own_price,
    regime_parity,
    signature,
)
from execd.sentinel.drift import DriftState
from execd.sentinel.limits import Limits, merged
from execd.sentinel.slots import Slot, VenueRisk, settlement_of
from execd.sentinel.targets import Targets

_ZERO = Decimal(0)
# The checks a schedule's children skip: their parent passed them (Risk.admit_child).
_PARENT_ONLY = frozenset((signature, regime_parity))


class Risk:
    """The sentinel's risk state; :meth:`admit` checks an intent and commits it."""

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
        # What live venues hold against the ledger (README, "What the venue holds"),
        # and the holdings the sentinel has still to compare.
        self.drift = DriftState()
        self.arrived: list[HoldingsIn] = []
        # Every portfolio's last target (README, "Targets").
        self.targets = Targets()
        self.venues: dict[str, VenueRisk] = {}
        self.rules = Rules()
        self._gates: tuple[Gate, ...] = ()
        self._parity = False
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
                self.book.venue(name), merged(risk.limits, venue.limits),
                settlement_of(config, name), venue.plane, venue.plane in signed_planes)
            old = previous.get(name)
            if old is not None:
                state.keep_history(old)
        # Resolved limits and slots are rebuilt on next use.
        self._limits = {}
        self._slots = {name: {} for name in self.venues}
        self._rules()

    def _rules(self) -> None:
        """Rebuild what the checks read from the config and the trading state."""
        config = self.config
        self.rules = Rules(
            self.state, self.state_note, config.governance.enforce,
            config.governance.require_plan, config.risk.require_registered_run,
            frozenset(config.risk.crisis_regimes), config.risk.signatures, self.key)
        self._gates = gates_for(self.rules)
        self._tables()

    def _tables(self) -> None:
        """Choose each slot's checks again: the rules or the context changed."""
        rules, context = self.rules, self.context
        # Regime parity applies (and an override may carry an intent) only in a crisis.
        self._parity = context.regime in rules.crisis
        for slots in self._slots.values():
            for slot in slots.values():
                _choose(slot, rules, context)

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
            _choose(found, self.rules, self.context)
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
        self._tables()

    def set_state(self, state: TradingState, note: str) -> TradingState:
        """Change the trading state; returns the previous one."""
        previous, self.state, self.state_note = self.state, state, note
        self._rules()
        return previous

    # ------------------------------------------------------------------ admit

    def admit(self, intent: OrderIntent, intent_id: uuid.UUID, side: Side, raw: bytes,
              now: int, hold: Decimal | None = None) -> Refusal | Override | None:
        """Check ``intent``; commit it when every check passes.

        Returns the refusal; or None when accepted; or the manual Override that carried
        it through regime parity (accepted, and the sentinel records the override).
        ``hold``: the intent is a scheduled parent, which is no order itself: instead of
        the commit, this much of it is held pending (the quantity its children may send),
        so that no set of schedules can pass a cap, and no order is counted.
        """
        rules, context = self.rules, self.context
        for gate in self._gates:
            refusal = gate(rules, context, intent)
            if refusal is not None:
                return refusal
        symbol = intent.symbol
        slot = self._slots[intent.venue].get(symbol) or self.slot(intent.venue, symbol)
        # Only the checks that can refuse an intent of this shape here (checks.Shape).
        table = slot.tables[intent.order_type][intent.constraints is not None]
        if not table:
            # Nothing here can refuse it, so there is no candidate to value.
            if hold is not None:
                slot.book.accept(slot.position, side, hold, self.price_of(intent), "async")
                return None
            _commit(slot, side, intent.absolute, self.price_of(intent), now, None)
            return None
        c = candidate(intent, intent_id, side, raw, now, rules, context, slot)
        for check in table:
            refusal = check(c)
            if refusal is not None:
                return refusal
        if hold is not None:
            slot.book.accept(slot.position, side, hold, c.price, "async")
        else:
            _commit(slot, side, c.quantity, c.price, now, c.exposure)
        # Only in a crisis regime can an override have carried it (checks.needs_override).
        return override_of(c) if self._parity else None

    def admit_child(self, intent: OrderIntent, side: Side, raw: bytes, now: int) -> Refusal | None:
        """Check a schedule's child as it is released, and commit it when it passes.

        Its quantity is moved off what its parent holds pending first, so it is never
        counted twice; a refused child's quantity goes back to the parent's hold (it
        carries into the next child). The parent passed the gates (trading halted,
        governance, provenance), its signature and regime parity when it was admitted:
        those are not asked again of what execd itself derived from it; every other
        check is, since prices and the state move while a schedule runs.
        """
        assert intent.intent_id is not None
        slot = self._slots[intent.venue].get(intent.symbol) or self.slot(intent.venue,
                                                                          intent.symbol)
        quantity = intent.absolute
        position = slot.position
        # Off the hold, without a recount: the checks value the position from its own
        # fields (Position.grown) and the venue's gross less what the position counted,
        # and the commit below recounts it.
        if side == "buy":
            position.pending_buy -= quantity
        else:
            position.pending_sell -= quantity
        table = slot.child_tables[intent.order_type][intent.constraints is not None]
        c = candidate(intent, intent.intent_id, side, raw, now, self.rules, self.context, slot)
        for check in table:
            refusal = check(c)
            if refusal is not None:
                if side == "buy":  # back on the hold: nothing changed
                    position.pending_buy += quantity
                else:
                    position.pending_sell += quantity
                return refusal
        _commit(slot, side, quantity, c.price, now, c.exposure if table else None)
        return None

    def release(self, venue: str, symbol: str, side: Side, quantity: Decimal) -> None:
        """Stop holding ``quantity`` pending (a schedule ended with it unsent)."""
        if quantity:
            slot = self.slot(venue, symbol)
            slot.book.settle(slot.position, side, quantity, _ZERO)

    # ------------------------------------------------------------------ commit

    def commit(self, intent: OrderIntent, side: Side, now: int) -> None:
        """Count an intent accepted without checks (a Safety Sell exit)."""
        _commit(self.slot(intent.venue, intent.symbol), side, intent.absolute,
                     self.price_of(intent), now, None)

    def price_of(self, intent: OrderIntent) -> Decimal | None:
        """The price an accepted order is valued at: the lakehouse's, else its own."""
        price = self.context.prices.get(intent.symbol)
        return price if price is not None else own_price(intent)

    def hold(self, venue: str, symbol: str, side: Side, quantity: Decimal) -> None:
        """Hold ``quantity`` pending: an order recorded sent whose outcome is still to come."""
        state = self.venues.get(venue)
        if state is None:
            return
        state.book.accept(state.book.position(symbol), side, quantity, None, "async")

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


def _choose(slot: Slot, rules: Rules, context: LakehouseContext) -> None:
    """Choose ``slot``'s checks, and those of each intent shape, under ``rules`` and ``context``."""
    slot.checks = checks_for(rules, context, slot)
    tables = [checks_for(rules, context, slot, shape) for shape in SHAPES]
    slot.tables = {"market": (tables[0], tables[1]), "limit": (tables[2], tables[3])}
    child = [tuple(c for c in table if c not in _PARENT_ONLY) for table in tables]
    slot.child_tables = {"market": (child[0], child[1]), "limit": (child[2], child[3])}


def _commit(slot: Slot, side: Side, quantity: Decimal, price: Decimal | None, now: int,
            exposure: Decimal | None) -> None:
    """Count an accepted order against the venue's rate and add it to the book.

    ``exposure``: the candidate's (grown worst case x price), or None.
    """
    venue = slot.venue
    rate = venue.rate
    if rate is not None:
        rate.note(now)
    if slot.at_once:
        position = slot.position
        if position.pending_buy or position.pending_sell:
            exposure = None  # a schedule holds some: the book counts the position itself
        slot.book.accept(position, side, quantity, price, "fill", exposure)
        return
    settlement = venue.settlement
    if settlement == "fail" and venue.cooldown is not None:
        venue.cooldown.note_failure(now)
    slot.book.accept(slot.position, side, quantity, price, settlement)
