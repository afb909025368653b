"""Positions and exposure, per venue and symbol, as the Risk Sentinel counts them.

A position is what was filled (signed: long > 0) plus what is *pending*: orders
accepted for a venue whose outcome is not known yet. Risk limits are checked
against the worst case, as if every pending order filled in full on its own side,
so that no set of outcomes can carry exposure past a cap:

* ``long  = filled + pending_buy``  (every pending buy fills, no pending sell does)
* ``short = filled - pending_sell`` (the other way round)
* ``worst = max(|long|, |short|)``

Asset exposure is ``worst x mark`` (the symbol's latest known price); a venue's
gross exposure is the sum over its symbols, kept up to date incrementally. Venues
whose outcome is known when the order is accepted (the paper plane, the live stub)
settle at once and never hold anything pending. Rebuilt from the ledger's fills on
restart. Decimal throughout: no float ever touches a quantity.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from msgspec import Struct

from execd.model.messages import Side

_ZERO = Decimal(0)

# How a venue's outcome relates to acceptance: known at once (the paper plane fills,
# the live stub fills or fails) or only when the venue answers.
Settlement = Literal["fill", "fail", "async"]


class Position:
    """One symbol on one venue."""

    __slots__ = ("counted", "filled", "mark", "pending_buy", "pending_sell", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.filled = _ZERO
        self.pending_buy = _ZERO
        self.pending_sell = _ZERO
        self.mark: Decimal | None = None
        # worst x mark as last added to the venue's gross exposure
        self.counted = _ZERO

    def worst(self) -> Decimal:
        """The largest absolute position any set of pending outcomes can leave."""
        return max(abs(self.filled + self.pending_buy), abs(self.filled - self.pending_sell))

    def worst_after(self, side: Side, quantity: Decimal) -> Decimal:
        """``worst()`` if an order of ``quantity`` on ``side`` were added as pending."""
        if side == "buy":
            return max(abs(self.filled + self.pending_buy + quantity),
                       abs(self.filled - self.pending_sell))
        return max(abs(self.filled + self.pending_buy),
                   abs(self.filled - self.pending_sell - quantity))

    def reduces(self, side: Side, quantity: Decimal) -> bool:
        """True when the order can only shrink the position, whatever else fills.

        A sell must fit inside the long that remains after every pending sell; a buy
        inside the short that remains after every pending buy.
        """
        if side == "sell":
            return quantity <= self.filled - self.pending_sell
        return quantity <= -(self.filled + self.pending_buy)

    def grown(self, side: Side, quantity: Decimal, at_once: bool) -> Decimal | None:
        """The worst case after an order of ``quantity`` on ``side``, if it is larger than now.

        None when the order cannot grow the position, whatever fills (exposure limits do
        not apply to it then). ``at_once``: the venue settles as it accepts, so nothing is
        pending there (unless a scheduled parent holds some) and the worst case is the
        position itself.
        """
        if at_once and not (self.pending_buy or self.pending_sell):
            # (A schedule's parent holds pending even where orders settle at once.)
            filled = self.filled
            worst = abs(filled + quantity if side == "buy" else filled - quantity)
            return worst if worst > abs(filled) else None
        worst = self.worst_after(side, quantity)
        return worst if worst > self.worst() else None


class PositionView(Struct, frozen=True, omit_defaults=True):
    """A position as ``execd ctl status`` shows it."""

    venue: str
    symbol: str
    position: Decimal
    pending_buy: Decimal = _ZERO
    pending_sell: Decimal = _ZERO
    mark: Decimal | None = None


class VenueBook:
    """The positions of one venue and their gross exposure.

    The only code that changes a :class:`Position` or the gross exposure: every change
    goes through a method here, which keeps ``gross`` equal to the sum of what each
    position counts (the invariant the risk property test checks).
    """

    __slots__ = ("gross", "positions", "unmarked")

    def __init__(self) -> None:
        self.positions: dict[str, Position] = {}
        self.gross = _ZERO
        # Symbols held (or pending) with no price at all: their exposure is unknown.
        self.unmarked: set[str] = set()

    def position(self, symbol: str) -> Position:
        """The position in ``symbol`` (created flat)."""
        position = self.positions.get(symbol)
        if position is None:
            position = self.positions[symbol] = Position(symbol)
        return position

    def recount(self, position: Position) -> None:
        """Bring the gross exposure up to date after ``position`` or its mark changed."""
        mark = position.mark
        if mark is None:
            if position.filled or position.pending_buy or position.pending_sell:
                self.unmarked.add(position.symbol)
            else:
                self.unmarked.discard(position.symbol)
            return
        if self.unmarked:
            self.unmarked.discard(position.symbol)
        if position.pending_buy or position.pending_sell:
            counted = position.worst() * mark
        else:
            counted = abs(position.filled) * mark
        self.gross += counted - position.counted
        position.counted = counted

    def set_mark(self, position: Position, price: Decimal) -> None:
        """The symbol's latest price moved to ``price``."""
        if position.mark != price:
            position.mark = price
            self.recount(position)

    def accept(self, position: Position, side: Side, quantity: Decimal, price: Decimal | None,
               settlement: Settlement, counted: Decimal | None = None) -> None:
        """An order the sentinel accepted: filled, failed or pending, per ``settlement``.

        ``price`` (when known) becomes the mark, and the position is recounted even when
        neither moved: that is how the ledger's figures have always been computed, and
        they must stay byte for byte the same (docs/ARCHITECTURE.md, "Determinism").
        ``counted``: for a fill at once, the position's worst case x ``price`` after it,
        when the caller computed that already (the checks valued this very position at
        this mark); it is taken as is instead of being computed again.
        """
        if price is not None:
            position.mark = price
        if settlement == "fill":
            if side == "buy":
                position.filled += quantity
            else:
                position.filled -= quantity
            if counted is not None:
                self.gross += counted - position.counted
                position.counted = counted
                if self.unmarked:
                    self.unmarked.discard(position.symbol)
                return
        elif settlement == "async":
            if side == "buy":
                position.pending_buy += quantity
            else:
                position.pending_sell += quantity
        self.recount(position)

    def settle(self, position: Position, side: Side, reserved: Decimal, filled: Decimal) -> None:
        """The outcome of a reserved order: ``filled`` of ``reserved`` was filled."""
        if side == "buy":
            position.pending_buy -= reserved
            position.filled += filled
        else:
            position.pending_sell -= reserved
            position.filled -= filled
        self.recount(position)

    def fill(self, position: Position, side: Side, quantity: Decimal) -> None:
        """An order filled as soon as it was accepted (nothing pending)."""
        position.filled += quantity if side == "buy" else -quantity
        self.recount(position)


class Book:
    """Every venue's positions."""

    def __init__(self) -> None:
        self.venues: dict[str, VenueBook] = {}

    def venue(self, name: str) -> VenueBook:
        """The book of venue ``name`` (created empty)."""
        book = self.venues.get(name)
        if book is None:
            book = self.venues[name] = VenueBook()
        return book

    def open_positions(self, venue: str | None = None) -> list[PositionView]:
        """Every non-flat position (or pending order), sorted by venue and symbol."""
        views = []
        for name in sorted(self.venues):
            if venue is not None and name != venue:
                continue
            for symbol, p in sorted(self.venues[name].positions.items()):
                if p.filled or p.pending_buy or p.pending_sell:
                    views.append(PositionView(name, symbol, p.filled, p.pending_buy,
                                              p.pending_sell, p.mark))
        return views
