"""What a venue's error reply means for an order: the pure rules of execd.venues.ccxt.exchanges.

Replies are the venues' own documented shapes: Binance ``{"code", "msg"}`` with an HTTP
status, OKX ``{"code": "1", "data": [{"sCode", "sMsg"}]}`` on HTTP 200, Bybit
``{"retCode", "retMsg"}`` on HTTP 200.
"""

from __future__ import annotations

from typing import Any

import pytest

from execd.model import ids
from execd.venues.ccxt import exchanges
from execd.venues.ccxt.exchanges import BINANCE, BYBIT, OKX, Exchange, read_reply, verdict


def okx(code: str, message: str = "") -> dict[str, Any]:
    return {"code": "1", "msg": "All operations failed",
            "data": [{"clOrdId": "x1", "ordId": "", "sCode": code, "sMsg": message}]}


@pytest.mark.parametrize(("spec", "status", "body", "error", "expected"), [
    # Binance: a 5xx is unknown whatever ccxt made of it (-1008 unmapped off its hosts).
    (BINANCE, 503, {"code": -1008, "msg": "Server is currently overloaded"}, "ExchangeError",
     "unknown"),
    (BINANCE, 503, "<html>503 Service Unavailable</html>", "ExchangeNotAvailable", "unknown"),
    (BINANCE, 400, {"code": -1007, "msg": "Timeout waiting for response"}, "RequestTimeout",
     "unknown"),
    (BINANCE, 429, {"code": -1003, "msg": "Too many requests"}, "DDoSProtection", "unknown"),
    (BINANCE, 400, {"code": -2010, "msg": "Duplicate order sent."}, "InvalidOrder", "exists"),
    (BINANCE, 400, {"code": -2010, "msg": "Account has insufficient balance"},
     "InsufficientFunds", "rejected"),
    (BINANCE, 400, {"code": -1021, "msg": "Timestamp outside of the recvWindow"},
     "InvalidNonce", "rejected"),
    # A 4xx is Binance's "malformed request": refused, even with a code ccxt lacks.
    (BINANCE, 400, {"code": -9999, "msg": "new code"}, "ExchangeError", "rejected"),
    # A 4xx page from a hop in between is not Binance's answer.
    (BINANCE, 403, "<html>403 Forbidden</html>", "ExchangeNotAvailable", "unknown"),
    # ccxt maps a 401 or 407 to AuthenticationError by status alone: a hop's page.
    (BINANCE, 401, "<html>401</html>", "AuthenticationError", "unknown"),
    (OKX, 407, "<html>Proxy Authentication Required</html>", "AuthenticationError", "unknown"),
    # A gateway's JSON code is not Binance's (Binance's are negative).
    (BINANCE, 400, {"code": 400, "message": "Bad Request"}, "BadRequest", "unknown"),
    (BINANCE, 401, {"code": -2015, "msg": "Invalid API-key"}, "AuthenticationError",
     "rejected"),
    # OKX answers HTTP 200 and puts the per-order code in data[].sCode.
    (OKX, 200, okx("51016", "Duplicated clOrdId"), "InvalidOrder", "exists"),
    (OKX, 200, okx("50004", "API endpoint request timeout"), "RequestTimeout", "unknown"),
    (OKX, 200, okx("51008", "Order failed. Insufficient balance"), "InsufficientFunds",
     "rejected"),
    (OKX, 200, okx("59999", "a code nobody maps"), "ExchangeError", "unknown"),
    (OKX, 500, {"code": "50026", "msg": "System error"}, "ExchangeNotAvailable", "unknown"),
    (OKX, 200, {"code": "50013", "msg": "Systems are busy", "data": []}, "ExchangeError",
     "unknown"),
    # Bybit: HTTP 200 with retCode.
    (BYBIT, 200, {"retCode": 110072, "retMsg": "OrderLinkedID is duplicate"}, "InvalidOrder",
     "exists"),
    (BYBIT, 200, {"retCode": 10016, "retMsg": "Internal error"}, "ExchangeError", "unknown"),
    (BYBIT, 200, {"retCode": 170131, "retMsg": "Insufficient balance."}, "InsufficientFunds",
     "rejected"),
    (BYBIT, 200, {"retCode": 123456, "retMsg": "unmapped"}, "ExchangeError", "unknown"),
    # Not a documented code, but a refusal ccxt mapped from the venue's own table.
    (BYBIT, 200, {"retCode": 170130, "retMsg": "Data sent for parameter exceeds limit"},
     "BadRequest", "rejected"),
])
def test_the_venue_reply_decides_before_ccxts_class(spec: Exchange, status: int, body: Any,
                                                     error: str, expected: str) -> None:
    assert verdict(spec, read_reply(spec, status, body), error) == expected


def test_the_json_of_a_text_body_is_read_and_a_page_has_no_code() -> None:
    reply = read_reply(BINANCE, 503, '{"code": -1001, "msg": "Internal error"}')
    assert (reply.code, reply.message) == ("-1001", "Internal error")
    page = read_reply(BINANCE, 200, "<html>checking your browser</html>")
    assert page.code is None and page.message.startswith("<html>")


def test_without_a_reply_only_a_local_refusal_is_a_refusal() -> None:
    # ccxt refusing before sending (say ArgumentsRequired) sent nothing; anything else
    # without a reply may have reached the venue.
    assert verdict(BINANCE, None, "ArgumentsRequired") == "rejected"
    assert verdict(BINANCE, None, "ExchangeError") == "unknown"
    assert verdict(BINANCE, None, "TypeError") == "unknown"


@pytest.mark.parametrize("order", [None, "<html></html>", {"id": None, "status": None},
                                   {"id": "", "status": "open"}, []])
def test_a_create_reply_without_an_order_id_is_not_an_order(order: Any) -> None:
    assert exchanges.readable_order(order, "x1") is not None


def test_a_create_reply_with_an_id_is_an_order_even_without_a_status() -> None:
    # OKX and Bybit answer a create with ids only: the order is then followed.
    assert exchanges.readable_order({"id": "123", "status": None}, "x1") is None
    assert exchanges.readable_order({"id": "123", "clientOrderId": "x1"}, "x1") is None


def test_a_reply_naming_another_client_order_id_is_not_this_order() -> None:
    assert "another order" in (exchanges.readable_order(
        {"id": "1", "status": "closed", "clientOrderId": "x2"}, "x1") or "")


@pytest.mark.parametrize("spec", list(exchanges.SUPPORTED.values()))
def test_execd_client_order_ids_fit_each_supported_venue(spec: Exchange) -> None:
    import uuid
    for n in range(50):
        client_id = ids.client_order_id(uuid.UUID(int=n), "v", "x", 32)
        assert exchanges.client_id_problem(spec, client_id) is None
    assert exchanges.client_id_problem(spec, "x" * (spec.client_id_max + 1)) is not None


@pytest.mark.parametrize("name", ["kraken", "coinbase", "coinbaseadvanced", "kucoin"])
def test_exchanges_without_a_safe_client_order_id_path_are_refused(name: str) -> None:
    spec = exchanges.exchange(name)
    assert spec.unsafe is not None and name not in exchanges.SUPPORTED


async def requests_of(name: str, market_id: str, info: dict[str, Any]) -> list[str]:
    """What the installed ccxt puts on the wire for a create and a lookup by client id.

    The real ccxt class builds and signs both requests; its ``fetch`` is replaced by
    one that keeps the request and fails it, so nothing leaves the machine.
    """
    import ccxt.async_support as ccxt_async
    from ccxt.base.errors import NetworkError

    exchange = getattr(ccxt_async, name)({"apiKey": "k", "secret": "c2VjcmV0c2VjcmV0"})
    sent: list[str] = []

    async def fetch(url: str, method: str = "GET", headers: Any = None,
                    body: Any = None) -> Any:
        sent.append(f"{method} {url} {body}")
        raise NetworkError("kept")

    exchange.fetch = fetch
    exchange.set_markets([{
        "id": market_id, "symbol": "BTC/USD", "base": "BTC", "quote": "USD", "baseId": "BTC",
        "quoteId": "USD", "type": "spot", "spot": True, "active": True, "info": info,
        "precision": {"amount": 1e-8, "price": 0.01},
        "limits": {"amount": {}, "price": {}, "cost": {}}}])
    try:
        for call in (exchange.create_order("BTC/USD", "limit", "buy", 0.01, 50000,
                                           {"clientOrderId": "xabc123"}),
                     exchange.fetch_order(None, "BTC/USD", {"clientOrderId": "xabc123"})):
            with pytest.raises(NetworkError):
                await call
    finally:
        await exchange.close()
    return sent


async def test_coinbase_is_refused_because_ccxt_sends_its_own_random_client_order_id() -> None:
    create, lookup = await requests_of("coinbase", "BTC-USD", {})
    assert "xabc123" not in create and '"client_order_id":"ccxt-' in create
    assert "/orders/historical/None" in lookup
    assert "ccxt drops the client order id" in (exchanges.exchange("coinbase").unsafe or "")


async def test_kraken_is_refused_because_ccxt_looks_client_ids_up_as_the_integer_userref(
        ) -> None:
    create, lookup = await requests_of("kraken", "XXBTZUSD", {"altname": "XBTUSD"})
    assert "cl_ord_id=xabc123" in create
    assert "txid=None" in lookup and "userref=xabc123" in lookup
    assert "integer userref" in (exchanges.exchange("kraken").unsafe or "")
