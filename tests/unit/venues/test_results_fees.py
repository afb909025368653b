"""The pure half of "fees right": what an order structure covers, and its trades' fees."""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec
from msgspec import Raw

from execd.model.messages import ExecutionOutcome, Fee, OrderRecord, encode
from execd.venues.ccxt.results import (
    KnownFees,
    fees_in_quote,
    fees_of_trades,
    fees_so_far,
    held_change,
    outcome_of_order,
    own_fees,
)

D = Decimal
RECORD = OrderRecord(intent_id=uuid.UUID(int=7), venue="binance", symbol="BTC/USDT",
                     side="buy", client_order_id="xabc", type="limit", amount=D("0.5"),
                     requested_quantity=D("0.5"), intent=Raw(b"{}"), price=D("100"))


def trade(trade_id: str, amount: float, cost: float | None, currency: str = "BTC") -> dict:
    fee = None if cost is None else {"cost": cost, "currency": currency}
    return {"id": trade_id, "amount": amount, "fee": fee, "fees": [fee] if fee else []}


def test_trades_sum_their_fees_per_currency_and_their_amounts() -> None:
    read = fees_of_trades([trade("1", 0.2, 0.0002), trade("2", 0.3, 0.0003),
                           trade("3", 0.1, 0.05, "BNB")])
    # 0.0002 + 0.0003 prints as 0.0005, not 0.00050.
    assert read == KnownFees((Fee(D("0.05"), "BNB"), Fee(D("0.0005"), "BTC")), D("0.6"))


def test_a_trade_listed_twice_counts_once_and_odd_replies_count_nothing() -> None:
    assert fees_of_trades([trade("1", 0.2, 0.0002), trade("1", 0.2, 0.0002)]) == KnownFees(
        (Fee(D("0.0002"), "BTC"),), D("0.2"))
    assert fees_of_trades(None) == KnownFees((), D(0))
    assert fees_of_trades(["x", {"amount": None, "fee": {"cost": None}}]) == KnownFees((), D(0))
    # A trade without a fee still counts toward the quantity: its fee was zero or none.
    assert fees_of_trades([trade("1", 0.5, None)]) == KnownFees((), D("0.5"))


def test_what_an_order_structure_covers() -> None:
    # Binance's order query: filled, no fees, no trades: covers nothing.
    assert own_fees({"filled": 0.5, "fees": [], "fee": None, "trades": []}) == KnownFees(
        (), D(0))
    # A FULL create reply covers the fills it lists.
    full = {"filled": 0.5, "trades": [trade("1", 0.2, 0.0002)],
            "fees": [{"cost": 0.0002, "currency": "BTC"}]}
    assert own_fees(full) == KnownFees((Fee(D("0.0002"), "BTC"),), D("0.2"))
    # A venue that reports the order's cumulative fee covers all it filled.
    assert own_fees({"filled": 0.5, "fee": {"cost": 0.1, "currency": "USDT"}}) == KnownFees(
        (Fee(D("0.1"), "USDT"),), D("0.5"))


def test_the_fees_that_cover_more_are_kept() -> None:
    own = KnownFees((Fee(D("1"), "BTC"),), D("0.2"))
    assert fees_so_far(own, None) is own
    assert fees_so_far(own, KnownFees((), D("0.1"))) is own
    more = KnownFees((Fee(D("2"), "BTC"),), D("0.2"))
    assert fees_so_far(own, more) is more


def test_an_outcome_takes_the_fees_it_is_given_and_the_mark() -> None:
    order = {"id": "1", "status": "closed", "filled": 0.5, "average": 100.0, "fees": []}
    fees = (Fee(D("0.0005"), "BTC"),)
    outcome = outcome_of_order(RECORD, order, execution_id="e", time=1, fees=fees,
                               fees_complete=False)
    assert (outcome.fees, outcome.fees_complete) == (fees, False)
    assert b'"fees_complete":false' in encode(outcome)
    # The position it books is the fill less the base-asset fee.
    assert held_change("BTC/USDT", "buy", outcome.filled_quantity, outcome.fees) == D("0.4995")


def test_complete_fees_leave_the_outcome_bytes_as_before() -> None:
    outcome = outcome_of_order(RECORD, {"id": "1", "status": "closed", "filled": 0.5},
                               execution_id="e", time=1)
    assert outcome.fees_complete and b"fees_complete" not in encode(outcome)
    # An outcome recorded before the field existed reads back complete.
    line = (b'{"execution_id":"e","intent_id":"00000000-0000-0000-0000-000000000007",'
            b'"status":"FILLED","filled_quantity":"0.5","logical_time":1,"plane":"live",'
            b'"fees":[["0.0005","BTC"]]}')
    old = msgspec.json.decode(line, type=ExecutionOutcome)
    assert old.fees_complete and old.fees == (Fee(D("0.0005"), "BTC"),)


def test_fees_in_the_quote_currency() -> None:
    price = D("64000.5")
    assert fees_in_quote("BTC/USDT", (Fee(D("0.1"), "USDT"),), price) == D("0.1")
    # A base fee at the average price, exactly (no rounding at 28 digits).
    base_fee = D("0.000012345678901234567890123456789")
    assert fees_in_quote("BTC/USDT", (Fee(base_fee, "BTC"), Fee(D("0.2"), "USDT")),
                         price) == D("0.9901296225184629622518462962243945")
    assert fees_in_quote("BTC/USDT:USDT", (Fee(D("1"), "USDT"),), None) == D("1")
    # A third currency (BNB) has no price here; none known is not zero.
    assert fees_in_quote("BTC/USDT", (Fee(D("0.1"), "USDT"), Fee(D("0.01"), "BNB")),
                         price) is None
    assert fees_in_quote("BTC/USDT", (), price) is None
    assert fees_in_quote("BTC/USDT", (Fee(D("0.1"), "BTC"),), None) is None
    order = {"id": "1", "status": "closed", "filled": 0.5, "average": 100.0,
             "fees": [{"cost": 0.0005, "currency": "BTC"}]}
    outcome = outcome_of_order(RECORD, order, execution_id="e", time=1)
    assert outcome.fees_quote == D("0.0005") * D("100.0")
