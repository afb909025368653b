"""Helpers for live-plane tests: the fake exchange's markets and a live config."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.fake_binance import FakeBinance, Market
from tests.helpers import control_socket, write_registry

D = Decimal
API_KEY = "test-api-key-00000000000000000001"
SECRET = "test-secret-000000000000000000001"

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

[venues.binance]
plane = "live"
adapter = "ccxt"

[venues.binance.ccxt]
exchange = "binance"
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
             "fee_read_pause_ms")


def markets(liquidity: Decimal | None = None) -> dict[str, Market]:
    """BTC/USDT at 50,000 and ETH/USDT at 3,000, with Binance-like filters."""
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
                  balances: dict[str, Decimal] | None = None) -> FakeBinance:
    """A fake Binance with :func:`markets` and ample balances unless told otherwise."""
    return FakeBinance(markets(liquidity), api_key=API_KEY, secret=SECRET,
                       balances=balances or {"BTC": D("1000"), "ETH": D("1000"),
                                             "USDT": D("100000000")})


def write_live_config(directory: Path, url: str, **overrides: Any) -> Path:
    """A live config under ``directory``: venue binance on ``url``, venue paper beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    credentials = directory / "binance.json"
    credentials.write_text(json.dumps({"apiKey": API_KEY, "secret": SECRET}))
    values: dict[str, Any] = {
        "lakehouse": directory / "lakehouse", "ledger": directory / "ledger",
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
