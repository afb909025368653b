"""Safety Sell (README, The Risk Sentinel): exit intents that flatten a venue's open positions.

Pure: given the book, it says which orders would bring each position back to flat,
as intents with ids derived from how many Safety Sells the ledger holds, so the
same ledger always yields the same exits and no exit id is ever used twice.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from execd.model import ids
from execd.model.messages import OrderIntent, Side
from execd.sentinel.book import Book

SOURCE_RUN = "safety-sell"


def exit_intents(book: Book, venue: str, symbol: str | None, reason: str, actor: str,
                 number: int) -> list[tuple[OrderIntent, Side]]:
    """One EMERGENCY_EXIT intent per open position of ``venue`` (or of ``symbol`` only).

    The quantity is the position as it will stand once every pending order fills;
    a long is sold, a short is bought back. ``number`` counts the Safety Sells the
    ledger already holds (rebuilt at start-up), which makes the intent ids unique
    across restarts and reproducible from the ledger.
    """
    held = []
    for view in book.open_positions(venue):
        if symbol is not None and view.symbol != symbol:
            continue
        expected = view.position + view.pending_buy - view.pending_sell
        if expected:
            held.append((view.symbol, expected))
    return exits_of(held, venue, reason, actor, number)


def exits_of(held: list[tuple[str, Decimal]], venue: str, reason: str, actor: str,
             number: int) -> list[tuple[OrderIntent, Side]]:
    """The exit intent of each (symbol, signed quantity) of ``held``: a long sold, a
    short bought back (``exit_intents``; or what the venue holds, README "Safety Sell")."""
    exits: list[tuple[OrderIntent, Side]] = []
    for symbol, expected in held:
        side: Side = "sell" if expected > 0 else "buy"
        intent_id = uuid.UUID(ids.uuid5(ids.SAFETY_NS, f"{number}|{venue}|{symbol}".encode()))
        exits.append((OrderIntent(
            venue=venue, symbol=symbol, quantity=abs(expected), source_run=SOURCE_RUN,
            intent_id=intent_id, side=side, action="EMERGENCY_EXIT", urgency="critical",
            priority=100, reason_codes=("SAFETY_SELL",),
            context={"actor": actor, "reason": reason},
        ), side))
    return exits
