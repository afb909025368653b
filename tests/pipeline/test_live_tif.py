"""Time in force on the live plane, end to end: the daemon, the real ccxt and the fake
Binance (written from Binance's documentation: IOC and FOK on LIMIT orders, LIMIT_MAKER for
post-only). What the exchange lists is sent as ``timeInForce``; what an IOC or FOK could
not fill ends EXECUTION_EXPIRED; what the exchange or ccxt cannot honour is refused before
anything is sent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from execd.model import reasons
from tests.fakes.binance import FakeBinance
from tests.live import fake_exchange, live_intent
from tests.live_run import ORDER, outcome_of, requests_besides_start, run_live

D = Decimal


def limit(n: int, price: str, tif: str) -> dict[str, Any]:
    return live_intent(n, order_type="limit", limit_price=price, urgency="low",
                       execution={"time_in_force": tif})


@pytest.mark.parametrize(("price", "tif", "liquidity", "status", "filled"), [
    ("49000", "IOC", None, "FAILED", "0"),  # rests nowhere: expires unfilled
    ("51000", "IOC", D("0.004"), "PARTIALLY_FILLED", "0.004"),  # takes what is there
    ("51000", "FOK", D("0.004"), "FAILED", "0"),  # all or nothing: nothing
    ("51000", "FOK", None, "FILLED", "0.01"),
])
async def test_ioc_and_fok_go_to_the_venue_and_what_they_cannot_fill_expires(
        tmp_path: Path, price: str, tif: str, liquidity: Decimal | None, status: str,
        filled: str) -> None:
    fake = fake_exchange(liquidity=liquidity)
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [limit(1, price, tif)])
        [order] = fake.orders
    finally:
        await fake.stop()
    assert order.timeInForce == tif
    [record] = [r["body"] for r in ledger if r["kind"] == "order"]
    assert record["time_in_force"] == tif
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["filled_quantity"]) == (status, filled)
    if status != "FILLED":
        assert outcome["reason"] == reasons.EXECUTION_EXPIRED


async def test_post_only_by_time_in_force_is_a_maker_order(tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    try:
        await run_live(tmp_path, fake, [limit(1, "49000", "PO")], order_timeout_ms=200)
        [order] = fake.orders
    finally:
        await fake.stop()
    assert order.type == "LIMIT_MAKER"


@pytest.mark.parametrize(("intent", "detail"), [
    (limit(1, "49000", "GTD") | {"execution": {"time_in_force": "GTD", "expire_at": 2**62}},
     "ccxt passes no good-till-date"),
    (live_intent(1, execution={"time_in_force": "FOK"}), "a market order takes IOC or GTC"),
])
async def test_what_the_venue_cannot_honour_is_refused_and_nothing_is_sent(
        tmp_path: Path, intent: dict[str, Any], detail: str) -> None:
    fake = fake_exchange()
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [intent])
        sent = requests_besides_start(fake).get(ORDER, 0)
    finally:
        await fake.stop()
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"]) == (
        "REJECTED", reasons.EXECUTION_TIME_IN_FORCE_UNSUPPORTED)
    assert detail in outcome["detail"] and sent == 0


async def test_gtc_and_ioc_on_a_market_order_send_no_time_in_force(
        tmp_path: Path) -> None:
    fake: FakeBinance = fake_exchange()
    await fake.start()
    try:
        ledger = await run_live(tmp_path, fake, [
            live_intent(1, execution={"time_in_force": "IOC"}),
            live_intent(2, execution={"time_in_force": "GTC"})])
        orders = list(fake.orders)
    finally:
        await fake.stop()
    assert [o.type for o in orders] == ["MARKET", "MARKET"]
    assert all(r["body"].get("time_in_force") is None for r in ledger if r["kind"] == "order")
