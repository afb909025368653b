"""A fake Binance spot REST server for tests and benchmarks.

The real ``ccxt.async_support.binance`` class talks to it over HTTP on 127.0.0.1
once its API URLs are pointed here with :func:`rewrite_urls`.  It implements the
handful of spot endpoints an order-execution daemon needs (exchange info, time,
new/query/cancel order, open orders, account, the account's trades), signs and
checks requests the way Binance does (``X-MBX-APIKEY`` header, HMAC-SHA256
``signature`` over the exact parameter string, ``timestamp`` within ``recvWindow``),
applies the symbol filters, matches orders against a single "market price" per symbol, keeps
free/locked balances and charges a flat fee. As on Binance spot, a buy pays its
commission in the base asset it receives and a sell in the quote asset, unless
``fee_asset`` is set (Binance's "pay fees with BNB"): then every commission is paid
in that asset while the account holds enough of it.

``GET /api/v3/myTrades`` serves every fill of every order as Binance's account trade
list does (fields ``symbol, id, orderId, orderListId, price, qty, quoteQty,
commission, commissionAsset, time, isBuyer, isMaker, isBestMatch``; only Binance's
documented parameter combinations; the newest ``limit`` trades unless ``fromId`` or
``startTime`` say where to start). In ccxt 4.5, ``binance.fetch_order_trades(id,
symbol)`` is ``fetch_my_trades(symbol, params={"orderId": id})``: both make this one
request (spot only; both need the symbol).

Faults can be injected per (method, path) with :meth:`FakeBinance.inject`, and
the :attr:`FakeBinance.on_order` hook lets a test act (e.g. SIGKILL a daemon)
right before or right after an order is placed.

**The user data stream** follows Binance's spot WebSocket API (``web-socket-api.md`` and
``user-data-stream.md``), which is what ``ccxt.pro.binance.watch_orders`` uses for spot
(``userDataStream.subscribe.signature``, not the listen key): a websocket at
``/ws-api/v3`` takes JSON requests ``{"id", "method", "params"}`` and answers
``{"id", "status", "result" | "error"}``. A signature subscription (``apiKey``,
``timestamp``, optional ``recvWindow``, ``signature`` = HMAC-SHA256 of the other
parameters sorted by name as ``k=v&...``) gets a ``subscriptionId``; from then on every
order change of the account is pushed as ``{"subscriptionId", "event": executionReport}``
(execution types NEW, TRADE, CANCELED, EXPIRED). Stream faults
(:meth:`FakeBinance.stream_fault`, :meth:`FakeBinance.drop_streams`) drop the socket,
lose events or delay them.

Where ccxt places what (see ``binance.sign()``): GET and DELETE requests carry all
parameters in the query string; POST requests carry them in an
``application/x-www-form-urlencoded`` body.  Like Binance, the server accepts
either and verifies the signature over "query string + body" with the
``signature`` parameter removed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import string
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from tests.fakes.thread import FakeThread

__all__ = [
    "FAULTS",
    "STREAM_FAULTS",
    "Balance",
    "FakeBinance",
    "FakeBinanceThread",
    "FakeOrder",
    "Fill",
    "Market",
    "rewrite_urls",
]


# Binance prints quantities and prices with eight decimal places.
_EIGHT = Decimal("0.00000001")
_ZERO = Decimal(0)

# Every status Binance uses for a spot order.
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})

# Order types Binance knows about; the fake executes LIMIT, LIMIT_MAKER and MARKET.
_KNOWN_TYPES = frozenset({
    "LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT", "LIMIT_MAKER",
})
_EXECUTED_TYPES = frozenset({"LIMIT", "LIMIT_MAKER", "MARKET"})
_TIME_IN_FORCE = frozenset({"GTC", "IOC", "FOK"})
_RESPONSE_TYPES = frozenset({"ACK", "RESULT", "FULL"})

# Binance's documented pattern for client order ids.
_CLIENT_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
_CLIENT_ID = re.compile(_CLIENT_ID_PATTERN)
_NUMBER_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_NUMBER = re.compile(_NUMBER_PATTERN)

# Faults that inject() accepts.
FAULTS = frozenset({
    "lost_reply", "timeout", "503_json", "503_json_placed", "503_plain", "429", "drop",
    "clock", "503_then_placed", "5xx_unknown_code_placed", "200_not_an_order_placed",
    "venue_busy_placed", "stale_trades", "200_other_order",
})
_BEFORE = frozenset({"503_json", "503_plain", "429", "drop", "clock"})
# Faults that stream_fault() accepts, each applied to the next pushed events.
STREAM_FAULTS = frozenset({"drop", "miss", "delay", "refuse"})
# Where the WebSocket API listens (wss://ws-api.binance.com:443/ws-api/v3).
WS_API_PATH = "/ws-api/v3"

# Binance's supported optional parameters of GET /api/v3/myTrades (besides limit).
_TRADE_QUERIES = frozenset(frozenset(c) for c in (
    (), ("orderId",), ("startTime",), ("endTime",), ("fromId",), ("startTime", "endTime"),
    ("orderId", "fromId")))
_DAY_MS = 24 * 60 * 60 * 1000
# Set on a request to GET /api/v3/myTrades that the "stale_trades" fault applies to.
_STALE_TRADES = web.RequestKey("stale_trades", bool)

_INTERNAL_ERROR = "Internal error; unable to process your request. Please try again."
_MAX_RECV_WINDOW = Decimal(60000)
_DEFAULT_RECV_WINDOW = Decimal(5000)
_DEFAULT_BALANCE = Decimal(10) ** 9


def _fmt(value: Decimal) -> str:
    """A decimal the way Binance prints it: fixed point, eight places."""
    return format(value.quantize(_EIGHT), "f")


def _ws_value(value: Any) -> str:
    """A WebSocket API parameter as it appears in the signature payload."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def rewrite_urls(exchange: Any, base_url: str) -> None:
    """Point every API URL of a ccxt exchange at ``base_url``, keeping each URL's path."""
    api = exchange.urls["api"]
    for key, url in list(api.items()):
        if isinstance(url, str):
            api[key] = base_url.rstrip("/") + urllib.parse.urlsplit(url).path


@dataclass
class Market:
    """One spot symbol: its filters and the fake's current market price."""

    base: str
    quote: str
    step_size: Decimal   # LOT_SIZE stepSize
    min_qty: Decimal     # LOT_SIZE minQty
    max_qty: Decimal     # LOT_SIZE maxQty
    tick_size: Decimal   # PRICE_FILTER tickSize
    min_price: Decimal   # PRICE_FILTER minPrice
    max_price: Decimal   # PRICE_FILTER maxPrice
    min_notional: Decimal  # NOTIONAL minNotional (applyMinToMarket true)
    price: Decimal       # market orders (and crossing limit orders) fill here
    liquidity: Decimal | None = None  # max quantity any one order can fill; None = unlimited
    order_types: tuple[str, ...] = ("LIMIT", "LIMIT_MAKER", "MARKET")
    status: str = "TRADING"
    max_notional: Decimal = Decimal(9000000)

    @property
    def symbol(self) -> str:
        """The Binance market id, e.g. ``BTCUSDT``."""
        return self.base + self.quote


@dataclass
class Fill:
    """One trade of an order."""

    price: Decimal
    qty: Decimal
    commission: Decimal
    commissionAsset: str
    tradeId: int
    time: int = 0
    isMaker: bool = False


@dataclass
class FakeOrder:
    """One order as the fake exchange keeps it (field names follow Binance)."""

    orderId: int
    clientOrderId: str
    symbol: str
    side: str
    type: str
    timeInForce: str
    origQty: Decimal
    price: Decimal
    time: int
    updateTime: int
    executedQty: Decimal = _ZERO
    cummulativeQuoteQty: Decimal = _ZERO
    origQuoteOrderQty: Decimal = _ZERO
    status: str = "NEW"
    fills: list[Fill] = field(default_factory=list)
    # Amount still held in ``locked`` for this order (quote for buys, base for sells).
    locked: Decimal = _ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.origQty - self.executedQty


@dataclass
class Balance:
    free: Decimal = _ZERO
    locked: Decimal = _ZERO


@dataclass
class _Socket:
    queue: asyncio.Queue[str | None]
    transport: asyncio.Transport | None
    subscriptions: dict[int, str] = field(default_factory=dict)
    next_id: int = 0


@dataclass
class _Fault:
    kind: str
    method: str
    path: str
    remaining: int
    delay: float


class _ApiError(Exception):
    """A Binance error reply: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _mandatory(name: str) -> _ApiError:
    return _ApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _not_required(name: str) -> _ApiError:
    return _ApiError(-1106, f"Parameter '{name}' sent when not required.")


def _error_response(error: _ApiError) -> web.Response:
    return web.json_response({"code": error.code, "msg": error.msg}, status=error.status)


_Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


class FakeBinance:
    """An in-process fake of Binance's spot REST API (see the module docstring)."""

    def __init__(
        self,
        markets: dict[str, Market],
        *,
        api_key: str,
        secret: str,
        balances: dict[str, Decimal] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
        fee_asset: str | None = None,
        fee_asset_price: Decimal = Decimal(1),
    ) -> None:
        self.markets: dict[str, Market] = {}
        for key, market in markets.items():
            if key.replace("/", "") != market.symbol:
                raise ValueError(f"market key {key!r} does not match {market.base}/{market.quote}")
            self.markets[market.symbol] = market
        self.api_key = api_key
        self.secret = secret
        self.fee_rate = fee_rate
        # Binance's "pay fees with BNB": every commission in this asset, valued at
        # fee_asset_price quote units each, while the account holds enough of it.
        self.fee_asset = fee_asset
        self.fee_asset_price = fee_asset_price
        if balances is None:
            assets = {a for m in self.markets.values() for a in (m.base, m.quote)}
            balances = dict.fromkeys(sorted(assets), _DEFAULT_BALANCE)
        self.balances: dict[str, Balance] = {a: Balance(free=v) for a, v in balances.items()}
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.orders: list[FakeOrder] = []
        # POST /api/v3/order requests per newClientOrderId, counted on arrival (before
        # any fault or check): every send that reached the venue.
        self.posts: collections.Counter[str] = collections.Counter()
        self.on_order: Callable[[str, FakeOrder | None], None] | None = None
        # Added to the server clock (ms), to simulate a client clock that drifted.
        self.time_offset_ms = 0
        # GET /sapi/v1/system/status: 0 normal, 1 system maintenance (Binance's codes).
        self.system_status = 0
        self.url = ""
        self.port = 0
        self._faults: list[_Fault] = []
        self._late: set[asyncio.Task[None]] = set()
        # Indexes, so that a long benchmark stays O(1) per request.
        self._open: dict[int, FakeOrder] = {}
        self._by_client_id: dict[str, FakeOrder] = {}  # newest order with each client id
        self._by_symbol_client_id: dict[tuple[str, str], FakeOrder] = {}
        self._trade_ids = 0
        # The user data stream: each open WebSocket API connection, its outgoing queue
        # and its subscriptions (subscriptionId -> API key).
        self._sockets: dict[web.WebSocketResponse, _Socket] = {}
        self._stream_faults: list[_Fault] = []
        self._refusals = 0
        # Connections opened to the WebSocket API, and every event pushed (as sent).
        self.stream_connections = 0
        self.pushed: list[dict[str, Any]] = []
        # Every trade, oldest first (trade ids are its index + 1).
        self._trades: list[tuple[FakeOrder, Fill]] = []
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._routes: dict[tuple[str, str], _Handler] = {
            ("GET", "/api/v3/ping"): self._ping,
            ("GET", "/api/v3/time"): self._time,
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("POST", "/api/v3/order"): self._signed(self._new_order),
            ("GET", "/api/v3/order"): self._signed(self._query_order),
            ("DELETE", "/api/v3/order"): self._signed(self._cancel_order),
            ("GET", "/api/v3/openOrders"): self._signed(self._open_orders),
            ("GET", "/api/v3/account"): self._signed(self._account),
            ("GET", "/api/v3/myTrades"): self._signed(self._my_trades),
            ("GET", "/sapi/v1/system/status"): self._system_status,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 = any free port); sets :attr:`port` and :attr:`url`."""
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.url = f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening; replies still being delayed by a "timeout" fault are cut short."""
        self._closing.set()
        self.drop_streams()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ test helpers

    def open_orders(self) -> list[FakeOrder]:
        """Orders that are NEW or PARTIALLY_FILLED, oldest first."""
        return [o for o in self._open.values() if o.is_open]

    def balance(self, asset: str) -> Balance:
        """The account's balance of ``asset`` (zero if it has none)."""
        return self.balances.setdefault(asset, Balance())

    def inject(
        self,
        fault: str,
        *,
        method: str = "POST",
        path: str = "/api/v3/order",
        times: int = 1,
        delay: float = 5.0,
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``method path``.

        Faults queue in the order they were injected: a request takes the first
        pending fault that matches it.

        - ``lost_reply``: process the request (place the order if valid), then drop the
          connection without replying.
        - ``timeout``: process the request, then hold the reply for ``delay`` seconds.
        - ``503_json``: HTTP 503 ``{"code": -1001, ...}``; nothing is processed.
        - ``503_json_placed``: the same reply, but the request *is* processed.
        - ``503_then_placed``: the same reply at once, and the request is processed
          ``delay`` seconds later (Binance: "execution status unknown").
        - ``503_plain``: HTTP 503 with an HTML body; nothing is processed.
        - ``429``: HTTP 429 ``{"code": -1003, ...}`` with ``Retry-After: 1``; nothing processed.
        - ``drop``: drop the connection before processing anything.
        - ``clock``: reply -1021 (timestamp outside recvWindow); nothing is processed.
        - ``5xx_unknown_code_placed``: the request is processed, then HTTP 503 with
          ``{"code": -1008, "msg": "Server is currently overloaded..."}`` (SERVER_BUSY,
          which ccxt maps only for Binance's own hosts).
        - ``200_not_an_order_placed``: processed, then HTTP 200 with an HTML page (a
          proxy's answer in place of the venue's).
        - ``200_other_order``: not processed; HTTP 200 with the reply of the newest order
          the fake holds (a caching or confused proxy answering with another request's
          reply).
        - ``venue_busy_placed``: processed, then HTTP 400 ``{"code": -1007, ...}``
          (TIMEOUT: "Send status unknown; execution status unknown").
        - ``stale_trades`` (for ``GET /api/v3/myTrades``): answer as if each order's
          newest trade had not reached the trade history yet (Binance serves it from
          memory, then its database: a trade list can lag the order).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.append(_Fault(fault, method.upper(), path, times, delay))

    def pending_faults(self) -> int:
        """How many injected fault applications have not been used yet."""
        return sum(f.remaining for f in self._faults)

    def fill_resting(self, symbol: str, quantity: Decimal | None = None) -> None:
        """Fill open limit orders of ``symbol`` at their limit prices, oldest first.

        With ``quantity`` at most that much (in base units) is filled in total, as
        if the market traded that much through the orders' prices.
        """
        market = self._market_for(symbol)
        left = quantity
        for order in self.open_orders():
            if left is not None and left <= 0:
                break
            if order.symbol != market.symbol:
                continue
            qty = order.remaining if left is None else min(order.remaining, left)
            self._execute(order, market, qty, order.price, maker=True)
            if left is not None:
                left -= qty
            order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
            self._settle(order)
            self._report(order, "TRADE", order.fills[-1])

    def stream_fault(self, fault: str, *, times: int = 1, delay: float = 0.5) -> None:
        """Apply ``fault`` to the next ``times`` events the user data stream would push.

        - ``drop``: instead of pushing the event, drop every WebSocket API connection
          (the event is lost with it; clients must reconnect and subscribe again).
        - ``miss``: the event is not pushed (the socket stays up).
        - ``delay``: the event is pushed ``delay`` seconds late.
        - ``refuse``: not an event: the next ``times`` subscription requests are
          answered 503 (-1001, the venue's internal error) and nothing is subscribed.
        """
        if fault not in STREAM_FAULTS:
            raise ValueError(f"unknown stream fault {fault!r}; expected one of "
                             f"{sorted(STREAM_FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        if fault == "refuse":
            self._refusals += times
            return
        self._stream_faults.append(_Fault(fault, "", "", times, delay))

    def drop_streams(self) -> None:
        """Drop every WebSocket API connection now, without a close frame."""
        for state in list(self._sockets.values()):
            state.subscriptions.clear()
            if state.transport is not None:
                state.transport.abort()
            state.queue.put_nowait(None)

    def subscribers(self) -> int:
        """How many user data stream subscriptions are active, over all connections."""
        return sum(len(state.subscriptions) for state in self._sockets.values())

    def server_time(self) -> int:
        """The fake's clock in milliseconds."""
        return _now_ms() + self.time_offset_ms

    # ------------------------------------------------------------------ HTTP plumbing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        if (method, path) == ("GET", WS_API_PATH):
            # Counted apart (stream_connections): requests counts REST calls only.
            return await self._ws_api(request)
        self.requests[(method, path)] += 1
        if (method, path) == ("POST", "/api/v3/order"):
            sent = urllib.parse.parse_qs(self._raw_query(request) + "&" + await request.text())
            self.posts[(sent.get("newClientOrderId") or [""])[0]] += 1
        fault = self._take_fault(method, path)
        if fault is not None and fault.kind in _BEFORE:
            return self._fault_reply(request, fault.kind)
        if fault is not None and fault.kind == "200_other_order" and self.orders:
            return web.json_response(self._new_order_reply(self.orders[-1], "RESULT"))
        handler = self._routes.get((method, path))
        if fault is not None and fault.kind == "503_then_placed" and handler is not None:
            params = self._params(request, await request.text())
            task = asyncio.get_running_loop().create_task(
                self._later(fault.delay, handler, request, params))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return self._fault_reply(request, "503_json")
        if handler is None:
            response: web.StreamResponse = _error_response(
                _ApiError(-1020, "This operation is not supported.", status=404))
        else:
            try:
                params = self._params(request, await request.text())
                if fault is not None and fault.kind == "stale_trades":
                    request[_STALE_TRADES] = True
                response = await handler(request, params)
            except _ApiError as error:
                response = _error_response(error)
        if fault is None or fault.kind == "stale_trades":
            return response
        if fault.kind == "lost_reply":
            return self._fault_reply(request, "drop")
        if fault.kind == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.delay)
            return response
        if fault.kind == "5xx_unknown_code_placed":
            return _error_response(_ApiError(
                -1008, "Server is currently overloaded with other requests. Please try again "
                       "in a few minutes.", status=503))
        if fault.kind == "200_not_an_order_placed":
            return web.Response(status=200, content_type="text/html",
                                text="<html><body>Please wait while we check your browser"
                                     "</body></html>")
        if fault.kind == "venue_busy_placed":
            return _error_response(_ApiError(
                -1007, "Timeout waiting for response from backend server. Send status "
                       "unknown; execution status unknown."))
        return self._fault_reply(request, "503_json")  # 503_json_placed

    async def _later(self, delay: float, handler: _Handler, request: web.Request,
                     params: dict[str, str]) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(_ApiError):
            await handler(request, params)

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.method == method and fault.path == path:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _fault_reply(self, request: web.Request, kind: str) -> web.StreamResponse:
        if kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client: the transport is gone.
            return web.Response(status=500)
        if kind == "503_json":
            return _error_response(_ApiError(-1001, _INTERNAL_ERROR, status=503))
        if kind == "503_plain":
            return web.Response(
                status=503, content_type="text/html",
                text="<html><body><h1>503 Service Unavailable</h1>"
                     "No server is available to handle this request.</body></html>")
        if kind == "429":
            response = _error_response(_ApiError(
                -1003, "Too many requests; current limit of IP is 6000 requests per minute. "
                       "Please use WebSocket Streams for live updates to avoid polling the API.",
                status=429))
            response.headers["Retry-After"] = "1"
            return response
        # clock
        return _error_response(
            _ApiError(-1021, "Timestamp for this request is outside of the recvWindow."))

    @staticmethod
    def _raw_query(request: web.Request) -> str:
        return request.raw_path.partition("?")[2]

    def _params(self, request: web.Request, body: str) -> dict[str, str]:
        """All parameters of a request: query string, then form body."""
        params: dict[str, str] = {}
        for raw in (self._raw_query(request), body):
            for name, value in urllib.parse.parse_qsl(raw, keep_blank_values=True):
                if name in params:
                    raise _ApiError(-1101, "Duplicate values for a parameter detected.")
                params[name] = value
        return params

    def _signed(self, handler: _Handler) -> _Handler:
        async def checked(request: web.Request, params: dict[str, str]) -> web.StreamResponse:
            self._authenticate(request, params, await request.text())
            return await handler(request, params)
        return checked

    def _authenticate(self, request: web.Request, params: dict[str, str], body: str) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise _ApiError(-2014, "API-key format invalid.", status=401)
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise _ApiError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
        if not params.get("timestamp"):
            raise _mandatory("timestamp")
        if "recvWindow" in params and self._number(params, "recvWindow") > _MAX_RECV_WINDOW:
            raise _ApiError(-1131, "recvWindow must be less than 60000")
        signature = params.get("signature")
        if not signature:
            raise _mandatory("signature")
        payload = "".join(
            "&".join(part for part in raw.split("&") if not part.startswith("signature="))
            for raw in (self._raw_query(request), body)
        )
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise _ApiError(-1022, "Signature for this request is not valid.")
        self._check_time(params)

    def _check_time(self, params: dict[str, str]) -> None:
        """``timestamp`` within ``recvWindow`` of the server's clock (Timing security)."""
        recv_window = _DEFAULT_RECV_WINDOW
        if "recvWindow" in params:
            recv_window = self._number(params, "recvWindow")
            if recv_window > _MAX_RECV_WINDOW:
                raise _ApiError(-1131, "recvWindow must be less than 60000")
        try:
            timestamp = int(params["timestamp"])
        except ValueError:
            raise _ApiError(-1100, "Illegal characters found in parameter 'timestamp'; "
                                   "legal range is '^[0-9]{1,20}$'.") from None
        now = self.server_time()
        if timestamp >= now + 1000:
            raise _ApiError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - timestamp > recv_window:
            raise _ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")

    @staticmethod
    def _number(params: dict[str, str], name: str) -> Decimal:
        raw = params[name]
        if not _NUMBER.fullmatch(raw):
            raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'; "
                                   f"legal range is '{_NUMBER_PATTERN}'.")
        try:
            return Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'.") from None

    # ------------------------------------------------------------------ public endpoints

    async def _ping(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response({})

    async def _time(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return web.json_response({"serverTime": self.server_time()})

    async def _system_status(self, request: web.Request, params: dict[str, str]
                             ) -> web.StreamResponse:
        """GET /sapi/v1/system/status (wallet endpoints, no signature): whether the
        platform is in maintenance."""
        normal = self.system_status == 0
        return web.json_response({"status": self.system_status,
                                  "msg": "normal" if normal else "system_maintenance"})

    async def _exchange_info(
        self, request: web.Request, params: dict[str, str],
    ) -> web.StreamResponse:
        markets = list(self.markets.values())
        if "symbol" in params:
            markets = [self._known_symbol(params["symbol"])]
        return web.json_response({
            "timezone": "UTC",
            "serverTime": self.server_time(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                 "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                 "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(m) for m in markets],
        })

    @staticmethod
    def _symbol_info(market: Market) -> dict[str, Any]:
        return {
            "symbol": market.symbol,
            "status": market.status,
            "baseAsset": market.base,
            "baseAssetPrecision": 8,
            "quoteAsset": market.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": list(market.order_types),
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": _fmt(market.min_price),
                 "maxPrice": _fmt(market.max_price), "tickSize": _fmt(market.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": _fmt(market.min_qty),
                 "maxQty": _fmt(market.max_qty), "stepSize": _fmt(market.step_size)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": _fmt(_ZERO),
                 "maxQty": _fmt(market.max_qty), "stepSize": _fmt(_ZERO)},
                {"filterType": "NOTIONAL", "minNotional": _fmt(market.min_notional),
                 "applyMinToMarket": True, "maxNotional": _fmt(market.max_notional),
                 "applyMaxToMarket": False, "avgPriceMins": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": [
                "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
        }

    # ------------------------------------------------------------------ signed endpoints

    async def _new_order(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        self._hook("received", None)
        order, response_type = self._place(params)
        self._hook("placed", order)
        return web.json_response(self._new_order_reply(order, response_type))

    async def _query_order(
        self, request: web.Request, params: dict[str, str],
    ) -> web.StreamResponse:
        order = self._find(params)
        if order is None:
            raise _ApiError(-2013, "Order does not exist.")
        return web.json_response(self._order_view(order))

    async def _cancel_order(
        self, request: web.Request, params: dict[str, str],
    ) -> web.StreamResponse:
        order = self._find(params)
        if order is None or not order.is_open:
            raise _ApiError(-2011, "Unknown order sent.")
        cancel_id = params.get("newClientOrderId") or self._random_client_id()
        order.status = "CANCELED"
        order.updateTime = self.server_time()
        self._settle(order)
        self._report(order, "CANCELED", cancel_id=cancel_id)
        return web.json_response({
            "symbol": order.symbol,
            "origClientOrderId": order.clientOrderId,
            "orderId": order.orderId,
            "orderListId": -1,
            # As on Binance: the id of the cancel request, not of the order.
            "clientOrderId": cancel_id,
            "transactTime": order.updateTime,
            **self._order_amounts(order),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        })

    async def _open_orders(
        self, request: web.Request, params: dict[str, str],
    ) -> web.StreamResponse:
        symbol = params.get("symbol")
        if symbol:
            self._known_symbol(symbol)
        else:
            symbol = None
        return web.json_response([
            self._order_view(o) for o in self.open_orders() if symbol in (None, o.symbol)
        ])

    async def _my_trades(self, request: web.Request, params: dict[str, str]
                         ) -> web.StreamResponse:
        """GET /api/v3/myTrades: the account's trades of one symbol, oldest first.

        Binance accepts only these optional parameter combinations (besides ``limit``):
        none, orderId, startTime, endTime, fromId, startTime + endTime, orderId +
        fromId; anything else is -1128. Without fromId or startTime the newest
        ``limit`` trades (default 500, at most 1000) are returned.
        """
        if not params.get("symbol"):
            raise _mandatory("symbol")
        market = self._known_symbol(params["symbol"])
        ids: dict[str, int] = {}
        for name in ("orderId", "fromId", "startTime", "endTime", "limit"):
            if name in params:
                raw = params[name]
                if not raw.isdigit() or len(raw) > 20:
                    raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'; "
                                           "legal range is '^[0-9]{1,20}$'.")
                ids[name] = int(raw)
        chosen = frozenset(name for name in ids if name != "limit")
        if chosen not in _TRADE_QUERIES:
            raise _ApiError(-1128, "Combination of optional parameters invalid.")
        limit = ids.get("limit", 500)
        if not 1 <= limit <= 1000:
            raise _ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        start, end = ids.get("startTime"), ids.get("endTime")
        if start is not None and end is not None and end - start > _DAY_MS:
            raise _ApiError(-1127, "More than 24 hours between startTime and endTime.")
        if "orderId" in ids:
            index = ids["orderId"] - 1
            order = self.orders[index] if 0 <= index < len(self.orders) else None
            trades = ([(order, f) for f in order.fills]
                      if order is not None and order.symbol == market.symbol else [])
            if order is not None and request.get(_STALE_TRADES) and trades:
                trades = trades[:-1]
        else:
            trades = [(o, f) for o, f in self._trades if o.symbol == market.symbol]
            if request.get(_STALE_TRADES):
                newest = {id(o): f.tradeId for o, f in trades}
                trades = [(o, f) for o, f in trades if newest[id(o)] != f.tradeId]
        if "fromId" in ids:
            trades = [t for t in trades if t[1].tradeId >= ids["fromId"]][:limit]
        elif start is not None:
            trades = [t for t in trades if t[1].time >= start
                      and (end is None or t[1].time <= end)][:limit]
        else:
            trades = [t for t in trades if end is None or t[1].time <= end][-limit:]
        return web.json_response([self._trade_view(o, f) for o, f in trades])

    @staticmethod
    def _trade_view(order: FakeOrder, fill: Fill) -> dict[str, Any]:
        return {
            "symbol": order.symbol, "id": fill.tradeId, "orderId": order.orderId,
            "orderListId": -1, "price": _fmt(fill.price), "qty": _fmt(fill.qty),
            "quoteQty": _fmt(fill.qty * fill.price), "commission": _fmt(fill.commission),
            "commissionAsset": fill.commissionAsset, "time": fill.time,
            "isBuyer": order.side == "BUY", "isMaker": fill.isMaker, "isBestMatch": True,
        }

    async def _account(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        omit_zero = params.get("omitZeroBalances", "false").lower() == "true"
        rate = _fmt(self.fee_rate)
        bps = int(self.fee_rate * 10000)
        return web.json_response({
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": _fmt(_ZERO),
                                "seller": _fmt(_ZERO)},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.server_time(),
            "accountType": "SPOT",
            "balances": [
                {"asset": asset, "free": _fmt(b.free), "locked": _fmt(b.locked)}
                for asset, b in sorted(self.balances.items())
                if not omit_zero or b.free or b.locked
            ],
            "permissions": ["SPOT"],
            "uid": 1,
        })

    # ------------------------------------------------------------------ order logic

    def _hook(self, phase: str, order: FakeOrder | None) -> None:
        if self.on_order is not None:
            self.on_order(phase, order)

    def _market_for(self, symbol: str) -> Market:
        market = self.markets.get(symbol.replace("/", ""))
        if market is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        return market

    def _known_symbol(self, symbol: str) -> Market:
        market = self.markets.get(symbol)
        if market is None:
            raise _ApiError(-1121, "Invalid symbol.")
        return market

    @staticmethod
    def _random_client_id() -> str:
        alphabet = string.ascii_letters + string.digits
        return "".join(secrets.choice(alphabet) for _ in range(22))

    def _find(self, params: dict[str, str]) -> FakeOrder | None:
        if not params.get("symbol"):
            raise _mandatory("symbol")
        market = self._known_symbol(params["symbol"])
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise _ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                   "but both were empty/null!")
        if order_id:
            if not order_id.isdigit():
                raise _ApiError(-1100, "Illegal characters found in parameter 'orderId'; "
                                       "legal range is '^[0-9]{1,20}$'.")
            index = int(order_id) - 1
            if 0 <= index < len(self.orders) and self.orders[index].symbol == market.symbol:
                return self.orders[index]
            return None
        # A reused client id means the newest order with it.
        return self._by_symbol_client_id.get((market.symbol, client_id or ""))

    def _place(self, params: dict[str, str]) -> tuple[FakeOrder, str]:
        """Validate a new-order request, then place and match it."""
        for name in ("symbol", "side", "type"):
            if not params.get(name):
                raise _mandatory(name)
        market = self._known_symbol(params["symbol"])
        side = params["side"]
        if side not in ("BUY", "SELL"):
            raise _ApiError(-1117, "Invalid side.")
        kind = params["type"]
        if kind not in _KNOWN_TYPES:
            raise _ApiError(-1116, "Invalid orderType.")
        if kind not in market.order_types:
            name = kind.replace("_", " ").capitalize()
            raise _ApiError(-1013, f"{name} orders are not supported for this symbol.")
        if kind not in _EXECUTED_TYPES:
            raise _ApiError(-1020, "This operation is not supported.")
        if market.status != "TRADING":
            raise _ApiError(-1013, "Market is closed.")

        client_id = params.get("newClientOrderId")
        if client_id is not None and not _CLIENT_ID.fullmatch(client_id):
            raise _ApiError(-1100, "Illegal characters found in parameter 'newClientOrderId'; "
                                   f"legal range is '{_CLIENT_ID_PATTERN}'.")
        response_type = params.get("newOrderRespType") or (
            "FULL" if kind in ("MARKET", "LIMIT") else "ACK")
        if response_type not in _RESPONSE_TYPES:
            raise _ApiError(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")

        time_in_force = params.get("timeInForce")
        if kind == "LIMIT":
            if not time_in_force:
                raise _mandatory("timeInForce")
            if time_in_force not in _TIME_IN_FORCE:
                raise _ApiError(-1115, "Invalid timeInForce.")
        elif time_in_force is not None:
            raise _ApiError(-1114, "TimeInForce parameter sent when not required.")

        quote_qty = _ZERO
        if kind == "MARKET":
            if "price" in params:
                raise _not_required("price")
            has_qty, has_quote = "quantity" in params, "quoteOrderQty" in params
            if has_qty == has_quote:
                if has_qty:
                    raise _not_required("quoteOrderQty")
                raise _ApiError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, "
                                       "but both were empty/null!")
            if has_quote:
                quote_qty = self._positive(params, "quoteOrderQty")
                quantity = (quote_qty / market.price).quantize(market.step_size, ROUND_DOWN)
            else:
                quantity = self._positive(params, "quantity")
            price = _ZERO
        else:
            if "quantity" not in params:
                raise _mandatory("quantity")
            if "price" not in params:
                raise _mandatory("price")
            quantity = self._positive(params, "quantity")
            price = self._positive(params, "price")

        # Filters, in exchangeInfo order.
        if kind != "MARKET" and (
            price < market.min_price or price > market.max_price
            or (price - market.min_price) % market.tick_size != 0
        ):
            raise _ApiError(-1013, "Filter failure: PRICE_FILTER")
        if (quantity < market.min_qty or quantity > market.max_qty
                or (quantity - market.min_qty) % market.step_size != 0):
            raise _ApiError(-1013, "Filter failure: LOT_SIZE")
        notional = quantity * (market.price if kind == "MARKET" else price)
        if notional < market.min_notional or (kind != "MARKET" and notional > market.max_notional):
            raise _ApiError(-1013, "Filter failure: NOTIONAL")

        # The matching engine's checks.
        # Only the newest order with a client id can be open: older ones were closed
        # before it was accepted.
        same_id = self._by_client_id.get(client_id or "")
        if same_id is not None and same_id.is_open:
            raise _ApiError(-2010, "Duplicate order sent.")
        crosses = kind != "MARKET" and (
            price >= market.price if side == "BUY" else price <= market.price)
        if kind == "LIMIT_MAKER" and crosses:
            raise _ApiError(-2010, "Order would immediately match and take.")
        takeable = quantity if market.liquidity is None else min(quantity, market.liquidity)
        if kind == "MARKET":
            need = takeable * market.price if side == "BUY" else quantity
        else:
            need = (quantity * price).quantize(_EIGHT) if side == "BUY" else quantity
        pay_asset = market.quote if side == "BUY" else market.base
        if self.balance(pay_asset).free < need:
            raise _ApiError(-2010, "Account has insufficient balance for requested action.")

        now = self.server_time()
        order = FakeOrder(
            orderId=len(self.orders) + 1,
            clientOrderId=client_id or self._random_client_id(),
            symbol=market.symbol, side=side, type=kind,
            timeInForce=time_in_force or "GTC",
            origQty=quantity, price=price, origQuoteOrderQty=quote_qty,
            time=now, updateTime=now,
        )
        self.orders.append(order)
        self._open[order.orderId] = order
        self._by_client_id[order.clientOrderId] = order
        self._by_symbol_client_id[(order.symbol, order.clientOrderId)] = order
        if kind != "MARKET":  # limit orders hold their whole amount while open
            order.locked = need
            self._move(pay_asset, need, to_locked=True)

        if kind == "MARKET":
            if takeable > 0:
                self._execute(order, market, takeable, market.price)
            order.status = "FILLED" if order.remaining == 0 else "EXPIRED"
        elif crosses and not (order.timeInForce == "FOK" and takeable < quantity):
            self._execute(order, market, takeable, market.price)
        if kind != "MARKET":
            if order.remaining == 0:
                order.status = "FILLED"
            elif order.timeInForce in ("IOC", "FOK"):
                order.status = "EXPIRED"
            else:
                order.status = "PARTIALLY_FILLED" if order.executedQty > 0 else "NEW"
        self._settle(order)
        self._report_placed(order)
        return order, response_type

    def _positive(self, params: dict[str, str], name: str) -> Decimal:
        value = self._number(params, name)
        if value <= 0:
            raise _ApiError(-1013, f"Invalid {name}.")
        if value != value.quantize(_EIGHT):
            raise _ApiError(-1111, f"Parameter '{name}' has too much precision.")
        return value

    def _move(self, asset: str, amount: Decimal, *, to_locked: bool) -> None:
        balance = self.balance(asset)
        if to_locked:
            balance.free -= amount
            balance.locked += amount
        else:
            balance.locked -= amount
            balance.free += amount

    def _settle(self, order: FakeOrder) -> None:
        """Bookkeeping after an order's status changed: a closed order frees what it holds."""
        if order.is_open:
            return
        self._open.pop(order.orderId, None)
        if order.locked:
            market = self.markets[order.symbol]
            asset = market.quote if order.side == "BUY" else market.base
            self._move(asset, order.locked, to_locked=False)
            order.locked = _ZERO

    def _execute(self, order: FakeOrder, market: Market, qty: Decimal, price: Decimal,
                 *, maker: bool = False) -> None:
        """Trade ``qty`` of ``order`` at ``price``: fees, balances and the fill record.

        ``maker``: the order rested on the book (filled by :meth:`fill_resting`).
        """
        quote = (qty * price).quantize(_EIGHT)
        base_balance, quote_balance = self.balance(market.base), self.balance(market.quote)
        if order.side == "BUY":
            if order.type == "MARKET":
                quote_balance.free -= quote
            else:  # paid out of the amount locked at the limit price
                held = min(order.locked, (qty * order.price).quantize(_EIGHT))
                order.locked -= held
                quote_balance.locked -= held
                quote_balance.free += held - quote
            commission = (qty * self.fee_rate).quantize(_EIGHT)
            asset = market.base
            base_balance.free += qty - commission
        else:
            if order.type == "MARKET":
                base_balance.free -= qty
            else:
                order.locked -= qty
                base_balance.locked -= qty
            commission = (quote * self.fee_rate).quantize(_EIGHT)
            asset = market.quote
            quote_balance.free += quote - commission
        if self.fee_asset is not None:
            instead = (quote * self.fee_rate / self.fee_asset_price).quantize(_EIGHT)
            if self.balance(self.fee_asset).free >= instead:
                # Paid in the fee asset: what the order's own trade delivers is whole.
                if asset == market.base:
                    base_balance.free += commission
                else:
                    quote_balance.free += commission
                self.balance(self.fee_asset).free -= instead
                commission, asset = instead, self.fee_asset
        self._trade_ids += 1
        fill = Fill(price, qty, commission, asset, self._trade_ids, self.server_time(), maker)
        order.fills.append(fill)
        self._trades.append((order, fill))
        order.executedQty += qty
        order.cummulativeQuoteQty += quote
        order.updateTime = self.server_time()

    # ------------------------------------------------------------------ user data stream

    async def _ws_api(self, request: web.Request) -> web.StreamResponse:
        """One WebSocket API connection: requests in, replies and pushed events out."""
        # Binance pings every 20 s and drops a connection that does not answer.
        socket = web.WebSocketResponse(heartbeat=20.0)
        await socket.prepare(request)
        self.stream_connections += 1
        state = _Socket(asyncio.Queue(), request.transport)
        self._sockets[socket] = state
        writer = asyncio.get_running_loop().create_task(self._write(socket, state))
        try:
            async for message in socket:
                if message.type != web.WSMsgType.TEXT:
                    continue
                state.queue.put_nowait(json.dumps(self._ws_request(state, message.data)))
        finally:
            self._sockets.pop(socket, None)
            state.subscriptions.clear()
            state.queue.put_nowait(None)
            await writer
        return socket

    @staticmethod
    async def _write(socket: web.WebSocketResponse, state: _Socket) -> None:
        """Send a connection's frames in order; ``None`` ends it."""
        while (frame := await state.queue.get()) is not None:
            if socket.closed:
                return
            with contextlib.suppress(ConnectionError):
                await socket.send_str(frame)

    def _ws_request(self, state: _Socket, text: str) -> dict[str, Any]:
        """The reply to one WebSocket API request."""
        try:
            request = json.loads(text)
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return self._ws_error(None, _ApiError(-1000, "Invalid JSON request."))
        request_id = request.get("id")
        params = request.get("params") or {}
        method = request["method"].removeprefix("v3/")
        try:
            if not isinstance(params, dict):
                raise _ApiError(-1000, "Invalid request: params must be an object.")
            if method == "userDataStream.subscribe.signature":
                result: Any = {"subscriptionId": self._subscribe(state, params)}
            elif method == "userDataStream.unsubscribe":
                if "subscriptionId" in params:
                    state.subscriptions.pop(params["subscriptionId"], None)
                else:
                    state.subscriptions.clear()
                result = {}
            elif method == "session.subscriptions":
                result = [{"subscriptionId": key} for key in sorted(state.subscriptions)]
            elif method == "ping":
                result = {}
            else:
                raise _ApiError(-1020, "This operation is not supported.")
        except _ApiError as error:
            return self._ws_error(request_id, error)
        return {"id": request_id, "status": 200, "result": result,
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": 6000, "count": 2}]}

    @staticmethod
    def _ws_error(request_id: Any, error: _ApiError) -> dict[str, Any]:
        return {"id": request_id, "status": error.status,
                "error": {"code": error.code, "msg": error.msg}}

    def _subscribe(self, state: _Socket, params: dict[str, Any]) -> int:
        """Check a signature subscription as Binance does; its new subscriptionId."""
        if self._refusals:
            self._refusals -= 1
            raise _ApiError(-1001, _INTERNAL_ERROR, status=503)
        for name in ("apiKey", "timestamp", "signature"):
            if params.get(name) in (None, ""):
                raise _mandatory(name)
        if not hmac.compare_digest(str(params["apiKey"]).encode(), self.api_key.encode()):
            raise _ApiError(-2015, "Invalid API-key, IP, or permissions for action.",
                            status=401)
        # The payload: every parameter but the signature, sorted by name, as k=v&...
        payload = "&".join(f"{name}={_ws_value(params[name])}" for name in sorted(params)
                           if name != "signature")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(params["signature"]).lower()):
            raise _ApiError(-1022, "Signature for this request is not valid.")
        text = {name: _ws_value(value) for name, value in params.items()}
        self._check_time(text)
        if params["apiKey"] in state.subscriptions.values():
            raise _ApiError(-1210, "This account is already subscribed on this connection.")
        subscription = state.next_id
        state.next_id += 1
        state.subscriptions[subscription] = str(params["apiKey"])
        return subscription

    def _report_placed(self, order: FakeOrder) -> None:
        """The events of an order just placed: NEW, a TRADE per fill, EXPIRED if it ended so."""
        status = order.status
        executed, quote = order.executedQty, order.cummulativeQuoteQty
        order.executedQty = order.cummulativeQuoteQty = _ZERO
        order.status = "NEW"
        self._report(order, "NEW")
        for fill in order.fills:
            order.executedQty += fill.qty
            order.cummulativeQuoteQty += (fill.qty * fill.price).quantize(_EIGHT)
            order.status = ("FILLED" if order.executedQty == order.origQty
                            else "PARTIALLY_FILLED")
            self._report(order, "TRADE", fill)
        order.status, order.executedQty, order.cummulativeQuoteQty = status, executed, quote
        if status == "EXPIRED":
            self._report(order, "EXPIRED")

    def _report(self, order: FakeOrder, execution: str, fill: Fill | None = None,
                cancel_id: str | None = None) -> None:
        """Push one executionReport for ``order`` (its current state) to every subscriber."""
        now = self.server_time()
        event: dict[str, Any] = {
            "e": "executionReport", "E": now, "s": order.symbol,
            # On a cancel, "c" is the cancel request's id and "C" the order's own.
            "c": cancel_id if cancel_id is not None else order.clientOrderId,
            "S": order.side, "o": order.type, "f": order.timeInForce,
            "q": _fmt(order.origQty), "p": _fmt(order.price), "P": _fmt(_ZERO),
            "F": _fmt(_ZERO), "g": -1,
            "C": order.clientOrderId if cancel_id is not None else "",
            "x": execution, "X": order.status, "r": "NONE", "i": order.orderId,
            "l": _fmt(fill.qty if fill else _ZERO), "z": _fmt(order.executedQty),
            "L": _fmt(fill.price if fill else _ZERO),
            "n": _fmt(fill.commission) if fill else "0",
            "N": fill.commissionAsset if fill else None,
            "T": now, "t": fill.tradeId if fill else -1, "I": len(self.pushed) + 1,
            "w": order.is_open, "m": fill is not None and order.type != "MARKET",
            "M": False, "O": order.time, "Z": _fmt(order.cummulativeQuoteQty),
            "Y": _fmt((fill.qty * fill.price).quantize(_EIGHT)) if fill else _fmt(_ZERO),
            "Q": _fmt(order.origQuoteOrderQty), "V": "EXPIRE_MAKER",
        }
        if order.is_open and order.type != "MARKET":
            event["W"] = order.time
        if execution == "EXPIRED":
            event["eR"] = ("INSUFFICIENT_LIQUIDITY" if order.type == "MARKET"
                           else f"UNFILLED_{order.timeInForce}_"
                                f"{'ORDER' if order.timeInForce == 'FOK' else 'QUANTITY'}_EXPIRED")
        self._push(event)

    def _push(self, event: dict[str, Any]) -> None:
        fault = self._take_stream_fault()
        if fault is not None and fault.kind == "drop":
            self.drop_streams()
            return
        if fault is not None and fault.kind == "miss":
            return
        self.pushed.append(event)
        loop = asyncio.get_running_loop()
        for state in list(self._sockets.values()):
            for subscription in state.subscriptions:
                frame = json.dumps({"subscriptionId": subscription, "event": event})
                if fault is not None:  # delay
                    loop.call_later(fault.delay, state.queue.put_nowait, frame)
                else:
                    state.queue.put_nowait(frame)

    def _take_stream_fault(self) -> _Fault | None:
        if not self._stream_faults:
            return None
        fault = self._stream_faults[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            self._stream_faults.pop(0)
        return fault

    # ------------------------------------------------------------------ replies

    @staticmethod
    def _order_amounts(order: FakeOrder) -> dict[str, Any]:
        return {
            "price": _fmt(order.price),
            "origQty": _fmt(order.origQty),
            "executedQty": _fmt(order.executedQty),
            "origQuoteOrderQty": _fmt(order.origQuoteOrderQty),
            "cummulativeQuoteQty": _fmt(order.cummulativeQuoteQty),
            "status": order.status,
            "timeInForce": order.timeInForce,
            "type": order.type,
            "side": order.side,
        }

    def _new_order_reply(self, order: FakeOrder, response_type: str) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.orderId,
            "orderListId": -1,
            "clientOrderId": order.clientOrderId,
            "transactTime": order.time,
        }
        if response_type == "ACK":
            return reply
        reply.update(self._order_amounts(order))
        reply["workingTime"] = order.time
        reply["selfTradePreventionMode"] = "EXPIRE_MAKER"
        if response_type == "FULL":
            reply["fills"] = [
                {"price": _fmt(f.price), "qty": _fmt(f.qty), "commission": _fmt(f.commission),
                 "commissionAsset": f.commissionAsset, "tradeId": f.tradeId}
                for f in order.fills
            ]
        return reply

    def _order_view(self, order: FakeOrder) -> dict[str, Any]:
        """An order as GET /api/v3/order and /api/v3/openOrders show it."""
        return {
            "symbol": order.symbol,
            "orderId": order.orderId,
            "orderListId": -1,
            "clientOrderId": order.clientOrderId,
            **self._order_amounts(order),
            "stopPrice": _fmt(_ZERO),
            "icebergQty": _fmt(_ZERO),
            "time": order.time,
            "updateTime": order.updateTime,
            "isWorking": True,
            "workingTime": order.time,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


class FakeBinanceThread(FakeThread[FakeBinance]):
    """Run a :class:`FakeBinance` from a daemon thread (tests.fakes.thread)."""

    name = "fake-binance"
