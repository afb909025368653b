"""Helpers for live-plane tests: the fake exchanges, their markets and a live config.

Each exchange execd supports has a fake of its own, written from the exchange's
documentation; :data:`VENUES` says how a test runs execd against each one, so a
test parametrized over it proves a promise on every supported exchange.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async

from execd.venues.ccxt import exchanges
from execd.venues.ccxt.order_stream import rewrite_urls
from tests.fakes import binance as fake_binance
from tests.fakes import bybit as fake_bybit
from tests.fakes import okx as fake_okx
from tests.fakes.binance import FakeBinance
from tests.fakes.bybit import FakeBybit
from tests.fakes.okx import FakeOkx
from tests.helpers import control_socket, write_registry

D = Decimal
API_KEY = "test-api-key-00000000000000000001"
SECRET = "test-secret-000000000000000000001"
# OKX signs every private request with a passphrase besides the key and secret.
OKX_PASSPHRASE = "test-passphrase-0001"

LIVE_CONFIG = """
[daemon]
lakehouse = "{lakehouse}"
ledger_dir = "{ledger}"
poll_interval_ms = 20

[clock]
kind = "{clock}"

[log]
level = "{level}"
outcomes = "each"

[control]
socket = "{socket}"

[risk]
signatures = "none"

[venues.{exchange}]
plane = "live"
adapter = "ccxt"

[venues.{exchange}.ccxt]
exchange = "{exchange}"
credentials_file = "{credentials}"
base_url = "{url}"
rate_limit_ms = 0
timeout_ms = {timeout_ms}
poll_interval_ms = {poll_ms}
order_timeout_ms = {order_timeout_ms}
lookup_delay_ms = {lookup_delay_ms}
acceptance_window_ms = {acceptance_window_ms}
max_in_flight = {in_flight}
backlog = {backlog}
{ccxt_extra}

[venues.paper]
plane = "paper"
{extra}
"""


# ccxt keys a test may set; otherwise the product's defaults apply.
_OPTIONAL = ("send_attempts", "resend_window_ms", "drain_timeout_ms", "fee_reads",
             "fee_read_pause_ms", "markets_refresh_ms", "holdings_ms")


@dataclass(frozen=True)
class FakeVenue:
    """How tests run execd against one exchange's fake."""

    exchange: str
    # The fake's class, its Market class and its thread runner (FakeBinance's interface).
    fake: Callable[..., Any]
    market: Callable[..., Any]
    thread: Callable[[Any], Any]
    # The request that loads markets: made once per start of the daemon.
    markets_request: tuple[str, str]
    # Every endpoint execd may call on it.
    endpoints: frozenset[tuple[str, str]]
    # How much the fake says an order of its filled.
    filled: Callable[[Any], Decimal]
    password: str | None = None
    # The fees the fake charged an order of its, per currency (None: not checked).
    fees: Callable[[Any], dict[str, Decimal]] | None = None


def _binance_fees(order: Any) -> dict[str, Decimal]:
    charged: dict[str, Decimal] = {}
    for fill in order.fills:
        charged[fill.commissionAsset] = charged.get(fill.commissionAsset, D(0)) + fill.commission
    return charged


def _okx_fees(order: Any) -> dict[str, Decimal]:
    # OKX books a fee as a negative amount in feeCcy.
    return {order.feeCcy: -order.fee} if order.fee else {}


def _bybit_fees(order: Any) -> dict[str, Decimal]:
    charged: dict[str, Decimal] = {}
    for fill in order.fills:
        charged[fill.feeCurrency] = charged.get(fill.feeCurrency, D(0)) + fill.fee
    return charged


VENUES: dict[str, FakeVenue] = {
    "binance": FakeVenue(
        "binance", FakeBinance, fake_binance.Market, fake_binance.FakeBinanceThread,
        ("GET", "/api/v3/exchangeInfo"),
        frozenset({("GET", "/api/v3/exchangeInfo"), ("GET", "/api/v3/account"),
                   ("POST", "/api/v3/order"), ("GET", "/api/v3/order"),
                   ("DELETE", "/api/v3/order"), ("GET", "/api/v3/myTrades")}),
        lambda order: Decimal(order.executedQty), fees=_binance_fees),
    "okx": FakeVenue(
        "okx", FakeOkx, fake_okx.Market, fake_okx.FakeOkxThread,
        ("GET", "/api/v5/public/instruments"),
        frozenset({("GET", "/api/v5/public/instruments"), ("GET", "/api/v5/account/balance"),
                   ("GET", "/api/v5/public/time"),
                   ("POST", fake_okx.ORDER_PATH), ("GET", "/api/v5/trade/order"),
                   ("POST", "/api/v5/trade/cancel-order"),
                   ("GET", "/api/v5/trade/fills-history")}),
        lambda order: Decimal(order.accFillSz), password=OKX_PASSPHRASE,
        fees=_okx_fees),
    # A unified account's spot orders: markets in one request (no coin list), the
    # wallet for balances, orders looked up by orderLinkId through the list calls.
    "bybit": FakeVenue(
        "bybit", FakeBybit, fake_bybit.Market, fake_bybit.FakeBybitThread,
        ("GET", "/v5/market/instruments-info"),
        frozenset({("GET", "/v5/market/instruments-info"),
                   ("GET", "/v5/account/wallet-balance"), ("POST", "/v5/order/create"),
                   ("GET", "/v5/order/realtime"), ("GET", "/v5/order/history"),
                   ("POST", "/v5/order/cancel"), ("GET", "/v5/execution/list")}),
        lambda order: Decimal(order.cumExecQty), fees=_bybit_fees),
}


def markets(liquidity: Decimal | None = None, exchange: str = "binance") -> dict[str, Any]:
    """BTC/USDT at 50,000 and ETH/USDT at 3,000, with Binance-like filters."""
    Market = VENUES[exchange].market
    return {
        "BTC/USDT": Market("BTC", "USDT", step_size=D("0.00001"), min_qty=D("0.00001"),
                           max_qty=D("9000"), tick_size=D("0.01"), min_price=D("0.01"),
                           max_price=D("1000000"), min_notional=D("5"), price=D("50000"),
                           liquidity=liquidity),
        "ETH/USDT": Market("ETH", "USDT", step_size=D("0.0001"), min_qty=D("0.0001"),
                           max_qty=D("100000"), tick_size=D("0.01"), min_price=D("0.01"),
                           max_price=D("1000000"), min_notional=D("5"), price=D("3000")),
    }


def fake_exchange(liquidity: Decimal | None = None,
                  balances: dict[str, Decimal] | None = None, exchange: str = "binance") -> Any:
    """A fake ``exchange`` with :func:`markets` and ample balances unless told otherwise."""
    venue = VENUES[exchange]
    extra = {} if venue.password is None else {"passphrase": venue.password}
    return venue.fake(markets(liquidity, exchange), api_key=API_KEY, secret=SECRET,
                      balances=balances or {"BTC": D("1000"), "ETH": D("1000"),
                                            "USDT": D("100000000")}, **extra)


def write_live_config(directory: Path, url: str, exchange: str = "binance",
                      **overrides: Any) -> Path:
    """A live config under ``directory``: venue ``exchange`` on ``url``, venue paper beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    credentials = directory / f"{exchange}.json"
    secrets = {"apiKey": API_KEY, "secret": SECRET}
    if VENUES[exchange].password is not None:
        secrets["password"] = str(VENUES[exchange].password)
    credentials.write_text(json.dumps(secrets))
    values: dict[str, Any] = {
        "exchange": exchange, "lakehouse": directory / "lakehouse", "ledger": directory / "ledger",
        "socket": control_socket(directory), "credentials": credentials, "url": url,
        "level": "warning", "timeout_ms": 2000, "poll_ms": 20, "order_timeout_ms": 5000,
        "lookup_delay_ms": 20, "acceptance_window_ms": 300, "in_flight": 4, "backlog": 16,
        "clock": "logical", "extra": "",
    }
    # Keys left to the product's defaults unless a test sets them.
    optional = {key: overrides.pop(key) for key in _OPTIONAL if key in overrides}
    values["ccxt_extra"] = "".join(f"{key} = {value}\n" for key, value in optional.items())
    values.update(overrides)
    path = directory / "execd.toml"
    path.write_text(LIVE_CONFIG.format(**values))
    write_registry(Path(values["lakehouse"]))
    return path


def live_intent(n: int, **fields: Any) -> dict[str, Any]:
    """A critical (market) buy of 0.01 BTC with a stable id."""
    body: dict[str, Any] = {
        "kind": "intent", "intent_id": f"00000000-0000-4000-8000-{n:012d}",
        "source_run": "run-1", "venue": "binance", "symbol": "BTC/USDT", "side": "buy",
        "quantity": "0.01", "urgency": "critical", "reference_price": "50000",
    }
    body.update(fields)
    return body


async def place_directly(fake: Any, exchange: str, params: dict[str, Any]) -> None:
    """A resting limit buy of 0.01 BTC at 49,000 placed on ``fake`` by a plain ccxt client.

    Not through execd: it stands for an order an earlier run sent and lost the record
    of. ``params`` names the client order id the way the venue's API takes it.
    """
    settings: dict[str, Any] = {"apiKey": API_KEY, "secret": SECRET, "options": {
        **exchanges.exchange(exchange).options, "maxRetriesOnFailure": 0,
        "adjustForTimeDifference": False}}
    if VENUES[exchange].password is not None:
        settings["password"] = VENUES[exchange].password
    client = getattr(ccxt_async, exchange)(settings)
    client.has["fetchCurrencies"] = False
    client.timeout_on_exit = 0
    client.urls["api"] = rewrite_urls(client.urls["api"], fake.url)
    try:
        await client.load_markets()
        await client.create_order("BTC/USDT", "limit", "buy", 0.01, 49000, params)
    finally:
        await client.close()
