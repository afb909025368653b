"""Fees right on the live plane: a fill the create reply did not carry has its fees
from the venue's trades of the order (the real ccxt against the fake Binance).

Binance's order query (GET /api/v3/order) carries no fees, so every order that
filled after its create reply, or was found by a lookup, reads its trades once
(GET /api/v3/myTrades?orderId=...); an order whose create reply listed all its
fills reads nothing more.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger.recovery import recover
from execd.model import reasons
from execd.sentinel.risk import Risk
from execd.service.control import Request
from tests.fakes.binance import FakeBinance
from tests.live import fake_exchange, live_intent
from tests.live_run import LOOKUP, ORDER, outcome_of, requests_besides_start, run_live

D = Decimal
MY_TRADES = ("GET", "/api/v3/myTrades")
CANCEL = ("DELETE", "/api/v3/order")
RESTING = {"order_type": "limit", "limit_price": "49000", "urgency": "low"}


def fill_resting(fake: FakeBinance, *parts: Decimal | None) -> Any:
    """A ``during`` hook: once an order rests, fill it in ``parts`` (None: the rest)."""
    async def fill(daemon: Daemon) -> None:
        while not fake.open_orders():
            await anyio.sleep(0.01)
        for part in parts:
            await anyio.sleep(0.05)
            fake.fill_resting("BTC/USDT", part)
    return fill


async def test_a_resting_limit_filled_later_has_the_fees_of_its_fills(
        tmp_path: Path, fake: FakeBinance) -> None:
    ledger = await run_live(tmp_path, fake, [live_intent(1, **RESTING)],
                            during=fill_resting(fake, D("0.004"), None))
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["filled_quantity"]) == ("FILLED", "0.01")
    # 0.000004 + 0.000006 BTC: a buy pays in the base asset.
    assert outcome["fees"] == [["0.00001", "BTC"]]
    assert "fees_complete" not in outcome
    # In the quote currency: the base fee at the order's average price.
    assert D(outcome["fees_quote"]) == D("0.00001") * D(outcome["average_price"]) > 0
    # One trades request for the order, after the polls that saw it fill.
    extra = requests_besides_start(fake)
    assert (extra[ORDER], extra[MY_TRADES]) == (1, 1)
    assert set(extra) == {ORDER, LOOKUP, MY_TRADES}


async def test_a_partial_fill_cancelled_after_the_order_timeout_has_its_fee(
        tmp_path: Path, fake: FakeBinance) -> None:
    ledger = await run_live(tmp_path, fake, [live_intent(1, **RESTING)],
                            during=fill_resting(fake, D("0.004")), order_timeout_ms=600)
    outcome = outcome_of(ledger)
    assert (outcome["status"], outcome["reason"], outcome["filled_quantity"]) == (
        "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED, "0.004")
    assert outcome["fees"] == [["0.000004", "BTC"]]
    extra = requests_besides_start(fake)
    assert (extra[CANCEL], extra[MY_TRADES]) == (1, 1)


async def test_an_order_that_ends_with_nothing_filled_reads_no_trades(
        tmp_path: Path, fake: FakeBinance) -> None:
    # A guard beside the fix: nothing filled, nothing to read.
    ledger = await run_live(tmp_path, fake, [live_intent(1, **RESTING)], order_timeout_ms=200)
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FAILED" and "fees" not in outcome
    assert "fees_complete" not in outcome
    assert MY_TRADES not in requests_besides_start(fake)


@pytest.mark.parametrize("fault", ["lost_reply", "timeout", "503_json_placed"])
async def test_an_order_found_after_an_unanswered_send_has_its_fee(
        tmp_path: Path, fake: FakeBinance, fault: str) -> None:
    fake.inject(fault, delay=3.0)
    ledger = await run_live(tmp_path, fake, [live_intent(1)], timeout_ms=1000)
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FILLED"
    assert outcome["fees"] == [["0.00001", "BTC"]]
    assert requests_besides_start(fake) == {ORDER: 1, LOOKUP: 1, MY_TRADES: 1}


async def test_an_order_reconciled_at_start_up_has_its_fee(tmp_path: Path,
                                                           fake: FakeBinance) -> None:
    # The reply never comes and the drain bound cuts the send: the order is left in
    # doubt. The next start finds it filled by its client id and reads its trades.
    fake.inject("timeout", delay=5.0)

    async def stop_once_sent(daemon: Daemon) -> None:
        while not fake.orders:
            await anyio.sleep(0.01)

    ledger = await run_live(tmp_path, fake, [live_intent(1)], expect=0,
                            during=stop_once_sent, drain_timeout_ms=100)
    assert not [r for r in ledger if r["kind"] == "outcome"]
    ledger = await run_live(tmp_path, fake, [], expect=1, name="b.jsonl")
    outcome = outcome_of(ledger)
    assert outcome["status"] == "FILLED" and outcome["fees"] == [["0.00001", "BTC"]]
    assert fake.requests[MY_TRADES] == 1


async def test_a_buy_fee_in_the_base_asset_reduces_the_position_the_sentinel_books(
        tmp_path: Path) -> None:
    # The account holds no BTC before the resting buy: after it, exactly 0.01 less
    # the fee. A Safety Sell of the booked position sells exactly that (booking the
    # gross 0.01 would ask for more than the account holds and be refused).
    fake = fake_exchange(balances={"BTC": D("0"), "USDT": D("1000000")})
    await fake.start()
    answers: list[dict[str, Any]] = []
    booked: list[dict[str, Any]] = []
    filled = fill_resting(fake, None)

    async def fill_then_safety_sell(daemon: Daemon) -> None:
        await filled(daemon)
        # The sentinel books the fill once its outcome is durable (until then the
        # order counts as pending in full): wait for that, and see what it booked.
        while True:
            status = await daemon._command(Request("status"))
            [view] = status["positions"]
            if not D(view.get("pending_buy", "0")):
                break
            await anyio.sleep(0.01)
        booked.extend(status["positions"])
        answers.append(await daemon._command(
            Request("safety-sell", venue="binance", reason="flatten", actor="ops")))

    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1, **RESTING)],
                                during=fill_then_safety_sell, expect=2)
    finally:
        await fake.stop()
    assert all(answer["ok"] for answer in answers), answers
    assert [(p["symbol"], p["position"]) for p in booked] == [("BTC/USDT", "0.00999")]
    assert outcome_of(ledger)["fees"] == [["0.00001", "BTC"]]
    [exit_] = [r["body"] for r in ledger if r["kind"] == "outcome"
               and r["body"]["side"] == "sell"]
    assert (exit_["status"], exit_["filled_quantity"]) == ("FILLED", "0.00999")
    # A sell pays in the quote asset: the fee in quote is the fee itself.
    [[cost, currency]] = exit_["fees"]
    assert currency == "USDT" and D(exit_["fees_quote"]) == D(cost)
    assert fake.balance("BTC").free == 0
    risk = Risk(config.load(tmp_path / "execd.toml").config)
    recover(tmp_path / "ledger", repair=False, risk=risk)
    assert risk.book.open_positions("binance") == []


async def test_trades_that_cannot_be_read_leave_the_fees_marked_incomplete(
        tmp_path: Path, fake: FakeBinance) -> None:
    fake.inject("503_json", method="GET", path="/api/v3/myTrades", times=2)
    with capture_logs() as logged:
        ledger = await run_live(tmp_path, fake, [live_intent(1, **RESTING)],
                                during=fill_resting(fake, None), fee_reads=2,
                                fee_read_pause_ms=20)
    outcome = outcome_of(ledger)
    # The outcome is still written, with the fees known so far (none) and the mark.
    assert (outcome["status"], outcome["fees_complete"]) == ("FILLED", False)
    assert outcome.get("fees", []) == []
    assert requests_besides_start(fake)[MY_TRADES] == 2
    [warned] = [e for e in logged if e["event"] == "order.fees_incomplete"]
    assert (warned["reads"], warned["covered"], warned["filled"]) == (2, "0", "0.01")
    assert "-1001" in warned["why"]


async def test_a_trade_list_that_lags_the_order_is_read_again(tmp_path: Path,
                                                             fake: FakeBinance) -> None:
    fake.inject("stale_trades", method="GET", path="/api/v3/myTrades")
    ledger = await run_live(tmp_path, fake, [live_intent(1, **RESTING)],
                            during=fill_resting(fake, D("0.004"), None), fee_read_pause_ms=20)
    outcome = outcome_of(ledger)
    assert outcome["fees"] == [["0.00001", "BTC"]] and "fees_complete" not in outcome
    assert requests_besides_start(fake)[MY_TRADES] == 2


async def test_a_trade_list_still_short_after_every_read_keeps_what_it_showed(
        tmp_path: Path, fake: FakeBinance) -> None:
    fake.inject("stale_trades", method="GET", path="/api/v3/myTrades", times=3)
    ledger = await run_live(tmp_path, fake, [live_intent(1, **RESTING)],
                            during=fill_resting(fake, D("0.004"), None), fee_read_pause_ms=20)
    outcome = outcome_of(ledger)
    assert (outcome["fees"], outcome["fees_complete"]) == ([["0.000004", "BTC"]], False)
    assert requests_besides_start(fake)[MY_TRADES] == 3  # fee_reads' default


async def test_fills_listed_in_the_create_reply_need_no_trades_request(
        tmp_path: Path) -> None:
    # A market buy's FULL reply lists its fill: no request. A limit that crossed for
    # 0.004 at once (its reply lists that fill) and rested for the rest, filled later,
    # reads its trades: the reply's fills do not cover what it filled in the end.
    fake = fake_exchange(liquidity=D("0.004"))
    await fake.start()
    crossing = live_intent(2, order_type="limit", limit_price="50000", urgency="low")
    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1, quantity="0.004"), crossing],
                                during=fill_resting(fake, None))
    finally:
        await fake.stop()
    assert outcome_of(ledger, 1)["fees"] == [["0.000004", "BTC"]]
    assert outcome_of(ledger, 2)["filled_quantity"] == "0.01"
    assert outcome_of(ledger, 2)["fees"] == [["0.00001", "BTC"]]
    assert requests_besides_start(fake)[MY_TRADES] == 1
    assert fake.requests[ORDER] == 2
