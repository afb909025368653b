"""The fake Bybit v5 server, driven by the real ccxt bybit class over HTTP.

What the real ccxt 4.5.90 raises or returns for each reply (observed; pinned below in
``test_error_maps_to_ccxt_exception`` and ``test_fault_places_order_or_not``, where
``type(error) is`` is checked, not isinstance):

=============================================================  ===========================
reply from the fake                                            ccxt
=============================================================  ===========================
170140 "Order value exceeded lower limit"                      InvalidOrder
170136 "Order quantity lower than the minimum."                InvalidOrder
170381 "Order quantity too large." (not in ccxt's table)       ExchangeError
170137 "Order volume decimal too long"                         InvalidOrder
170134 "Order price decimal too long."                         InvalidOrder
170372 "Order price cannot be higher than ..."                 InvalidOrder
170121 "Invalid symbol."                                       InvalidOrder
10001 orderLinkId longer than 36 characters                    BadRequest
170141 "Duplicate clientOrderId"                               InvalidOrder
170131 "Insufficient balance."                                 InsufficientFunds
170213 "Order does not exist." (cancel)                        OrderNotFound
empty list from /v5/order/realtime (fetch_order)               OrderNotFound (ccxt's own)
10004 bad signature                                            AuthenticationError
10003 unknown API key                                          AuthenticationError
10002 timestamp outside the window ("clock", either skew)      InvalidNonce
10001 a malformed parameter                                    BadRequest
10006 in HTTP 200 ("429")                                      RateLimitExceeded
HTTP 429 plain ("429_http"), HTTP 403 plain ("403_ip_limit")   RateLimitExceeded
HTTP 503 + 10016 ("503_json", "503_json_placed")               ExchangeError
HTTP 502 + 10000 ("5xx_unknown_code_placed")                   ExchangeError
HTTP 200 + 10000 ("server_timeout_placed")                     ExchangeError
HTTP 200 + 170146 ("venue_busy_placed")                        InvalidOrder
HTTP 503 HTML ("503_plain")                                    ExchangeNotAvailable
HTTP 200 HTML ("200_not_an_order_placed")                      returns id None, status None
connection dropped on POST ("drop", "lost_reply")              ExchangeNotAvailable
reply later than the client timeout ("timeout")                RequestTimeout
HTTP 404 + 10017 unknown path                                  BadRequest
=============================================================  ===========================

So on Bybit a reply that leaves the order's fate unknown arrives as ExchangeError
(10016, 10000) or even InvalidOrder (170146), and a documented refusal (170381) as
the same bare ExchangeError: ccxt's class does not separate "refused" from "unknown";
only the HTTP status and the venue's code do.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.async_support as accxt
import pytest

from tests.fakes.bybit import (
    CREATE_PATH,
    Balance,
    FakeBybit,
    FakeBybitThread,
    FakeOrder,
    Market,
    rewrite_urls,
)

KEY = "test-api-key"
SECRET = "test-api-secret"
SYMBOL = "BTC/USDT"
# As execd's ccxt venue sets them, plus the two options that tell ccxt the account is
# unified (without them ccxt asks /v5/user/query-api and /v5/account/info first).
OPTIONS = {
    "fetchCurrencies": False,
    "fetchMargins": False,
    "fetchMarkets": {"types": ["spot"]},
    "maxRetriesOnFailure": 0,
    "enableUnifiedMargin": False,
    "enableUnifiedAccount": True,
}
ACK = {"acknowledged": True}
INSTRUMENTS = ("GET", "/v5/market/instruments-info")
COINS = ("GET", "/v5/asset/coin/query-info")


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


def new_fake(**market: Any) -> FakeBybit:
    return FakeBybit(
        {SYMBOL: btc_usdt(**market)}, api_key=KEY, secret=SECRET,
        balances={"BTC": Decimal("1"), "USDT": Decimal("100000")},
    )


def client(fake: FakeBybit, *, sync: bool = False, **options: Any) -> Any:
    """A ccxt bybit client pointed at ``fake``."""
    config = {"apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "timeout": 2000,
              "options": {**OPTIONS, **options}}
    exchange = ccxt.bybit(config) if sync else accxt.bybit(config)
    exchange.timeout_on_exit = 0  # ccxt's async close() sleeps this long for TLS
    rewrite_urls(exchange, fake.url)
    return exchange


@pytest.fixture
async def fake() -> AsyncIterator[FakeBybit]:
    server = new_fake()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def ex(fake: FakeBybit) -> AsyncIterator[Any]:
    exchange = client(fake)
    yield exchange
    await exchange.close()


async def buy_limit(ex: Any, amount: float, price: float, **params: Any) -> Any:
    return await ex.create_order(SYMBOL, "limit", "buy", amount, price, params)


async def fetch(ex: Any, order_id: str) -> Any:
    return await ex.fetch_order(order_id, SYMBOL, ACK)


# --------------------------------------------------------------------- markets, account

async def test_load_markets_costs_two_requests_and_carries_filters(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    # has['fetchCurrencies'] is true for bybit: the fetchCurrencies option does not stop
    # ccxt from asking the (signed) coin info endpoint.
    assert fake.requests == {INSTRUMENTS: 1, COINS: 1}
    market = ex.market(SYMBOL)
    assert market["id"] == "BTCUSDT"
    assert market["spot"] and market["active"]
    assert market["precision"] == {"amount": 0.00001, "price": 0.01}
    assert market["limits"]["amount"] == {"min": 0.00001, "max": 9000.0}
    # Bybit publishes no price limits; the fake still applies min_price/max_price.
    assert market["limits"]["price"] == {"min": None, "max": None}
    assert market["limits"]["cost"] == {"min": 5.0, "max": 9000000.0}
    assert ex.amount_to_precision(SYMBOL, 0.123456789) == "0.12345"


async def test_load_markets_is_one_request_without_the_currencies_capability(
    fake: FakeBybit,
) -> None:
    exchange = client(fake)
    exchange.has["fetchCurrencies"] = False
    try:
        await exchange.load_markets()
    finally:
        await exchange.close()
    assert fake.requests == {INSTRUMENTS: 1}
    assert "category=spot" in exchange.last_request_url


async def test_unified_account_is_asked_once_unless_the_options_say_so(
    fake: FakeBybit,
) -> None:
    exchange = client(fake, enableUnifiedMargin=None, enableUnifiedAccount=None)
    try:
        await exchange.load_markets()
        await buy_limit(exchange, 0.01, 40000)
        await exchange.fetch_order("1", SYMBOL, ACK)
        assert exchange.options["enableUnifiedAccount"] is True
        assert exchange.options["unifiedMarginStatus"] == 5
    finally:
        await exchange.close()
    assert fake.requests[("GET", "/v5/user/query-api")] == 1
    assert fake.requests[("GET", "/v5/account/info")] == 1


async def test_fetch_order_on_a_unified_account_needs_acknowledged(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    order = await buy_limit(ex, 0.01, 40000)
    with pytest.raises(ccxt.ArgumentsRequired, match="acknowledged"):
        await ex.fetch_order(order["id"], SYMBOL)
    assert ("GET", "/v5/order/realtime") not in fake.requests
    assert (await fetch(ex, order["id"]))["status"] == "open"


async def test_fetch_balance_is_the_unified_wallet(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    await buy_limit(ex, 0.1, 30000)
    balance = await ex.fetch_balance()
    assert "accountType=UNIFIED" in ex.last_request_url
    assert balance["USDT"] == {"free": 97000.0, "used": 3000.0, "total": 100000.0, "debt": 0.0}
    assert balance["BTC"] == {"free": 1.0, "used": 0.0, "total": 1.0, "debt": 0.0}
    assert fake.requests[("GET", "/v5/account/wallet-balance")] == 1


# --------------------------------------------------------------------- orders

async def test_market_buy_fills_in_full_but_the_create_reply_has_no_state(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    order = await ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                                  {"clientOrderId": "intent-1"})
    assert ex.last_request_url == fake.url + CREATE_PATH
    sent = json.loads(ex.last_request_body)
    assert sent == {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                    "orderLinkId": "intent-1", "category": "spot",
                    "marketUnit": "baseCoin", "qty": "0.01"}
    # Bybit's create reply is {orderId, orderLinkId}: no state, no fills.
    assert (order["id"], order["clientOrderId"]) == ("1", "intent-1")
    assert (order["status"], order["filled"], order["fee"]) == (None, None, None)
    done = await fetch(ex, order["id"])
    assert (done["status"], done["filled"], done["remaining"]) == ("closed", 0.01, 0)
    assert (done["average"], done["cost"]) == (50000, 500)
    assert done["fee"] == {"currency": "BTC", "cost": 0.00001}
    assert fake.balance("BTC").free == Decimal("1.00999")
    assert fake.balance("USDT").free == Decimal("99500")
    assert fake.posts == {"intent-1": 1}


async def test_market_sell_pays_fee_in_quote(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    order = await ex.create_order(SYMBOL, "market", "sell", 0.1)
    done = await fetch(ex, order["id"])
    assert done["status"] == "closed"
    assert done["fee"] == {"currency": "USDT", "cost": 5.0}
    assert fake.balance("BTC").free == Decimal("0.9")
    assert fake.balance("USDT").free == Decimal("104995")


async def test_market_buy_with_a_price_is_sized_in_the_quote_coin(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    order = await ex.create_order(SYMBOL, "market", "buy", 0.01, 50000)
    sent = json.loads(ex.last_request_body)
    assert sent["qty"] == "500" and "marketUnit" not in sent  # Bybit: quote by default
    done = await fetch(ex, order["id"])
    assert (done["status"], done["filled"], done["cost"]) == ("closed", 0.01, 500)
    assert done["info"]["qty"] == "500"  # the order's size is in USDT


async def test_limit_rests_then_fills(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    order = await buy_limit(ex, 0.02, 40000, clientOrderId="lim-1")
    assert [o.orderId for o in fake.open_orders()] == ["1"]
    assert fake.balance("USDT").locked == Decimal("800")
    fake.fill_resting("BTCUSDT", Decimal("0.005"))
    partial = await fetch(ex, order["id"])
    assert (partial["status"], partial["filled"], partial["remaining"]) == ("open", 0.005, 0.015)
    assert partial["info"]["orderStatus"] == "PartiallyFilled"
    fake.fill_resting(SYMBOL)
    done = await fetch(ex, order["id"])
    assert (done["status"], done["filled"], done["average"]) == ("closed", 0.02, 40000)
    assert fake.open_orders() == []
    assert fake.balance("USDT") == Balance(free=Decimal("99200"), locked=Decimal("0"))
    assert fake.balance("BTC").free == Decimal("1.01998")


async def test_cancel(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    order = await ex.create_order(SYMBOL, "limit", "sell", 0.5, 60000, {"clientOrderId": "c-1"})
    assert fake.balance("BTC").locked == Decimal("0.5")
    canceled = await ex.cancel_order(order["id"], SYMBOL)
    sent = json.loads(ex.last_request_body)
    assert sent == {"symbol": "BTCUSDT", "orderFilter": "Order", "orderId": "1",
                    "category": "spot"}
    # Like the create reply, the cancel reply is {orderId, orderLinkId}: no state.
    assert (canceled["id"], canceled["clientOrderId"], canceled["status"]) == ("1", "c-1", None)
    assert fake.balance("BTC") == Balance(free=Decimal("1"), locked=Decimal("0"))
    assert fake.orders[0].status == "Cancelled"
    with pytest.raises(ccxt.OrderNotFound, match="170213"):
        await ex.cancel_order(order["id"], SYMBOL)
    assert (await fetch(ex, order["id"]))["status"] == "canceled"


async def test_a_partial_fill_then_cancel_is_closed_for_ccxt(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    order = await buy_limit(ex, 0.02, 40000)
    fake.fill_resting(SYMBOL, Decimal("0.005"))
    await ex.cancel_order(order["id"], SYMBOL)
    done = await fetch(ex, order["id"])
    # Bybit's PartiallyFilledCanceled reads as "closed" in ccxt, not "canceled".
    assert done["info"]["orderStatus"] == "PartiallyFilledCanceled"
    assert (done["status"], done["filled"], done["remaining"]) == ("closed", 0.005, 0)
    assert fake.balance("USDT") == Balance(free=Decimal("99800"), locked=Decimal("0"))


async def test_lookup_by_client_order_id(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    placed = await buy_limit(ex, 0.01, 45000, clientOrderId="q-1")
    # fetch_order does not map the client id: with id None it sends orderId=None, which
    # Bybit takes before orderLinkId, and finds nothing.
    with pytest.raises(ccxt.OrderNotFound):
        await ex.fetch_order(None, SYMBOL, {**ACK, "orderLinkId": "q-1"})
    assert "orderId=None" in ex.last_request_url
    # The call that works: GET /v5/order/realtime with orderLinkId (open, or among the
    # most recent 500 closed orders).
    found = await ex.fetch_open_orders(SYMBOL, None, None, {"orderLinkId": "q-1"})
    assert "orderLinkId=q-1" in ex.last_request_url
    assert [(o["id"], o["clientOrderId"], o["status"]) for o in found] == [
        (placed["id"], "q-1", "open")]
    await ex.cancel_order(placed["id"], SYMBOL)
    closed = await ex.fetch_open_orders(SYMBOL, None, None, {"orderLinkId": "q-1"})
    assert [o["status"] for o in closed] == ["canceled"]
    # The history endpoint answers the same question for older orders.
    history = await ex.fetch_canceled_and_closed_orders(SYMBOL, None, None,
                                                        {"orderLinkId": "q-1"})
    assert ex.last_request_url.startswith(fake.url + "/v5/order/history?")
    assert [o["id"] for o in history] == [placed["id"]]
    # Nothing found is an empty list, not an error.
    assert await ex.fetch_open_orders(SYMBOL, None, None, {"orderLinkId": "never"}) == []
    with pytest.raises(ccxt.OrderNotFound):
        await fetch(ex, "999")


async def test_fetch_open_orders_lists_only_open_ones(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    await buy_limit(ex, 0.01, 40000)
    await ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert [o["id"] for o in await ex.fetch_open_orders(SYMBOL)] == ["1"]


async def test_duplicate_client_id_is_refused_even_after_the_first_closed(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    first = await buy_limit(ex, 0.01, 40000, clientOrderId="d-1")
    with pytest.raises(ccxt.InvalidOrder, match="170141"):
        await buy_limit(ex, 0.01, 40000, clientOrderId="d-1")
    await ex.cancel_order(first["id"], SYMBOL)
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate clientOrderId"):
        await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "d-1"})
    assert len(fake.orders) == 1
    assert fake.posts == {"d-1": 3}


async def test_order_trades_carry_the_fees(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    order = await buy_limit(ex, 0.02, 40000, clientOrderId="t-1")
    fake.fill_resting(SYMBOL, Decimal("0.005"))
    fake.fill_resting(SYMBOL)
    by_id = await ex.fetch_order_trades(order["id"], SYMBOL)
    assert "execType=Trade" in ex.last_request_url and "orderId=1" in ex.last_request_url
    by_link = await ex.fetch_order_trades(None, SYMBOL, None, None, {"clientOrderId": "t-1"})
    assert "orderLinkId=t-1" in ex.last_request_url
    assert [t["id"] for t in by_link] == [t["id"] for t in by_id]
    assert sorted((t["amount"], t["price"], t["takerOrMaker"]) for t in by_id) == [
        (0.005, 40000, "maker"), (0.015, 40000, "maker")]
    assert sorted(t["fee"]["cost"] for t in by_id) == [0.000005, 0.000015]
    assert {t["fee"]["currency"] for t in by_id} == {"BTC"}
    mine = await ex.fetch_my_trades(SYMBOL)
    assert len(mine) == 2


async def test_limited_liquidity_ends_market_and_ioc_orders_partially_filled(
    fake: FakeBybit, ex: Any,
) -> None:
    fake.markets["BTCUSDT"].liquidity = Decimal("0.4")
    await ex.load_markets()
    market = await ex.create_order(SYMBOL, "market", "buy", 1)
    done = await fetch(ex, market["id"])
    assert done["info"]["orderStatus"] == "PartiallyFilledCanceled"
    assert (done["status"], done["filled"]) == ("closed", 0.4)
    ioc = await buy_limit(ex, 1, 50000, timeInForce="IOC")
    assert (await fetch(ex, ioc["id"]))["filled"] == 0.4
    fok = await buy_limit(ex, 1, 50000, timeInForce="FOK")
    assert (await fetch(ex, fok["id"]))["status"] == "canceled"
    resting = await buy_limit(ex, 1, 51000)
    assert (await fetch(ex, resting["id"]))["info"]["orderStatus"] == "PartiallyFilled"
    assert fake.balance("USDT").locked == Decimal("30600")


async def test_post_only_that_would_take_is_accepted_then_cancelled(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    taker = await buy_limit(ex, 0.01, 50001, postOnly=True)
    assert json.loads(ex.last_request_body)["timeInForce"] == "PostOnly"
    done = await fetch(ex, taker["id"])
    assert done["status"] == "canceled"
    assert done["info"]["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"
    maker = await buy_limit(ex, 0.01, 49999, postOnly=True)
    assert (await fetch(ex, maker["id"]))["status"] == "open"
    assert fake.balance("USDT").locked == Decimal("499.99")


async def test_on_order_hook_sees_both_phases(fake: FakeBybit, ex: Any) -> None:
    seen: list[tuple[str, str | None]] = []

    def hook(phase: str, order: FakeOrder | None) -> None:
        seen.append((phase, None if order is None else order.status))

    fake.on_order = hook
    await ex.load_markets()
    await ex.create_order(SYMBOL, "market", "buy", 0.01)
    with pytest.raises(ccxt.InvalidOrder):
        await ex.create_order(SYMBOL, "market", "buy", 0.00001)  # under minOrderAmt
    assert seen == [("received", None), ("placed", "Filled"), ("received", None)]


# --------------------------------------------------------------------- error mapping

Action = Callable[[FakeBybit, Any], Awaitable[Any]]


async def raw_create(ex: Any, **fields: str) -> Any:
    # ccxt's own precision would have fixed the request; send it as given.
    return await ex.private_post_v5_order_create({
        "category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
        "qty": "0.01", "price": "40000", **fields})


async def notional(fake: FakeBybit, ex: Any) -> Any:
    return await buy_limit(ex, 0.0001, 40000)


async def qty_min(fake: FakeBybit, ex: Any) -> Any:
    fake.markets["BTCUSDT"].min_qty = Decimal("0.001")  # changed after load_markets
    return await buy_limit(ex, 0.0005, 40000)


async def qty_max(fake: FakeBybit, ex: Any) -> Any:
    return await buy_limit(ex, 9001, 1)


async def qty_step(fake: FakeBybit, ex: Any) -> Any:
    return await raw_create(ex, qty="0.000015")


async def price_step(fake: FakeBybit, ex: Any) -> Any:
    return await raw_create(ex, price="40000.005")


async def price_limit(fake: FakeBybit, ex: Any) -> Any:
    return await buy_limit(ex, 0.00001, 2000000)


async def invalid_symbol(fake: FakeBybit, ex: Any) -> Any:
    del fake.markets["BTCUSDT"]
    return await buy_limit(ex, 0.01, 40000)


async def long_client_id(fake: FakeBybit, ex: Any) -> Any:
    return await buy_limit(ex, 0.01, 40000, clientOrderId="x" * 37)


async def duplicate(fake: FakeBybit, ex: Any) -> Any:
    await buy_limit(ex, 0.01, 40000, clientOrderId="same")
    return await buy_limit(ex, 0.01, 40000, clientOrderId="same")


async def insufficient(fake: FakeBybit, ex: Any) -> Any:
    return await buy_limit(ex, 3, 40000)


async def fetch_unknown(fake: FakeBybit, ex: Any) -> Any:
    return await fetch(ex, "42")


async def cancel_unknown(fake: FakeBybit, ex: Any) -> Any:
    return await ex.cancel_order("42", SYMBOL)


async def bad_signature(fake: FakeBybit, ex: Any) -> Any:
    ex.secret = "wrong"
    return await ex.fetch_balance()


async def bad_key(fake: FakeBybit, ex: Any) -> Any:
    ex.apiKey = "wrong"
    return await ex.fetch_balance()


async def skewed_clock(fake: FakeBybit, ex: Any) -> Any:
    fake.time_offset_ms = -5000  # the client's clock is 5 s ahead of the exchange's
    return await ex.fetch_balance()


async def stale_timestamp(fake: FakeBybit, ex: Any) -> Any:
    fake.time_offset_ms = 6000  # older than the 5000 ms window ccxt sends
    return await ex.fetch_balance()


async def bad_time_filter(fake: FakeBybit, ex: Any) -> Any:
    return await ex.fetch_my_trades(SYMBOL, None, None, {"startTime": "yesterday"})


async def list_as_order_type(fake: FakeBybit, ex: Any) -> Any:
    return await raw_create(ex, orderType=["Limit"])  # type: ignore[arg-type]


async def list_as_time_in_force(fake: FakeBybit, ex: Any) -> Any:
    return await raw_create(ex, timeInForce=["GTC"])  # type: ignore[arg-type]


async def unknown_path(fake: FakeBybit, ex: Any) -> Any:
    return await ex.public_get_v5_market_tickers({"category": "spot"})


def faulted(kind: str) -> Action:
    async def action(fake: FakeBybit, ex: Any) -> Any:
        fake.inject(kind)
        return await buy_limit(ex, 0.01, 40000)
    return action


ERRORS: list[tuple[str, Action, type[Exception], str]] = [
    ("170140 notional", notional, ccxt.InvalidOrder, "170140"),
    ("170136 qty min", qty_min, ccxt.InvalidOrder, "170136"),
    ("170381 qty max", qty_max, ccxt.ExchangeError, "170381"),
    ("170137 qty step", qty_step, ccxt.InvalidOrder, "170137"),
    ("170134 price step", price_step, ccxt.InvalidOrder, "170134"),
    ("170372 price limit", price_limit, ccxt.InvalidOrder, "170372"),
    ("170121 invalid symbol", invalid_symbol, ccxt.InvalidOrder, "170121"),
    ("10001 client id too long", long_client_id, ccxt.BadRequest, "10001"),
    ("170141 duplicate", duplicate, ccxt.InvalidOrder, "170141"),
    ("170131 insufficient", insufficient, ccxt.InsufficientFunds, "170131"),
    ("fetch unknown", fetch_unknown, ccxt.OrderNotFound, "was not found"),
    ("170213 cancel unknown", cancel_unknown, ccxt.OrderNotFound, "170213"),
    ("10004 bad signature", bad_signature, ccxt.AuthenticationError, "10004"),
    ("10003 bad key", bad_key, ccxt.AuthenticationError, "10003"),
    ("10002 skewed clock", skewed_clock, ccxt.InvalidNonce, "10002"),
    ("10002 stale timestamp", stale_timestamp, ccxt.InvalidNonce, "recv_window[5000]"),
    ("clock", faulted("clock"), ccxt.InvalidNonce, "10002"),
    ("10001 bad startTime", bad_time_filter, ccxt.BadRequest, "startTime"),
    ("429", faulted("429"), ccxt.RateLimitExceeded, "10006"),
    ("429_http", faulted("429_http"), ccxt.RateLimitExceeded, "429"),
    ("403_ip_limit", faulted("403_ip_limit"), ccxt.RateLimitExceeded, "403"),
    ("503_json", faulted("503_json"), ccxt.ExchangeError, "10016"),
    ("503_json_placed", faulted("503_json_placed"), ccxt.ExchangeError, "10016"),
    ("5xx_unknown_code_placed", faulted("5xx_unknown_code_placed"), ccxt.ExchangeError,
     "10000"),
    ("server_timeout_placed", faulted("server_timeout_placed"), ccxt.ExchangeError, "10000"),
    ("venue_busy_placed", faulted("venue_busy_placed"), ccxt.InvalidOrder, "170146"),
    ("503_plain", faulted("503_plain"), ccxt.ExchangeNotAvailable, "503"),
    ("drop", faulted("drop"), ccxt.ExchangeNotAvailable, "/v5/order/create"),
    ("lost_reply", faulted("lost_reply"), ccxt.ExchangeNotAvailable, "/v5/order/create"),
    ("170116 a list as orderType", list_as_order_type, ccxt.InvalidOrder, "170116"),
    ("170115 a list as timeInForce", list_as_time_in_force, ccxt.InvalidOrder, "170115"),
    ("10017 unknown path", unknown_path, ccxt.BadRequest, "10017"),
]


@pytest.mark.parametrize(("action", "expected", "text"), [(a, e, t) for _, a, e, t in ERRORS],
                         ids=[name for name, _, _, _ in ERRORS])
async def test_error_maps_to_ccxt_exception(
    fake: FakeBybit, ex: Any, action: Action, expected: type[Exception], text: str,
) -> None:
    await ex.load_markets()
    with pytest.raises(ccxt.BaseError) as caught:
        await action(fake, ex)
    assert type(caught.value) is expected, f"{type(caught.value).__name__}: {caught.value}"
    assert text in str(caught.value)


# --------------------------------------------------------------------- faults in detail

@pytest.mark.parametrize(("kind", "placed"), [
    ("lost_reply", True), ("503_json_placed", True), ("5xx_unknown_code_placed", True),
    ("venue_busy_placed", True), ("server_timeout_placed", True),
    ("503_json", False), ("503_plain", False), ("429", False), ("429_http", False),
    ("403_ip_limit", False), ("drop", False), ("clock", False),
])
async def test_fault_places_order_or_not(
    fake: FakeBybit, ex: Any, kind: str, placed: bool,
) -> None:
    await ex.load_markets()
    fake.inject(kind)
    with pytest.raises(ccxt.BaseError):
        await buy_limit(ex, 0.01, 40000, clientOrderId="f-1")
    assert len(fake.orders) == int(placed)
    assert fake.posts == {"f-1": 1}
    found = await ex.fetch_open_orders(SYMBOL, None, None, {"orderLinkId": "f-1"})
    assert [o["status"] for o in found] == (["open"] if placed else [])
    # The fault was used up: the same request now goes through (a resend of a placed
    # order is the duplicate refusal).
    assert fake.pending_faults() == 0
    if placed:
        with pytest.raises(ccxt.InvalidOrder, match="170141"):
            await buy_limit(ex, 0.01, 40000, clientOrderId="f-1")
    else:
        again = await buy_limit(ex, 0.01, 40000, clientOrderId="f-1")
        assert (await fetch(ex, again["id"]))["status"] == "open"


async def test_200_html_is_placed_but_read_as_an_order_without_id(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    fake.inject("200_not_an_order_placed")
    order = await buy_limit(ex, 0.01, 40000, clientOrderId="h-1")
    assert (order["id"], order["status"], order["clientOrderId"]) == (None, None, None)
    assert fake.orders[0].orderLinkId == "h-1" and fake.orders[0].is_open


async def test_503_then_placed_places_the_order_later(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    fake.inject("503_then_placed", delay=0.2)
    with pytest.raises(ccxt.ExchangeError, match="10016"):
        await buy_limit(ex, 0.01, 40000, clientOrderId="l-1")
    assert fake.orders == []
    deadline = time.monotonic() + 5
    while not fake.orders and time.monotonic() < deadline:
        await ex.sleep(20)
    assert fake.orders[0].orderLinkId == "l-1"


async def test_429_says_when_the_limit_resets(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    fake.inject("429")
    with pytest.raises(ccxt.RateLimitExceeded):
        await ex.create_order(SYMBOL, "market", "buy", 0.01)
    headers = ex.last_response_headers
    assert headers["X-Bapi-Limit-Status"] == "0"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > fake.server_time()


async def test_timeout_places_the_order_and_replies_late(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    ex.timeout = 300  # keep the test fast
    fake.inject("timeout", delay=1.0)
    with pytest.raises(ccxt.RequestTimeout) as caught:
        await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "t-1"})
    assert type(caught.value) is ccxt.RequestTimeout
    assert fake.orders[0].status == "Filled"
    found = await ex.fetch_open_orders(SYMBOL, None, None, {"orderLinkId": "t-1"})
    assert [o["status"] for o in found] == ["closed"]


async def test_faults_apply_in_injection_order_to_matching_requests(
    fake: FakeBybit, ex: Any,
) -> None:
    await ex.load_markets()
    fake.inject("503_json", times=2)
    fake.inject("clock")
    fake.inject("503_plain", method="GET", path="/v5/account/wallet-balance")
    raised = []
    for _ in range(4):
        try:
            await ex.create_order(SYMBOL, "market", "buy", 0.01)
        except ccxt.BaseError as error:
            raised.append(type(error))
    assert raised == [ccxt.ExchangeError, ccxt.ExchangeError, ccxt.InvalidNonce]
    assert len(fake.orders) == 1
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await ex.fetch_balance()
    assert fake.requests[("POST", CREATE_PATH)] == 4


def test_inject_refuses_unknown_faults() -> None:
    server = new_fake()
    with pytest.raises(ValueError, match="unknown fault"):
        server.inject("503")
    with pytest.raises(ValueError, match="times"):
        server.inject("drop", times=0)


async def test_a_dropped_get_is_retried_once_by_aiohttp(fake: FakeBybit, ex: Any) -> None:
    await ex.load_markets()
    order = await buy_limit(ex, 0.01, 40000)
    fake.inject("drop", method="GET", path="/v5/order/realtime")
    assert (await fetch(ex, order["id"]))["status"] == "open"
    assert fake.requests[("GET", "/v5/order/realtime")] == 2
    fake.inject("drop", method="GET", path="/v5/order/realtime", times=2)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await fetch(ex, order["id"])


# --------------------------------------------------------------------- thread runner

def test_thread_runner_serves_sync_ccxt() -> None:
    server = new_fake()
    with FakeBybitThread(server) as running:
        assert running is server and server.url.startswith("http://127.0.0.1:")
        exchange = client(server, sync=True)
        exchange.load_markets()
        order = exchange.create_order(SYMBOL, "limit", "buy", 0.01, 40000)
        assert exchange.fetch_order(order["id"], SYMBOL, ACK)["status"] == "open"
    assert server.orders[0].status == "New"


def test_thread_runner_call_runs_on_the_loop() -> None:
    server = new_fake()
    thread = FakeBybitThread(server)
    with thread:
        exchange = client(server, sync=True)
        exchange.load_markets()
        exchange.create_order(SYMBOL, "limit", "sell", 0.1, 60000)
        assert thread.call(lambda: [o.status for o in server.open_orders()]) == ["New"]
        thread.call(lambda: server.fill_resting("BTCUSDT"))
        assert exchange.fetch_order("1", SYMBOL, ACK)["status"] == "closed"
        assert thread.call(lambda: server.balance("USDT").free) == Decimal("105994")
