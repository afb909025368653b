"""Prepare (seed 001) and reading a venue's order back: the pure halves of the live plane."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import Raw

from execd.model import ids, reasons
from execd.model.messages import Accepted, Constraints, Fee, OrderIntent, OrderRecord
from execd.venues.ccxt.prepare import (
    MarketRules,
    OrderPlan,
    prepare,
    round_down,
    round_price,
    rules_from_market,
)
from execd.venues.ccxt.results import (
    fees_of,
    held_change,
    not_executed,
    outcome_of_order,
    slippage_bps,
)

D = Decimal
RULES = MarketRules(symbol="BTC/USDT", active=True, amount_step=D("0.001"),
                    price_tick=D("0.01"), min_amount=D("0.001"), max_amount=D("100"),
                    min_price=D("0.01"), max_price=D("1000000"), min_cost=D("10"),
                    max_cost=D("5000000"), post_only=True, reduce_only=False)


def accepted(side: str = "buy", **fields: Any) -> Accepted:
    base: dict[str, Any] = {"venue": "binance", "symbol": "BTC/USDT", "quantity": D("0.5"),
                            "source_run": "r1", "side": side}
    base.update(fields)
    intent = OrderIntent(**base)
    return Accepted(seq=0, time=0, source=None, intent=intent, raw=b"{}",
                    intent_id=uuid.UUID(int=7), side=side, plane="live")  # type: ignore[arg-type]


def test_critical_urgency_takes_the_market() -> None:
    plan = prepare(accepted(urgency="critical", reference_price=D("50000")), RULES, 50)
    assert plan == OrderPlan("market", D("0.5"), None, False, False)


def test_other_urgencies_limit_at_the_reference_moved_by_the_slippage() -> None:
    buy = prepare(accepted(reference_price=D("50000"),
                           constraints=Constraints(max_slippage_bps=20)), RULES, 50)
    sell = prepare(accepted("sell", reference_price=D("50000")), RULES, 50)
    assert buy == OrderPlan("limit", D("0.5"), D("50100.00"), False, False, None,
                            ("limit_from_reference",))
    # The venue's default (50 bps) when the intent sets none.
    assert sell == OrderPlan("limit", D("0.5"), D("49750.00"), False, False, None,
                             ("limit_from_reference",))


def test_without_a_reference_price_a_market_order() -> None:
    plan = prepare(accepted(), RULES, 50)
    assert isinstance(plan, OrderPlan) and plan.type == "market"


def test_an_explicit_limit_keeps_its_price_on_the_tick_grid_on_the_safe_side() -> None:
    buy = prepare(accepted(order_type="limit", limit_price=D("100.019")), RULES, 50)
    sell = prepare(accepted("sell", order_type="limit", limit_price=D("100.011")), RULES, 50)
    assert isinstance(buy, OrderPlan) and buy.price == D("100.01")
    assert isinstance(sell, OrderPlan) and sell.price == D("100.02")


def test_amount_is_truncated_to_the_lot_size() -> None:
    plan = prepare(accepted(quantity=D("0.123456"), reference_price=D("50000")), RULES, 0)
    assert isinstance(plan, OrderPlan) and plan.amount == D("0.123")
    assert round_down(D("0.0009"), D("0.001")) == 0
    assert round_price(D("5.555"), None, "buy") == D("5.555")


def test_below_the_minimum_amount_is_skipped_below_floor() -> None:
    plan = prepare(accepted(quantity=D("0.0009"), reference_price=D("50000")), RULES, 0)
    assert plan == ("SKIPPED", reasons.BELOW_FLOOR,
                    "amount=0.000 (quantity=0.0009 rounded down to step=0.001) < "
                    "min_amount=0.001")


def test_below_the_minimum_notional_is_skipped_with_the_numbers() -> None:
    plan = prepare(accepted(quantity=D("0.002"), reference_price=D("4000")), RULES, 0)
    assert plan == ("SKIPPED", reasons.BELOW_FLOOR,
                    "notional=8.000 (amount=0.002 x price=4000) < min_notional=10")


def test_notional_is_checked_on_the_rounded_values() -> None:
    # 0.0025 x 4000 = 10 passes before rounding; 0.002 x 4000 = 8 does not.
    plan = prepare(accepted(quantity=D("0.0025"), reference_price=D("4000"),
                            urgency="critical"), RULES, 0)
    assert isinstance(plan, tuple) and plan[1] == reasons.BELOW_FLOOR


def test_over_the_venue_maximums_is_refused() -> None:
    too_big = prepare(accepted(quantity=D("101")), RULES, 0)
    too_dear = prepare(accepted(quantity=D("99"), reference_price=D("60000")), RULES, 0)
    bad_price = prepare(accepted(order_type="limit", limit_price=D("2000000")), RULES, 0)
    assert too_big == ("REJECTED", reasons.VENUE_LIMIT_EXCEEDED,
                       "amount=101 > max_amount=100")
    assert isinstance(too_dear, tuple) and too_dear[1] == reasons.VENUE_LIMIT_EXCEEDED
    assert "max_notional=5000000" in too_dear[2]
    assert isinstance(bad_price, tuple) and "max_price=1000000" in bad_price[2]


def test_an_unknown_symbol_is_refused_and_an_inactive_one_skipped() -> None:
    assert prepare(accepted(), None, 0) == (
        "REJECTED", reasons.VENUE_SYMBOL_UNKNOWN, "symbol=BTC/USDT is not listed on venue binance")
    halted = MarketRules(symbol="BTC/USDT", active=False, amount_step=None, price_tick=None)
    assert prepare(accepted(), halted, 0) == (
        "SKIPPED", reasons.VENUE_MARKET_INACTIVE,
        "symbol=BTC/USDT: the market is not active on venue binance")


def test_reduce_only_and_post_only_where_unsupported_are_refused() -> None:
    spot = prepare(accepted(constraints=Constraints(reduce_only=True)), RULES, 0)
    market_post = prepare(accepted(urgency="critical", reference_price=D("50000"),
                                   constraints=Constraints(post_only=True)), RULES, 0)
    no_post = MarketRules(symbol="BTC/USDT", active=True, amount_step=None, price_tick=None)
    venue_post = prepare(accepted(order_type="limit", limit_price=D("1"),
                                  constraints=Constraints(post_only=True)), no_post, 0)
    assert spot[1] == reasons.VENUE_CONSTRAINT_UNSUPPORTED  # type: ignore[index]
    assert market_post == ("REJECTED", reasons.VENUE_CONSTRAINT_UNSUPPORTED,
                           "post_only: a market order cannot be post-only")
    assert venue_post[2] == ("post_only: venue binance does not support "  # type: ignore[index]
                             "post-only orders")


def test_post_only_and_reduce_only_pass_where_supported() -> None:
    contract = MarketRules(symbol="BTC/USDT", active=True, amount_step=None, price_tick=None,
                           post_only=True, reduce_only=True)
    plan = prepare(accepted(order_type="limit", limit_price=D("100"),
                            constraints=Constraints(post_only=True, reduce_only=True)),
                   contract, 0)
    assert plan == OrderPlan("limit", D("0.5"), D("100"), True, True, None,
                             ("post_only", "reduce_only"))


def test_rules_from_a_ccxt_market() -> None:
    market = {"symbol": "BTC/USDT", "active": True,
              "precision": {"amount": 1e-05, "price": 0.01},
              "limits": {"amount": {"min": 1e-05, "max": 9000.0}, "price": {"min": 0.01},
                         "cost": {"min": 5.0, "max": None}}}
    rules = rules_from_market(market, tick_precision=True, post_only=True, reduce_only=False)
    assert (rules.amount_step, rules.price_tick, rules.min_amount, rules.min_cost,
            rules.max_cost) == (D("0.00001"), D("0.01"), D("0.00001"), D("5.0"), None)
    digits = rules_from_market({**market, "precision": {"amount": 3, "price": 2}},
                               tick_precision=False, post_only=False, reduce_only=False)
    assert (digits.amount_step, digits.price_tick) == (D("0.001"), D("0.01"))


def test_client_order_ids_are_stable_short_and_plain() -> None:
    one = ids.client_order_id(uuid.UUID(int=1), "binance", "x", 32)
    assert one == ids.client_order_id(uuid.UUID(int=1), "binance", "x", 32)
    assert one != ids.client_order_id(uuid.UUID(int=2), "binance", "x", 32)
    assert one != ids.client_order_id(uuid.UUID(int=1), "kraken", "x", 32)
    assert len(one) == 32 and one.startswith("x") and one[1:].isalnum()


RECORD = OrderRecord(intent_id=uuid.UUID(int=3), venue="binance", symbol="BTC/USDT",
                     side="buy", client_order_id="xabc", type="limit", amount=D("0.5"),
                     requested_quantity=D("0.5"), intent=Raw(b"{}"), price=D("100"),
                     reference_price=D("99.5"))
# Asked for 0.5004; the lot size (0.001) made the order 0.5.
ROUNDED = msgspec.structs.replace(RECORD, requested_quantity=D("0.5004"))


def test_a_filled_order_records_price_fees_and_slippage() -> None:
    order = {"id": "42", "status": "closed", "filled": 0.5, "average": 100.0,
             "fees": [{"cost": 0.0004, "currency": "BTC"}, {"cost": 0.0001, "currency": "BTC"},
                      {"cost": 0.01, "currency": "BNB"}]}
    outcome = outcome_of_order(RECORD, order, execution_id="e", time=9)
    assert (outcome.status, outcome.filled_quantity, outcome.average_price) == (
        "FILLED", D("0.5"), D("100.0"))
    assert [(f.currency, f.cost) for f in outcome.fees] == [("BNB", D("0.01")),
                                                            ("BTC", D("0.0005"))]
    assert outcome.slippage_bps == D("50.25")  # paid 100 against 99.5
    assert (outcome.venue_order_id, outcome.client_order_id) == ("42", "xabc")
    assert (outcome.requested_quantity, outcome.sent_quantity) == (D("0.5"), D("0.5"))
    assert outcome.reason is None and outcome.detail is None


def test_an_order_rounded_below_the_request_is_not_filled_when_it_fills_in_full() -> None:
    # Seed 000: FILLED means the requested quantity. The order filled all it asked
    # for, but rounding to the lot size had made it ask for less than the intent.
    order = {"id": "42", "status": "closed", "filled": 0.5, "average": 100.0}
    outcome = outcome_of_order(ROUNDED, order, execution_id="e", time=9)
    assert (outcome.status, outcome.reason) == ("PARTIALLY_FILLED",
                                                reasons.EXECUTION_LOT_ROUNDED)
    assert (outcome.requested_quantity, outcome.sent_quantity, outcome.filled_quantity) == (
        D("0.5004"), D("0.5"), D("0.5"))
    assert outcome.detail == ("filled=0.5 of requested=0.5004: the order was for amount=0.5 "
                              "(the requested quantity rounded down to the lot size) and "
                              "filled in full")
    # Short of its own amount too: the venue's ending is the reason, with all three numbers.
    short = outcome_of_order(ROUNDED, {"status": "expired", "filled": 0.2, "cost": 20.0},
                             execution_id="e", time=9)
    assert (short.status, short.reason) == ("PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED)
    assert short.detail == "filled=0.2 of amount=0.5 (requested=0.5004) (venue status expired)"


def test_partial_and_empty_endings() -> None:
    partial = outcome_of_order(RECORD, {"status": "canceled", "filled": 0.2, "cost": 19.0},
                               execution_id="e", time=1, cancelled_by_us=True)
    expired = outcome_of_order(RECORD, {"status": "expired", "filled": 0.0},
                               execution_id="e", time=1)
    rejected = outcome_of_order(RECORD, {"status": "rejected", "filled": None},
                                execution_id="e", time=1)
    assert (partial.status, partial.reason, partial.average_price) == (
        "PARTIALLY_FILLED", reasons.EXECUTION_EXPIRED, D("95"))
    assert partial.detail == ("filled=0.2 of amount=0.5 (cancelled by execd after "
                              "order_timeout_ms)")
    assert (expired.status, expired.reason) == ("FAILED", reasons.EXECUTION_EXPIRED)
    assert (rejected.status, rejected.reason) == ("FAILED", reasons.EXECUTION_REJECTED)
    failed = not_executed(RECORD, execution_id="e", time=1,
                          reason=reasons.EXECUTION_NOT_AVAILABLE, detail="down")
    assert (failed.status, failed.filled_quantity, failed.client_order_id) == (
        "FAILED", 0, "xabc")


def test_slippage_sign_is_worse_for_the_side() -> None:
    assert slippage_bps("sell", D("99"), D("100")) == D("100.00")
    assert slippage_bps("sell", D("101"), D("100")) == D("-100.00")
    assert slippage_bps("buy", D("1"), None) is None
    assert fees_of({"fee": {"cost": 1.5, "currency": "USDT"}})[0].cost == D("1.5")


def test_classify_reads_the_cause_then_the_reply_then_the_class() -> None:
    import aiohttp
    from ccxt.base import errors

    from execd.venues.ccxt.exchanges import BINANCE, Reply
    from execd.venues.ccxt.venue import classify, message_of

    def wrapped(exc: Exception, cause: BaseException) -> Exception:
        exc.__cause__ = cause
        return exc

    def judge(exc: BaseException, reply: Reply | None = None) -> str:
        return classify(exc, BINANCE, reply)

    refused = aiohttp.ClientConnectorError(
        connection_key=None, os_error=OSError(111, "refused"))  # type: ignore[arg-type]
    assert judge(wrapped(errors.ExchangeNotAvailable("x"), refused)) == "unreachable"
    assert judge(wrapped(errors.ExchangeNotAvailable("x"),
                         aiohttp.ServerDisconnectedError())) == "unknown"
    # ccxt turns other aiohttp errors into a bare ExchangeError: not a refusal.
    assert judge(wrapped(errors.ExchangeError("x"), aiohttp.ClientPayloadError())) == "unknown"
    # With the venue's reply, its status and code decide.
    assert judge(errors.InsufficientFunds("x"), Reply(400, "-2010", "insufficient")) == (
        "rejected")
    assert judge(errors.BadRequest("x"), Reply(400, "-1013", "Filter failure: NOTIONAL")) == (
        "rejected")
    assert judge(errors.InvalidOrder("x"), Reply(400, "-2010", "Duplicate order sent.")) == (
        "exists")
    assert judge(errors.ExchangeError("x"), Reply(503, "-1008", "Server busy")) == "unknown"
    # Without one: ccxt's local refusals sent nothing; the rest may have reached it.
    assert judge(errors.ArgumentsRequired("x")) == "rejected"
    assert judge(errors.OperationFailed("503")) == "unknown"
    assert judge(errors.RequestTimeout("t")) == "unknown"
    assert judge(errors.RateLimitExceeded("429")) == "unknown"
    assert judge(RuntimeError("?")) == "unknown"
    assert message_of(errors.ExchangeError("binance GET http://h/api/v3/order?signature=ab")) \
        == "ExchangeError: binance GET http://h/api/v3/order"


def test_the_position_a_fill_leaves_is_net_of_fees_in_the_base_asset() -> None:
    btc = (Fee(D("0.001"), "BTC"), Fee(D("2"), "USDT"))
    assert held_change("BTC/USDT", "buy", D("1"), btc) == D("0.999")
    assert held_change("BTC/USDT", "sell", D("1"), btc) == D("1.001")
    assert held_change("BTC/USDT", "buy", D("1"), (Fee(D("2"), "USDT"),)) == D("1")
    # Contracts hold no base asset: the fill is the position change.
    assert held_change("BTC/USDT:USDT", "buy", D("1"), btc) == D("1")


def test_a_time_in_force_goes_to_the_venue_only_where_it_lists_it() -> None:
    from execd.model.messages import Execution

    ioc_fok = msgspec.structs.replace(RULES, times_in_force=frozenset({"IOC", "FOK"}))
    only_ioc = msgspec.structs.replace(RULES, times_in_force=frozenset({"IOC"}))

    def plan(tif: str, rules: MarketRules, order_type: str = "limit") -> Any:
        return prepare(accepted(order_type=order_type, limit_price=D("100"),
                                execution=Execution(time_in_force=tif)), rules, 50)

    assert plan("IOC", ioc_fok).time_in_force == "IOC"
    assert plan("FOK", ioc_fok).time_in_force == "FOK"
    assert plan("GTC", ioc_fok).time_in_force is None
    po = plan("PO", RULES)
    assert (po.post_only, po.time_in_force) == (True, None)
    assert plan("IOC", ioc_fok, "market").time_in_force is None
    for tif, rules, order_type, why in (
            ("FOK", only_ioc, "limit", "does not support it (supported: GTC, IOC)"),
            ("GTD", ioc_fok, "limit", "ccxt passes no good-till-date"),
            ("FOK", ioc_fok, "market", "a market order takes IOC or GTC only"),
            ("PO", ioc_fok, "market", "a market order cannot be post-only")):
        status, reason, detail = plan(tif, rules, order_type)
        assert status == "REJECTED" and why in detail, detail
        assert reason in (reasons.EXECUTION_TIME_IN_FORCE_UNSUPPORTED,
                          reasons.VENUE_CONSTRAINT_UNSUPPORTED)
