"""Can a venue trade a symbol now (seed 001's ``can_trade_now``; README, "Can it trade
now"), sans I/O.

A ccxt venue reads its market rules again, and its status where ccxt offers
``fetchStatus``, every ``markets_refresh_ms``. This module decides what the answers
mean: the venue's status (``ok``, ``maintenance``, ``shutdown``, ``error``, or what
else the exchange said), the symbols whose market is not active, and so why an order
for a symbol is not sent. An order that cannot trade now is SKIPPED before anything is
sent, with its own reason, instead of being sent and rejected. A read that fails
changes nothing: a venue that cannot be asked is not in maintenance by that alone
(its orders fail, and count, as they would).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec import Struct

from execd.model import reasons

OK = "ok"
_KNOWN = frozenset(("ok", "maintenance", "shutdown", "error"))


class Tradability(Struct, frozen=True):
    """What the last reads found: the venue's status and its inactive symbols (sorted)."""

    status: str = OK
    inactive: tuple[str, ...] = ()

    def why_not(self, symbol: str) -> tuple[str, str] | None:
        """(reason, detail) when ``symbol`` cannot trade now; None when it can (or the
        venue does not list it: that is the order's VENUE_SYMBOL_UNKNOWN)."""
        if self.status != OK:
            return (reasons.VENUE_MAINTENANCE,
                    f"the venue's status is {self.status!r} (fetch_status), not 'ok'")
        if symbol in self.inactive:
            return (reasons.VENUE_MARKET_INACTIVE,
                    f"symbol={symbol}: the venue's market is not active (market rules "
                    f"as last read)")
        return None


def status_of(reply: Any, before: str) -> str:
    """The status a ``fetch_status`` reply gives: its ``status`` in lower case (a word
    of at most 32 characters); ``before`` when the reply says nothing usable."""
    if not isinstance(reply, Mapping):
        return before
    status = reply.get("status")
    if not isinstance(status, str) or not status or len(status) > 32:
        return before
    status = status.strip().lower()
    return status if status in _KNOWN or status.isalnum() else before


def inactive(rules: Mapping[str, Any]) -> tuple[str, ...]:
    """The symbols of ``rules`` (symbol -> MarketRules) whose market is not active."""
    return tuple(sorted(symbol for symbol, rule in rules.items() if not rule.active))
