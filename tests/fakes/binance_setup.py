"""The fake Binance as its tests set it up: one BTC/USDT market, a key and secret, and the
ccxt options the daemon gives its binance instance (tests/fakes/test_binance.py, and the
order stream's unit tests)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fakes.binance import FakeBinance, Market

KEY = "test-api-key"
SECRET = "test-api-secret"
SYMBOL = "BTC/USDT"
OPTIONS = {
    "fetchCurrencies": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "maxRetriesOnFailure": 0,
}


def btc_usdt(**overrides: Any) -> Market:
    """The BTC/USDT market, with ``overrides``."""
    fields: dict[str, Any] = {
        "base": "BTC", "quote": "USDT",
        "step_size": Decimal("0.00001"), "min_qty": Decimal("0.00001"),
        "max_qty": Decimal("9000"),
        "tick_size": Decimal("0.01"), "min_price": Decimal("0.01"),
        "max_price": Decimal("1000000"),
        "min_notional": Decimal("5"), "price": Decimal("50000"),
    }
    fields.update(overrides)
    return Market(**fields)


def new_fake(**market: Any) -> FakeBinance:
    """A fake Binance (not started) with BTC/USDT (``market`` overrides) and a funded account."""
    return FakeBinance(
        {SYMBOL: btc_usdt(**market)}, api_key=KEY, secret=SECRET,
        balances={"BTC": Decimal("1"), "USDT": Decimal("100000")},
    )
