"""Can it trade now (execd/venues/ccxt/tradability.py), pure: what a fetch_status reply
means, which markets are inactive, and why an order is not sent."""

from __future__ import annotations

from typing import Any

import pytest

from execd.model import reasons
from execd.venues.ccxt.prepare import MarketRules
from execd.venues.ccxt.tradability import Tradability, inactive, status_of


@pytest.mark.parametrize(("reply", "status"), [
    ({"status": "ok"}, "ok"), ({"status": "maintenance", "eta": 5}, "maintenance"),
    ({"status": "Shutdown"}, "shutdown"), ({"status": "error"}, "error"),
    # What an exchange says that ccxt does not map (binance's raw code): kept, not ok.
    ({"status": "2"}, "2"),
    # Nothing usable: the status as it was.
    ({}, "before"), ({"status": None}, "before"), ({"status": ""}, "before"),
    ({"status": "x" * 33}, "before"), ({"status": "main tenance!"}, "before"),
    ([1], "before"), (None, "before"), ({"status": 1}, "before"),
])
def test_a_status_reply_means_what_it_says_or_nothing(reply: Any, status: str) -> None:
    assert status_of(reply, "before") == status


def test_an_order_is_not_sent_in_maintenance_nor_for_an_inactive_market() -> None:
    assert Tradability().why_not("BTC/USDT") is None
    down = Tradability("maintenance").why_not("BTC/USDT")
    assert down is not None and down[0] == reasons.VENUE_MAINTENANCE and "maintenance" in down[1]
    halted = Tradability("ok", ("BTC/USDT",))
    assert halted.why_not("ETH/USDT") is None
    why = halted.why_not("BTC/USDT")
    assert why is not None and why[0] == reasons.VENUE_MARKET_INACTIVE


def test_the_inactive_markets_are_listed_in_order() -> None:
    def rule(symbol: str, active: bool) -> MarketRules:
        return MarketRules(symbol=symbol, active=active, amount_step=None, price_tick=None)

    rules = {s: rule(s, a) for s, a in (("ETH/USDT", False), ("BTC/USDT", True),
                                        ("ADA/USDT", False))}
    assert inactive(rules) == ("ADA/USDT", "ETH/USDT")
