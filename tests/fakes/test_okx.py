"""The fake OKX server, driven by the real ccxt okx class (4.5.90) over HTTP.

What ccxt raises for each reply is pinned in ``test_error_maps_to_ccxt_exception``
(``type(error) is``, not isinstance).  Findings worth knowing before trusting an
exception class on OKX:

- ``load_markets()`` costs two requests (GET /public/instruments and GET
  /asset/currencies), whatever ``options['fetchCurrencies']`` says: ccxt checks
  ``has['fetchCurrencies']``.
- ``create_order`` posts to /trade/batch-orders (a one-element array) by default;
  the reply has no state, so the order comes back with ``status`` None.
- A lookup by client id is ``fetch_order(None, symbol, {'clientOrderId': X})``
  (ccxt sends ``clOrdId``); the symbol is required (ArgumentsRequired without it).
- The fees of an order come from ``fetch_order_trades(id, symbol)`` (GET
  /trade/fills-history?instType=SPOT&ordId=...), or the order's own ``fee``.
- Unknown JSON codes are a bare ``ExchangeError`` whatever the HTTP status: 51149
  (documented HTTP 500, "does not mean that the request was successful or
  failed") among them.  50004 (HTTP 400, result unknown) is ``RequestTimeout``.
- An HTTP 200 whose body is not JSON is returned as an order with id None.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.async_support as accxt
import pytest

from tests.fakes.okx import (
    ORDER_PATH,
    Balance,
    FakeOkx,
    FakeOkxOrder,
    FakeOkxThread,
    Market,
    rewrite_urls,
)

KEY = "test-api-key"
SECRET = "test-api-secret"
PASSPHRASE = "test-passphrase"
SYMBOL = "BTC/USDT"
OPTIONS = {
    "fetchCurrencies": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "maxRetriesOnFailure": 0,
}


def btc_usdt(**overrides: Any) -> Market:
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


def new_fake(**market: Any) -> FakeOkx:
    return FakeOkx(
        {SYMBOL: btc_usdt(**market)}, api_key=KEY, secret=SECRET, passphrase=PASSPHRASE,
        balances={"BTC": Decimal("1"), "USDT": Decimal("100000")},
    )


def client(fake: FakeOkx, *, sync: bool = False, **settings: Any) -> Any:
    """A ccxt okx client set up as the daemon sets it up, pointed at ``fake``."""
    config: dict[str, Any] = {
        "apiKey": KEY, "secret": SECRET, "password": PASSPHRASE, "enableRateLimit": False,
        "timeout": 2000, "options": dict(OPTIONS)}
    config.update(settings)
    exchange = ccxt.okx(config) if sync else accxt.okx(config)
    exchange.timeout_on_exit = 0
    rewrite_urls(exchange, fake.url)
    return exchange


@pytest.fixture
async def fake() -> AsyncIterator[FakeOkx]:
    server = new_fake()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def ex(fake: FakeOkx) -> AsyncIterator[Any]:
    exchange = client(fake)
    yield exchange
    await exchange.close()


async def buy_limit(ex: Any, amount: float, price: float, **params: Any) -> Any:
    return await ex.create_order(SYMBOL, "limit", "buy", amount, price, params)


async def test_load_markets_costs_two_requests_and_carries_lot_and_tick(
    fake: FakeOkx, ex: Any,
) -> None:
    await ex.load_markets()
    assert fake.requests == {("GET", "/api/v5/public/instruments"): 1,
                             ("GET", "/api/v5/asset/currencies"): 1}
    market = ex.market(SYMBOL)
    assert market["id"] == "BTC-USDT"
    assert market["spot"] and market["active"]
    assert market["precision"] == {"amount": 0.00001, "price": 0.01}
    assert market["limits"]["amount"] == {"min": 0.00001, "max": 9000.0}
    # OKX publishes neither a price range nor a minimum notional per instrument.
    assert market["limits"]["price"] == {"min": None, "max": None}
    assert market["limits"]["cost"] == {"min": None, "max": 1000000.0}
    assert ex.amount_to_precision(SYMBOL, 0.123456789) == "0.12345"
    assert {"BTC", "USDT"} <= set(ex.currencies)


async def test_market_buy_fills_and_the_reply_has_no_state(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    order = await ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                                  {"clientOrderId": "intent1"})
    assert ex.last_request_url == fake.url + ORDER_PATH
    assert ex.last_request_body == (
        '[{"instId":"BTC-USDT","side":"buy","ordType":"market","sz":"0.01","tdMode":"cash",'
        '"tgtCcy":"base_ccy","clOrdId":"intent1"}]')
    assert (order["id"], order["clientOrderId"]) == (fake.orders[0].ordId, "intent1")
    assert (order["status"], order["filled"], order["fee"]) == (None, None, None)
    assert fake.posts == {"intent1": 1}
    done = await ex.fetch_order(order["id"], SYMBOL)
    assert (done["status"], done["filled"], done["average"], done["cost"]) == (
        "closed", 0.01, 50000, 500)
    assert done["fee"] == {"currency": "BTC", "cost": 0.00001}
    assert fake.balance("BTC").free == Decimal("1.00999")
    assert fake.balance("USDT").free == Decimal("99500")


async def test_market_sell_pays_fee_in_quote_and_trades_carry_it(
    fake: FakeOkx, ex: Any,
) -> None:
    await ex.load_markets()
    order = await ex.create_order(SYMBOL, "market", "sell", 0.1)
    trades = await ex.fetch_order_trades(order["id"], SYMBOL)
    assert ex.last_request_url == (fake.url + "/api/v5/trade/fills-history?instId=BTC-USDT"
                                   f"&instType=SPOT&ordId={order['id']}")
    assert [(t["amount"], t["price"], t["fee"], t["takerOrMaker"]) for t in trades] == [
        (0.1, 50000, {"currency": "USDT", "cost": 5.0}, "taker")]
    assert fake.balance("BTC").free == Decimal("0.9")
    assert fake.balance("USDT").free == Decimal("104995")


async def test_market_buy_sized_in_quote(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    # ccxt 4.5.90 sends the amount itself as sz when tgtCcy=quote_ccy comes in params
    # (sz "0.01": 0.01 USDT, refused 51020), so the raw endpoint is used here.
    with pytest.raises(ccxt.InvalidOrder, match="51020"):
        await ex.create_order(SYMBOL, "market", "buy", 0.01, 50000, {"tgtCcy": "quote_ccy"})
    assert '"sz":"0.01"' in ex.last_request_body
    reply = await ex.private_post_trade_order({"instId": "BTC-USDT", "tdMode": "cash",
                                               "side": "buy", "ordType": "market",
                                               "sz": "500"})  # tgtCcy defaults to quote
    done = await ex.fetch_order(reply["data"][0]["ordId"], SYMBOL)
    assert (done["status"], done["filled"], done["cost"], done["amount"]) == (
        "closed", 0.01, 500, 0.01)


async def test_limit_rests_then_fills_as_maker(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    order = await buy_limit(ex, 0.02, 40000, clientOrderId="lim1")
    assert [o.state for o in fake.open_orders()] == ["live"]
    assert fake.balance("USDT") == Balance(free=Decimal("99200"), locked=Decimal("800"))
    fake.fill_resting("BTC-USDT", Decimal("0.005"))
    partial = await ex.fetch_order(order["id"], SYMBOL)
    assert (partial["status"], partial["filled"], partial["remaining"]) == ("open", 0.005, 0.015)
    assert fake.orders[0].state == "partially_filled"
    fake.fill_resting(SYMBOL)
    done = await ex.fetch_order(order["id"], SYMBOL)
    assert (done["status"], done["filled"], done["average"]) == ("closed", 0.02, 40000)
    trades = await ex.fetch_order_trades(order["id"], SYMBOL)
    assert sorted(t["amount"] for t in trades) == [0.005, 0.015]
    assert {t["takerOrMaker"] for t in trades} == {"maker"}
    assert fake.open_orders() == []
    assert fake.balance("USDT") == Balance(free=Decimal("99200"), locked=Decimal("0"))
    assert fake.balance("BTC").free == Decimal("1.01998")


async def test_cancel_reply_has_no_state_and_a_second_cancel_is_not_found(
    fake: FakeOkx, ex: Any,
) -> None:
    await ex.load_markets()
    order = await ex.create_order(SYMBOL, "limit", "sell", 0.5, 60000, {"clientOrderId": "c1"})
    assert fake.balance("BTC").locked == Decimal("0.5")
    canceled = await ex.cancel_order(order["id"], SYMBOL)
    assert ex.last_request_url == fake.url + "/api/v5/trade/cancel-order"
    assert ex.last_request_body == f'{{"instId":"BTC-USDT","ordId":"{order["id"]}"}}'
    assert (canceled["id"], canceled["clientOrderId"], canceled["status"]) == (
        order["id"], "c1", None)
    assert fake.orders[0].state == "canceled"
    assert fake.balance("BTC") == Balance(free=Decimal("1"), locked=Decimal("0"))
    with pytest.raises(ccxt.OrderNotFound, match="51400"):
        await ex.cancel_order(order["id"], SYMBOL)
    assert (await ex.fetch_order(order["id"], SYMBOL))["status"] == "canceled"


async def test_cancel_by_client_order_id(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    await buy_limit(ex, 0.01, 40000, clientOrderId="c2")
    await ex.cancel_order(None, SYMBOL, {"clientOrderId": "c2"})
    assert ex.last_request_body == '{"instId":"BTC-USDT","clOrdId":"c2"}'
    assert fake.orders[0].state == "canceled"


async def test_fetch_order_by_client_order_id(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    placed = await buy_limit(ex, 0.01, 45000, clientOrderId="q1")
    found = await ex.fetch_order(None, SYMBOL, {"clientOrderId": "q1"})
    assert ex.last_request_url == fake.url + "/api/v5/trade/order?instId=BTC-USDT&clOrdId=q1"
    assert (found["id"], found["clientOrderId"], found["status"]) == (placed["id"], "q1", "open")
    with pytest.raises(ccxt.OrderNotFound, match="51603"):
        await ex.fetch_order(None, SYMBOL, {"clientOrderId": "neverSent"})
    with pytest.raises(ccxt.OrderNotFound, match="51603"):
        await ex.fetch_order("999", SYMBOL)
    with pytest.raises(ccxt.ArgumentsRequired):
        await ex.fetch_order(None, None, {"clientOrderId": "q1"})


async def test_duplicate_pending_client_id_refused_finished_one_reusable(
    fake: FakeOkx, ex: Any,
) -> None:
    await ex.load_markets()
    first = await buy_limit(ex, 0.01, 40000, clientOrderId="d1")
    with pytest.raises(ccxt.InvalidOrder, match="51016") as caught:
        await buy_limit(ex, 0.01, 40000, clientOrderId="d1")
    assert type(caught.value) is ccxt.InvalidOrder
    assert fake.posts["d1"] == 2 and len(fake.orders) == 1
    await ex.cancel_order(first["id"], SYMBOL)
    again = await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "d1"})
    newest = await ex.fetch_order(None, SYMBOL, {"clientOrderId": "d1"})
    assert (newest["id"], newest["status"]) == (again["id"], "closed")


async def test_canceled_unfilled_order_is_forgotten_after_two_hours(
    fake: FakeOkx, ex: Any,
) -> None:
    await ex.load_markets()
    order = await buy_limit(ex, 0.01, 40000, clientOrderId="old1")
    await ex.cancel_order(order["id"], SYMBOL)
    fake.time_offset_ms = 2 * 3600 * 1000 + 1000
    ex.options["timeDifference"] = -fake.time_offset_ms  # keep the client in the 30 s window
    with pytest.raises(ccxt.OrderNotFound, match="51603"):
        await ex.fetch_order(None, SYMBOL, {"clientOrderId": "old1"})


async def test_fetch_balance_and_open_orders(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    placed = await buy_limit(ex, 0.1, 30000)
    balance = await ex.fetch_balance()
    assert ex.last_request_url == fake.url + "/api/v5/account/balance"
    assert balance["USDT"] == {"free": 97000.0, "used": 3000.0, "total": 100000.0}
    assert balance["BTC"] == {"free": 1.0, "used": 0.0, "total": 1.0}
    orders = await ex.fetch_open_orders(SYMBOL)
    assert ex.last_request_url == fake.url + "/api/v5/trade/orders-pending?instId=BTC-USDT"
    assert [(o["id"], o["status"]) for o in orders] == [(placed["id"], "open")]


async def test_limited_liquidity_and_ioc_fok_end_canceled(fake: FakeOkx, ex: Any) -> None:
    fake.markets["BTC-USDT"].liquidity = Decimal("0.4")
    await ex.load_markets()
    market = await ex.create_order(SYMBOL, "market", "buy", 1)
    ioc = await buy_limit(ex, 1, 50000, timeInForce="IOC")
    fok = await buy_limit(ex, 1, 50000, timeInForce="FOK")
    assert [o.ordType for o in fake.orders] == ["market", "ioc", "fok"]
    seen = [await ex.fetch_order(o["id"], SYMBOL) for o in (market, ioc, fok)]
    assert [(o["status"], o["filled"]) for o in seen] == [
        ("canceled", 0.4), ("canceled", 0.4), ("canceled", 0)]
    assert fake.open_orders() == []
    assert fake.balance("USDT") == Balance(free=Decimal("60000"), locked=Decimal("0"))


async def test_post_only_that_would_take_is_accepted_then_canceled(
    fake: FakeOkx, ex: Any,
) -> None:
    await ex.load_markets()
    taker = await buy_limit(ex, 0.01, 50001, postOnly=True, clientOrderId="po1")
    assert '"ordType":"post_only"' in ex.last_request_body
    assert taker["id"] is not None  # accepted: not an error
    seen = await ex.fetch_order(taker["id"], SYMBOL)
    assert (seen["status"], seen["filled"], seen["postOnly"]) == ("canceled", 0, True)
    assert seen["info"]["cancelSource"] == "31"
    maker = await buy_limit(ex, 0.01, 49999, postOnly=True)
    assert (await ex.fetch_order(maker["id"], SYMBOL))["status"] == "open"


async def test_on_order_hook_sees_both_phases(fake: FakeOkx, ex: Any) -> None:
    seen: list[tuple[str, str | None]] = []

    def hook(phase: str, order: FakeOkxOrder | None) -> None:
        seen.append((phase, None if order is None else order.status))

    fake.on_order = hook
    await ex.load_markets()
    await ex.create_order(SYMBOL, "market", "buy", 0.01)
    with pytest.raises(ccxt.InvalidOrder):
        await ex.create_order(SYMBOL, "market", "buy", 0.00001)  # below the minimum amount
    assert seen == [("received", None), ("placed", "filled"), ("received", None)]


async def test_the_single_order_endpoint_works_too(fake: FakeOkx) -> None:
    exchange = client(fake, options={**OPTIONS, "createOrder": "privatePostTradeOrder"})
    try:
        await exchange.load_markets()
        order = await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 40000,
                                            {"clientOrderId": "one1"})
        assert exchange.last_request_url == fake.url + "/api/v5/trade/order"
        assert exchange.last_request_body.startswith('{"instId":"BTC-USDT"')
        assert fake.posts == {"one1": 1} and order["id"] == fake.orders[0].ordId
        with pytest.raises(ccxt.InvalidOrder, match="51016"):
            await exchange.create_order(SYMBOL, "limit", "buy", 0.01, 40000,
                                        {"clientOrderId": "one1"})
    finally:
        await exchange.close()


# --------------------------------------------------------------------- error mapping

Action = Callable[[FakeOkx, Any], Awaitable[Any]]


async def below_min_notional(fake: FakeOkx, ex: Any) -> Any:
    return await buy_limit(ex, 0.0001, 40000)


async def below_min_size(fake: FakeOkx, ex: Any) -> Any:
    fake.markets["BTC-USDT"].min_qty = Decimal("0.1")  # changed after load_markets
    return await buy_limit(ex, 0.01, 40000)


async def above_max_size(fake: FakeOkx, ex: Any) -> Any:
    return await buy_limit(ex, 9001, 1)


async def off_lot(fake: FakeOkx, ex: Any) -> Any:
    # Raw API call: ccxt's amount_to_precision would have truncated the size.
    return await ex.private_post_trade_order({"instId": "BTC-USDT", "tdMode": "cash",
                                              "side": "buy", "ordType": "limit",
                                              "sz": "0.000015", "px": "40000"})


async def off_tick(fake: FakeOkx, ex: Any) -> Any:
    return await ex.private_post_trade_order({"instId": "BTC-USDT", "tdMode": "cash",
                                              "side": "buy", "ordType": "limit",
                                              "sz": "0.01", "px": "40000.005"})


async def above_buy_limit(fake: FakeOkx, ex: Any) -> Any:
    return await buy_limit(ex, 0.00001, 2000000)


async def below_sell_limit(fake: FakeOkx, ex: Any) -> Any:
    fake.markets["BTC-USDT"].min_price = Decimal("45000")
    return await ex.create_order(SYMBOL, "limit", "sell", 0.01, 44000)


async def unknown_instrument(fake: FakeOkx, ex: Any) -> Any:
    del fake.markets["BTC-USDT"]
    return await buy_limit(ex, 0.01, 40000)


async def bad_client_id(fake: FakeOkx, ex: Any) -> Any:
    return await buy_limit(ex, 0.01, 40000, clientOrderId="has-a-dash")


async def long_client_id(fake: FakeOkx, ex: Any) -> Any:
    return await buy_limit(ex, 0.01, 40000, clientOrderId="x" * 33)


async def duplicate(fake: FakeOkx, ex: Any) -> Any:
    await buy_limit(ex, 0.01, 40000, clientOrderId="same")
    return await buy_limit(ex, 0.01, 40000, clientOrderId="same")


async def insufficient(fake: FakeOkx, ex: Any) -> Any:
    return await buy_limit(ex, 3, 40000)


async def fetch_unknown(fake: FakeOkx, ex: Any) -> Any:
    return await ex.fetch_order(None, SYMBOL, {"clientOrderId": "nope"})


async def cancel_unknown(fake: FakeOkx, ex: Any) -> Any:
    return await ex.cancel_order("42", SYMBOL)


async def bad_signature(fake: FakeOkx, ex: Any) -> Any:
    ex.secret = "wrong"
    return await ex.fetch_balance()


async def bad_key(fake: FakeOkx, ex: Any) -> Any:
    ex.apiKey = "wrong"
    return await ex.fetch_balance()


async def bad_passphrase(fake: FakeOkx, ex: Any) -> Any:
    ex.password = "wrong"
    return await ex.fetch_balance()


async def skewed_clock(fake: FakeOkx, ex: Any) -> Any:
    fake.time_offset_ms = -31000  # the client's clock is 31 s ahead of the exchange's
    return await ex.fetch_balance()


def faulted(kind: str) -> Action:
    async def action(fake: FakeOkx, ex: Any) -> Any:
        fake.inject(kind)
        return await buy_limit(ex, 0.01, 40000)
    return action


async def unknown_endpoint(fake: FakeOkx, ex: Any) -> Any:
    return await ex.public_get_market_ticker({"instId": "BTC-USDT"})


ERRORS: list[tuple[str, Action, type[Exception]]] = [
    ("51020 below min notional", below_min_notional, ccxt.InvalidOrder),
    ("51020 below minSz", below_min_size, ccxt.InvalidOrder),
    ("51005 above maxLmtSz", above_max_size, ccxt.InvalidOrder),
    ("51121 off lotSz", off_lot, ccxt.InvalidOrder),
    ("51000 off tickSz", off_tick, ccxt.BadRequest),
    ("51137 above buy limit", above_buy_limit, ccxt.InvalidOrder),
    ("51138 below sell limit", below_sell_limit, ccxt.InvalidOrder),
    ("51001 unknown instrument", unknown_instrument, ccxt.BadSymbol),
    ("51000 clOrdId charset", bad_client_id, ccxt.BadRequest),
    ("51000 clOrdId length", long_client_id, ccxt.BadRequest),
    ("51016 duplicate", duplicate, ccxt.InvalidOrder),
    ("51008 insufficient", insufficient, ccxt.InsufficientFunds),
    ("51603 fetch unknown", fetch_unknown, ccxt.OrderNotFound),
    ("51400 cancel unknown", cancel_unknown, ccxt.OrderNotFound),
    ("50113 bad signature", bad_signature, ccxt.AuthenticationError),
    ("50111 bad key", bad_key, ccxt.AuthenticationError),
    ("50105 bad passphrase", bad_passphrase, ccxt.AuthenticationError),
    ("50102 skewed clock", skewed_clock, ccxt.InvalidNonce),
    ("clock", faulted("clock"), ccxt.InvalidNonce),
    ("503_json", faulted("503_json"), ccxt.OnMaintenance),
    ("503_json_placed", faulted("503_json_placed"), ccxt.OnMaintenance),
    ("503_then_placed", faulted("503_then_placed"), ccxt.OnMaintenance),
    ("503_plain", faulted("503_plain"), ccxt.ExchangeNotAvailable),
    ("429", faulted("429"), ccxt.RateLimitExceeded),
    ("5xx_unknown_code_placed", faulted("5xx_unknown_code_placed"), ccxt.ExchangeError),
    ("venue_busy_placed", faulted("venue_busy_placed"), ccxt.RequestTimeout),
    ("drop", faulted("drop"), ccxt.ExchangeNotAvailable),
    ("lost_reply", faulted("lost_reply"), ccxt.ExchangeNotAvailable),
    ("unknown endpoint", unknown_endpoint, ccxt.ExchangeError),
]


@pytest.mark.parametrize(("action", "expected"), [(a, e) for _, a, e in ERRORS],
                         ids=[name for name, _, _ in ERRORS])
async def test_error_maps_to_ccxt_exception(
    fake: FakeOkx, ex: Any, action: Action, expected: type[Exception],
) -> None:
    await ex.load_markets()
    with pytest.raises(ccxt.BaseError) as caught:
        await action(fake, ex)
    assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value}"


# --------------------------------------------------------------------- faults in detail

@pytest.mark.parametrize(("kind", "placed"), [
    ("lost_reply", True), ("503_json_placed", True), ("5xx_unknown_code_placed", True),
    ("venue_busy_placed", True), ("503_json", False), ("503_plain", False), ("429", False),
    ("drop", False), ("clock", False),
])
async def test_fault_places_order_or_not(
    fake: FakeOkx, ex: Any, kind: str, placed: bool,
) -> None:
    await ex.load_markets()
    fake.inject(kind)
    with pytest.raises(ccxt.BaseError):
        await buy_limit(ex, 0.01, 40000, clientOrderId="f1")
    assert len(fake.orders) == int(placed)
    assert fake.posts == {"f1": 1}
    if placed:
        found = await ex.fetch_order(None, SYMBOL, {"clientOrderId": "f1"})
        assert found["status"] == "open"
    else:
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order(None, SYMBOL, {"clientOrderId": "f1"})
    assert fake.pending_faults() == 0
    again = await buy_limit(ex, 0.01, 40000, clientOrderId="f2")
    assert (await ex.fetch_order(again["id"], SYMBOL))["status"] == "open"


async def test_unknown_5xx_code_is_a_bare_exchange_error(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    fake.inject("5xx_unknown_code_placed")
    with pytest.raises(ccxt.ExchangeError, match='"51149"') as caught:
        await buy_limit(ex, 0.01, 40000, clientOrderId="u1")
    assert type(caught.value) is ccxt.ExchangeError
    assert not isinstance(caught.value, ccxt.NetworkError | ccxt.OperationFailed)
    assert ex.last_http_response is not None
    assert fake.orders[0].clOrdId == "u1" and fake.orders[0].is_open


async def test_200_not_an_order_returns_an_order_without_id(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    fake.inject("200_not_an_order_placed")
    order = await buy_limit(ex, 0.01, 40000, clientOrderId="h1")
    assert (order["id"], order["clientOrderId"], order["status"]) == (None, None, None)
    assert fake.orders[0].clOrdId == "h1" and fake.orders[0].is_open


async def test_503_then_placed_places_the_order_later(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    fake.inject("503_then_placed", delay=0.2)
    with pytest.raises(ccxt.OnMaintenance):
        await buy_limit(ex, 0.01, 40000, clientOrderId="l1")
    assert fake.orders == []
    for _ in range(50):
        if fake.orders:
            break
        await asyncio.sleep(0.02)
    found = await ex.fetch_order(None, SYMBOL, {"clientOrderId": "l1"})
    assert found["status"] == "open"


async def test_timeout_places_the_order_and_replies_late(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    ex.timeout = 300  # keep the test fast; the daemon's 2000 ms behaves the same
    fake.inject("timeout", delay=1.0)
    with pytest.raises(ccxt.RequestTimeout) as caught:
        await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "t1"})
    assert type(caught.value) is ccxt.RequestTimeout
    assert fake.orders[0].state == "filled"
    found = await ex.fetch_order(None, SYMBOL, {"clientOrderId": "t1"})
    assert found["status"] == "closed"


async def test_a_batch_partly_refused_is_code_2(fake: FakeOkx, ex: Any) -> None:
    await ex.load_markets()
    reply = await ex.private_post_trade_batch_orders([
        {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
         "sz": "0.01", "px": "40000", "clOrdId": "b1"},
        {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
         "sz": "3", "px": "40000", "clOrdId": "b2"},
    ])
    assert reply["code"] == "2"
    assert [(d["clOrdId"], d["sCode"]) for d in reply["data"]] == [("b1", "0"), ("b2", "51008")]
    assert reply["data"][1]["subCode"] == "1000"
    assert fake.posts == {"b1": 1, "b2": 1}


def test_thread_runner_serves_sync_ccxt_and_call_runs_on_the_loop() -> None:
    server = new_fake()
    thread = FakeOkxThread(server)
    with thread as running:
        assert running is server and server.url.startswith("http://127.0.0.1:")
        exchange = client(server, sync=True)
        exchange.load_markets()
        order = exchange.create_order(SYMBOL, "limit", "sell", 0.1, 60000)
        assert thread.call(lambda: [o.state for o in server.open_orders()]) == ["live"]
        thread.call(lambda: server.fill_resting("BTC-USDT"))
        assert exchange.fetch_order(order["id"], SYMBOL)["status"] == "closed"
        assert thread.call(lambda: server.balance("USDT").free) == Decimal("105994")
