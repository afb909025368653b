"""A fake Bybit v5 REST server (unified trading account, spot category) for tests.

Written from Bybit's v5 API documentation (integration guide, error codes, the
market/order/execution/account/user pages), not from execd's needs, so that it can
disagree with execd.  The real ``ccxt.async_support.bybit`` class talks to it over
HTTP on 127.0.0.1 once its API URLs are pointed here with :func:`rewrite_urls`.

What it follows from the documentation:

- Every reply is HTTP 200 with the envelope ``{"retCode", "retMsg", "result",
  "retExtInfo", "time"}``; a refusal is a ``retCode`` other than 0, not an HTTP status.
- Signed requests carry ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``, ``X-BAPI-SIGN`` and
  optionally ``X-BAPI-RECV-WINDOW`` (default 5000 ms).  The signature is the hex
  HMAC-SHA256 of ``timestamp + api_key + recv_window + payload`` where the payload is
  the raw query string of a GET and the raw JSON body of a POST.  Acceptance window:
  ``server_time - recv_window <= timestamp < server_time + 1000``, else 10002.
  Unknown key: 10003; bad signature: 10004; no key header at all: HTTP 401.
- Orders: ``orderLinkId`` (the client order id) is at most 36 characters of letters,
  digits, ``-`` and ``_``, and unique per account whatever the first order's state
  (the fake refuses a reuse with the spot code 170141 "Duplicate clientOrderId").
  The create reply holds only ``orderId`` and ``orderLinkId``: its state is learnt by a
  query.  States are Bybit's: ``New``, ``PartiallyFilled``, ``Filled``, ``Cancelled``,
  ``PartiallyFilledCanceled`` (spot: cancelled after a partial fill, also the end of a
  market or IOC order that could not fill in full), ``Rejected``.
  A ``PostOnly`` order that would take liquidity is accepted, then ``Cancelled`` with
  ``rejectReason`` ``EC_PostOnlyWillTakeLiquidity`` (not refused).  A spot market buy
  without ``marketUnit`` is sized in the quote coin, a market sell in the base coin.
- ``GET /v5/order/realtime``: open orders, or with ``openOnly=1`` the most recent 500
  closed ones; an ``orderId`` or ``orderLinkId`` (priority orderId > orderLinkId >
  symbol) finds the order whatever its state among open and the most recent 500
  closed orders.  Nothing found is ``retCode`` 0 with an empty list, not an error.
  ``GET /v5/order/history``: closed orders, or any order named by id.
- ``POST /v5/order/cancel`` of an order that is not open: 170213 "Order does not exist."
- Spot fees: a buy pays its fee in the base coin, a sell in the quote coin, at
  ``fee_rate`` of what it receives; the executions (``GET /v5/execution/list``) carry
  ``execFee`` and ``feeCurrency``, orders carry ``cumExecFee`` and ``cumFeeDetail``.
- Unified wallet (``GET /v5/account/wallet-balance?accountType=UNIFIED``):
  ``walletBalance`` includes ``locked`` (what open spot orders hold);
  ``availableToWithdraw`` is the empty string (deprecated for unified accounts).
- The account is a unified account (UTA 2.0): ``GET /v5/user/query-api`` says
  ``uta: 1`` and ``GET /v5/account/info`` ``unifiedMarginStatus: 5``.

Spot refusals, with Bybit's documented codes (the "Spot Trade" table):
170121 unknown symbol, 170131 insufficient balance, 170136 quantity under
``minOrderQty``, 170381 quantity over ``maxOrderQty``, 170137 quantity off the
``basePrecision`` grid, 170148 market quote amount off the ``quotePrecision`` grid,
170134 price off the ``tickSize`` grid, 170371/170372 price outside the symbol's price
limits (``min_price``/``max_price``; Bybit's instruments endpoint does not publish
them), 170140 value under ``minOrderAmt``, 170124 value over ``maxOrderAmt``,
170141 duplicate ``orderLinkId``, 10001 a missing or malformed parameter,
10017 an unknown path.

Faults (:meth:`FakeBybit.inject`), as they look on the wire:

- ``lost_reply``: the request is processed (the order placed if valid), then the
  connection is closed without a reply.
- ``timeout``: processed, the reply held for ``delay`` seconds.
- ``drop``: the connection is closed before anything is processed.
- ``429``: HTTP 200, ``retCode`` 10006 "Too many visits. Exceeded the API Rate Limit."
  with ``X-Bapi-Limit-Status: 0`` and ``X-Bapi-Limit-Reset-Timestamp``; not processed.
- ``429_http``: HTTP 429 (Bybit's "system level frequency protection") with a plain
  text body; not processed.
- ``403_ip_limit``: HTTP 403 with a plain text body (Bybit's IP rate limit); not
  processed.
- ``503_plain``: HTTP 503 with an HTML body; not processed.
- ``503_json``: HTTP 503 with the envelope, ``retCode`` 10016 "Server error."; not
  processed.
- ``503_json_placed``: the same reply, but the request *is* processed.
- ``503_then_placed``: the same reply at once, the request processed ``delay`` seconds
  later.
- ``5xx_unknown_code_placed``: HTTP 502 with the envelope, ``retCode`` 10000 "Server
  Timeout" (a documented code missing from ccxt's table); processed.
- ``200_not_an_order_placed``: HTTP 200 with an HTML page (a proxy's); processed.
- ``venue_busy_placed``: HTTP 200, ``retCode`` 170146 "Order creation timeout" (the
  spot code for a create whose result the venue does not know); processed.
- ``server_timeout_placed``: HTTP 200, ``retCode`` 10000 "Server Timeout"; processed.
- ``clock``: ``retCode`` 10002 (timestamp outside the window); not processed.

A duplicate client order id needs no fault: a second create with an ``orderLinkId``
already used gets 170141.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from tests.fakes.thread import FakeThread

__all__ = [
    "CREATE_PATH",
    "FAULTS",
    "Balance",
    "FakeBybit",
    "FakeBybitThread",
    "FakeOrder",
    "Fill",
    "Market",
    "rewrite_urls",
]


_ZERO = Decimal(0)
_DEFAULT_BALANCE = Decimal(10) ** 9
CREATE_PATH = "/v5/order/create"

# Bybit's order states; the open ones.
OPEN_STATUSES = frozenset({"New", "PartiallyFilled"})
# How many closed orders /v5/order/realtime keeps per account and category.
_RECENT_CLOSED = 500

# Tuples, not sets: a JSON body may carry an unhashable value where a name belongs.
_ORDER_TYPES = ("Market", "Limit")
_TIME_IN_FORCE = ("GTC", "IOC", "FOK", "PostOnly")
_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_NUMBER = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")

FAULTS = frozenset({
    "lost_reply", "timeout", "drop", "429", "429_http", "403_ip_limit", "503_plain",
    "503_json", "503_json_placed", "503_then_placed", "5xx_unknown_code_placed",
    "200_not_an_order_placed", "venue_busy_placed", "server_timeout_placed", "clock",
})
# Faults replied before the request is processed (nothing happens at the venue).
_BEFORE = frozenset({"drop", "429", "429_http", "403_ip_limit", "503_plain", "503_json",
                     "clock"})

_DEFAULT_RECV_WINDOW = 5000
_AHEAD_MS = 1000  # a timestamp may be at most this far ahead of the server's clock

_HTML_503 = ("<html><head><title>503 Service Temporarily Unavailable</title></head>"
             "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body>"
             "</html>")
_HTML_PROXY = ("<html><head><title>Just a moment...</title></head>"
               "<body><p>Checking your browser before accessing the site.</p></body></html>")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fmt(value: Decimal) -> str:
    """A decimal the way Bybit prints it: plain, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text not in ("-0", "") else "0"


def rewrite_urls(exchange: Any, base_url: str) -> None:
    """Point every API URL of a ccxt exchange at ``base_url``, keeping each URL's path."""
    api = exchange.urls["api"]
    for key, url in list(api.items()):
        if isinstance(url, str):
            api[key] = base_url.rstrip("/") + urllib.parse.urlsplit(url).path


@dataclass
class Market:
    """One spot instrument, with the constructor keywords of fake_binance.Market.

    Mapped onto Bybit's instrument fields: ``step_size`` is ``basePrecision``,
    ``min_qty``/``max_qty`` are ``minOrderQty``/``maxOrderQty``, ``tick_size`` is
    ``tickSize``, ``min_notional`` is ``minOrderAmt``.  ``min_price``/``max_price`` are
    the price limits Bybit applies (170371/170372) but does not publish.
    """

    base: str
    quote: str
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    min_notional: Decimal
    price: Decimal       # market orders (and crossing limit orders) fill here
    liquidity: Decimal | None = None  # max quantity any one order can take; None = unlimited
    quote_precision: Decimal = Decimal("0.00000001")
    max_notional: Decimal = Decimal(9000000)
    status: str = "Trading"

    @property
    def symbol(self) -> str:
        """The Bybit symbol, e.g. ``BTCUSDT``."""
        return self.base + self.quote


@dataclass
class Fill:
    """One execution of an order."""

    execId: str
    price: Decimal
    qty: Decimal
    fee: Decimal
    feeCurrency: str
    isMaker: bool
    time: int


@dataclass
class FakeOrder:
    """One order as the fake keeps it (field names follow Bybit)."""

    orderId: str
    orderLinkId: str
    symbol: str
    side: str
    orderType: str
    timeInForce: str
    qty: Decimal          # in ``marketUnit``
    marketUnit: str       # "baseCoin" or "quoteCoin" (market orders); "" for limit
    price: Decimal
    createdTime: int
    updatedTime: int
    cumExecQty: Decimal = _ZERO
    cumExecValue: Decimal = _ZERO
    cumExecFee: Decimal = _ZERO
    orderStatus: str = "New"
    rejectReason: str = "EC_NoError"
    fills: list[Fill] = field(default_factory=list)
    locked: Decimal = _ZERO  # still held for this order (quote for buys, base for sells)

    @property
    def clientOrderId(self) -> str:
        """The client order id (Bybit's ``orderLinkId``)."""
        return self.orderLinkId

    @property
    def status(self) -> str:
        """The order's state, as Bybit names it."""
        return self.orderStatus

    @property
    def is_open(self) -> bool:
        """Whether the order can still trade."""
        return self.orderStatus in OPEN_STATUSES

    @property
    def base_qty(self) -> Decimal | None:
        """The order's size in the base coin, when it is sized in it."""
        return None if self.marketUnit == "quoteCoin" else self.qty


@dataclass
class Balance:
    """Free and locked amounts of one coin."""

    free: Decimal = _ZERO
    locked: Decimal = _ZERO


@dataclass
class _Fault:
    kind: str
    method: str
    path: str
    remaining: int
    delay: float


class _ApiError(Exception):
    """A Bybit refusal: the envelope with ``retCode`` (HTTP 200 unless ``status``)."""

    def __init__(self, code: int, msg: str, status: int = 200) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


_Handler = Callable[[dict[str, Any]], dict[str, Any]]


class FakeBybit:
    """An in-process fake of Bybit's v5 REST API for a unified account's spot trading."""

    def __init__(
        self,
        markets: dict[str, Market],
        *,
        api_key: str,
        secret: str,
        balances: dict[str, Decimal] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
    ) -> None:
        self.markets: dict[str, Market] = {}
        for key, market in markets.items():
            if key.replace("/", "") != market.symbol:
                raise ValueError(f"market key {key!r} does not match {market.base}/{market.quote}")
            self.markets[market.symbol] = market
        self.api_key = api_key
        self.secret = secret
        self.fee_rate = fee_rate
        if balances is None:
            coins = {c for m in self.markets.values() for c in (m.base, m.quote)}
            balances = dict.fromkeys(sorted(coins), _DEFAULT_BALANCE)
        self.balances: dict[str, Balance] = {c: Balance(free=v) for c, v in balances.items()}
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.orders: list[FakeOrder] = []
        # POST /v5/order/create requests per orderLinkId, counted on arrival (before any
        # fault or check): every send that reached the venue.
        self.posts: collections.Counter[str] = collections.Counter()
        self.on_order: Callable[[str, FakeOrder | None], None] | None = None
        self.time_offset_ms = 0
        self.url = ""
        self.port = 0
        self._faults: list[_Fault] = []
        self._late: set[asyncio.Task[None]] = set()
        self._by_id: dict[str, FakeOrder] = {}
        self._by_link_id: dict[str, FakeOrder] = {}
        self._open: dict[str, FakeOrder] = {}
        self._closed: collections.deque[FakeOrder] = collections.deque(maxlen=_RECENT_CLOSED)
        self._exec_ids = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._public: dict[tuple[str, str], _Handler] = {
            ("GET", "/v5/market/time"): self._time,
            ("GET", "/v5/market/instruments-info"): self._instruments,
        }
        self._private: dict[tuple[str, str], _Handler] = {
            ("POST", CREATE_PATH): self._create,
            ("POST", "/v5/order/cancel"): self._cancel,
            ("GET", "/v5/order/realtime"): self._realtime,
            ("GET", "/v5/order/history"): self._history,
            ("GET", "/v5/execution/list"): self._executions,
            ("GET", "/v5/account/wallet-balance"): self._wallet,
            ("GET", "/v5/account/info"): self._account_info,
            ("GET", "/v5/user/query-api"): self._query_api,
            ("GET", "/v5/asset/coin/query-info"): self._coin_info,
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
        for task in list(self._late):
            task.cancel()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ test helpers

    def open_orders(self) -> list[FakeOrder]:
        """Orders that are New or PartiallyFilled, oldest first."""
        return [o for o in self._open.values() if o.is_open]

    def balance(self, asset: str) -> Balance:
        """The account's balance of ``asset`` (zero if it has none)."""
        return self.balances.setdefault(asset, Balance())

    def inject(
        self,
        fault: str,
        *,
        method: str = "POST",
        path: str = CREATE_PATH,
        times: int = 1,
        delay: float = 5.0,
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``method path``.

        Faults queue in the order they were injected: a request takes the first pending
        fault that matches it.  What each fault looks like: see the module docstring.
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
        """Fill open limit orders of ``symbol`` at their limit prices, oldest first (as maker).

        With ``quantity`` at most that much (in base units) is filled in total.
        """
        market = self._market_for(symbol)
        left = quantity
        for order in self.open_orders():
            if left is not None and left <= 0:
                break
            if order.symbol != market.symbol:
                continue
            remaining = order.qty - order.cumExecQty
            qty = remaining if left is None else min(remaining, left)
            self._execute(order, market, qty, order.price, maker=True)
            if left is not None:
                left -= qty
            order.orderStatus = "Filled" if order.cumExecQty == order.qty else "PartiallyFilled"
            self._settle(order)

    def server_time(self) -> int:
        """The fake's clock in milliseconds."""
        return _now_ms() + self.time_offset_ms

    # ------------------------------------------------------------------ HTTP plumbing

    def _envelope(self, code: int, msg: str, result: Any) -> dict[str, Any]:
        return {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {},
                "time": self.server_time()}

    def _reply(self, result: Any) -> web.Response:
        return web.json_response(self._envelope(0, "OK", result))

    def _error(self, error: _ApiError) -> web.Response:
        return web.json_response(self._envelope(error.code, error.msg, {}), status=error.status)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        self.requests[(method, path)] += 1
        body = await request.text()
        if (method, path) == ("POST", CREATE_PATH):
            with contextlib.suppress(ValueError, AttributeError):
                self.posts[str(json.loads(body).get("orderLinkId") or "")] += 1
        fault = self._take_fault(method, path)
        if fault is not None and fault.kind in _BEFORE:
            return self._fault_reply(request, fault.kind)
        if fault is not None and fault.kind == "503_then_placed":
            task = asyncio.get_running_loop().create_task(
                self._later(fault.delay, request, body))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return self._fault_reply(request, "503_json")
        response = self._handle(request, body)
        if fault is None:
            return response
        if fault.kind == "lost_reply":
            return self._fault_reply(request, "drop")
        if fault.kind == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.delay)
            return response
        return self._fault_reply(request, fault.kind)  # the "..._placed" replies

    def _handle(self, request: web.Request, body: str) -> web.Response:
        key = (request.method, request.path)
        try:
            public = self._public.get(key)
            if public is not None:
                return self._reply(public(self._query(request)))
            private = self._private.get(key)
            if private is None:
                if request.method not in ("GET", "POST"):
                    return web.Response(status=400, text="Bad Request")
                # Bybit documents a wrong path as HTTP 404; its body carries 10017.
                raise _ApiError(10017, "Route not found", status=404)
            self._authenticate(request, body)
            return self._reply(private(self._params(request, body)))
        except _ApiError as error:
            return self._error(error)

    async def _later(self, delay: float, request: web.Request, body: str) -> None:
        await asyncio.sleep(delay)
        self._handle(request, body)

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
            return web.Response(status=500)  # never reaches the client
        if kind in ("503_json", "503_json_placed"):
            return self._error(_ApiError(10016, "Server error.", status=503))
        if kind == "5xx_unknown_code_placed":
            return self._error(_ApiError(10000, "Server Timeout", status=502))
        if kind == "503_plain":
            return web.Response(status=503, content_type="text/html", text=_HTML_503)
        if kind == "200_not_an_order_placed":
            return web.Response(status=200, content_type="text/html", text=_HTML_PROXY)
        if kind == "venue_busy_placed":
            return self._error(_ApiError(170146, "Order creation timeout"))
        if kind == "server_timeout_placed":
            return self._error(_ApiError(10000, "Server Timeout"))
        if kind == "429":
            response = self._error(
                _ApiError(10006, "Too many visits. Exceeded the API Rate Limit."))
            response.headers["X-Bapi-Limit"] = "20"
            response.headers["X-Bapi-Limit-Status"] = "0"
            response.headers["X-Bapi-Limit-Reset-Timestamp"] = str(self.server_time() + 1000)
            return response
        if kind == "429_http":
            return web.Response(status=429, text="Too Many Requests")
        if kind == "403_ip_limit":
            return web.Response(status=403, text="access too frequent")
        # clock
        now = self.server_time()
        return self._error(_ApiError(
            10002, "invalid request, please check your server timestamp or recv_window "
                   f"param. req_timestamp[{now - 60000}],server_timestamp[{now}],"
                   f"recv_window[{_DEFAULT_RECV_WINDOW}]"))

    @staticmethod
    def _raw_query(request: web.Request) -> str:
        return request.raw_path.partition("?")[2]

    def _query(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, value in urllib.parse.parse_qsl(self._raw_query(request),
                                                  keep_blank_values=True):
            params[name] = value
        return params

    def _params(self, request: web.Request, body: str) -> dict[str, Any]:
        if request.method == "GET":
            return self._query(request)
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            raise _ApiError(10001, "request body is not valid json") from None
        if not isinstance(parsed, dict):
            raise _ApiError(10001, "request body is not a json object")
        return parsed

    def _authenticate(self, request: web.Request, body: str) -> None:
        key = request.headers.get("X-BAPI-API-KEY")
        timestamp = request.headers.get("X-BAPI-TIMESTAMP")
        sign = request.headers.get("X-BAPI-SIGN")
        if not key or not timestamp or not sign:
            # Bybit documents this as HTTP 401 (authentication params not in the header).
            raise _ApiError(10003, "API key is invalid.", status=401)
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise _ApiError(10003, "API key is invalid.")
        recv_raw = request.headers.get("X-BAPI-RECV-WINDOW", str(_DEFAULT_RECV_WINDOW))
        if not timestamp.isdigit() or not recv_raw.isdigit():
            raise _ApiError(10001, "params error: timestamp or recv_window is not a number")
        payload = self._raw_query(request) if request.method == "GET" else body
        origin = timestamp + key + recv_raw + payload
        expected = hmac.new(self.secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sign.lower()):
            raise _ApiError(10004, f"error sign! origin_string[{origin}]")
        now, stamp, window = self.server_time(), int(timestamp), int(recv_raw)
        if not now - window <= stamp < now + _AHEAD_MS:
            raise _ApiError(
                10002, "invalid request, please check your server timestamp or recv_window "
                       f"param. req_timestamp[{stamp}],server_timestamp[{now}],"
                       f"recv_window[{window}]")

    # ------------------------------------------------------------------ parameters

    @staticmethod
    def _category(params: dict[str, Any]) -> None:
        category = params.get("category")
        if not category:
            raise _ApiError(10001, "params error: category is required")
        if category != "spot":
            # The fake serves spot only; Bybit answers a category the account has no
            # instruments in with a parameter error too.
            raise _ApiError(10001, f"params error: category {category} is not supported")

    def _known_symbol(self, symbol: Any) -> Market:
        if not isinstance(symbol, str) or not symbol:
            raise _ApiError(10001, "params error: symbol is required")
        market = self.markets.get(symbol)
        if market is None:
            raise _ApiError(170121, "Invalid symbol.")
        return market

    @staticmethod
    def _decimal(params: dict[str, Any], name: str) -> Decimal:
        raw = params.get(name)
        if not isinstance(raw, str):
            raise _ApiError(10001, f"params error: {name} must be a string")
        if not _NUMBER.fullmatch(raw):
            raise _ApiError(10001, f"params error: {name} invalid")
        try:
            value = Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            raise _ApiError(10001, f"params error: {name} invalid") from None
        if value <= 0:
            raise _ApiError(10001, f"params error: {name} must be greater than 0")
        return value

    @staticmethod
    def _limit(params: dict[str, Any], default: int, maximum: int) -> int:
        raw = params.get("limit")
        if raw is None or raw == "":
            return default
        if not str(raw).isdigit() or not 1 <= int(raw) <= maximum:
            raise _ApiError(10001, f"params error: limit must be in [1, {maximum}]")
        return int(raw)

    @staticmethod
    def _millis(params: dict[str, Any], name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        if not str(raw).isdigit():
            raise _ApiError(10001, f"params error: {name} invalid")
        return int(raw)

    def _market_for(self, symbol: str) -> Market:
        market = self.markets.get(symbol.replace("/", ""))
        if market is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        return market

    # ------------------------------------------------------------------ public endpoints

    def _time(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self.server_time()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _instruments(self, params: dict[str, Any]) -> dict[str, Any]:
        self._category(params)
        markets = list(self.markets.values())
        if params.get("symbol"):
            market = self.markets.get(params["symbol"])
            markets = [market] if market is not None else []
        return {"category": "spot", "nextPageCursor": "",
                "list": [self._instrument(m) for m in markets]}

    @staticmethod
    def _instrument(market: Market) -> dict[str, Any]:
        return {
            "symbol": market.symbol,
            "baseCoin": market.base,
            "quoteCoin": market.quote,
            "innovation": "0",
            "status": market.status,
            "marginTrading": "none",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": _fmt(market.step_size),
                "quotePrecision": _fmt(market.quote_precision),
                "minOrderQty": _fmt(market.min_qty),
                "maxOrderQty": _fmt(market.max_qty),
                "minOrderAmt": _fmt(market.min_notional),
                "maxOrderAmt": _fmt(market.max_notional),
            },
            "priceFilter": {"tickSize": _fmt(market.tick_size)},
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.05"},
        }

    # ------------------------------------------------------------------ account endpoints

    def _query_api(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "1", "note": "fake", "apiKey": self.api_key, "readOnly": 0, "secret": "",
            "permissions": {"ContractTrade": [], "Spot": ["SpotTrade"], "Wallet": [],
                            "Options": [], "Derivatives": [], "CopyTrading": [],
                            "BlockTrade": [], "Exchange": [], "NFT": [], "Affiliate": []},
            "ips": ["*"], "type": 1, "deadlineDay": 90, "expiredAt": "", "createdAt": "",
            "unified": 0, "uta": 1, "userID": 1, "inviterID": 0, "vipLevel": "No VIP",
            "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "", "isMaster": True,
        }

    def _account_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"marginMode": "REGULAR_MARGIN", "updatedTime": str(self.server_time()),
                "unifiedMarginStatus": 5, "dcpStatus": "OFF", "timeWindow": 10,
                "smpGroup": 0, "isMasterTrader": False, "spotHedgingStatus": "OFF"}

    def _coin_info(self, params: dict[str, Any]) -> dict[str, Any]:
        coins = sorted(self.balances) if not params.get("coin") else [params["coin"]]
        return {"rows": [{"name": c, "coin": c, "remainAmount": "1000000", "chains": []}
                         for c in coins]}

    def _wallet(self, params: dict[str, Any]) -> dict[str, Any]:
        account_type = params.get("accountType")
        if account_type != "UNIFIED":
            raise _ApiError(10001, "accountType only support UNIFIED.")
        wanted = set(str(params["coin"]).split(",")) if params.get("coin") else None
        coins = []
        for coin, b in sorted(self.balances.items()):
            if wanted is not None and coin not in wanted:
                continue
            total = b.free + b.locked
            coins.append({
                "coin": coin, "equity": _fmt(total), "usdValue": "", "walletBalance": _fmt(total),
                "locked": _fmt(b.locked), "availableToWithdraw": "", "availableToBorrow": "",
                "borrowAmount": "0", "accruedInterest": "0", "totalOrderIM": "0",
                "totalPositionIM": "0", "totalPositionMM": "0", "unrealisedPnl": "0",
                "cumRealisedPnl": "0", "bonus": "0", "spotHedgingQty": "0",
                "collateralSwitch": True, "marginCollateral": True,
            })
        return {"list": [{
            "accountType": "UNIFIED", "totalEquity": "", "totalWalletBalance": "",
            "totalMarginBalance": "", "totalAvailableBalance": "", "totalPerpUPL": "0",
            "totalInitialMargin": "0", "totalMaintenanceMargin": "0", "accountIMRate": "0",
            "accountMMRate": "0", "accountLTV": "0", "coin": coins,
        }]}

    # ------------------------------------------------------------------ order endpoints

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        self._hook("received", None)
        order = self._place(params)
        self._hook("placed", order)
        return {"orderId": order.orderId, "orderLinkId": order.orderLinkId}

    def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        self._category(params)
        market = self._known_symbol(params.get("symbol"))
        order = self._find(params)
        if order is None or order.symbol != market.symbol or not order.is_open:
            raise _ApiError(170213, "Order does not exist.")
        order.orderStatus = "PartiallyFilledCanceled" if order.cumExecQty else "Cancelled"
        order.updatedTime = self.server_time()
        self._settle(order)
        return {"orderId": order.orderId, "orderLinkId": order.orderLinkId}

    def _realtime(self, params: dict[str, Any]) -> dict[str, Any]:
        self._category(params)
        if params.get("orderId") or params.get("orderLinkId"):
            named = self._find(params)
            found = [] if named is None or not self._recent(named) else [named]
        elif str(params.get("openOnly", "0")) == "0":
            found = list(self._open.values())
        else:
            found = list(self._closed)
        return self._order_page(found, params)

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        self._category(params)
        if params.get("orderId") or params.get("orderLinkId"):
            named = self._find(params)
            found = [] if named is None else [named]
        else:
            found = [o for o in self.orders if not o.is_open]
        return self._order_page(found, params)

    def _order_page(self, found: list[FakeOrder], params: dict[str, Any]) -> dict[str, Any]:
        symbol = params.get("symbol")
        if symbol:
            self._known_symbol(symbol)
            found = [o for o in found if o.symbol == symbol]
        newest_first = sorted(found, key=lambda o: (o.createdTime, int(o.orderId)), reverse=True)
        limit = self._limit(params, 20, 50)
        return {"category": "spot", "nextPageCursor": "",
                "list": [self._order_view(o) for o in newest_first[:limit]]}

    def _executions(self, params: dict[str, Any]) -> dict[str, Any]:
        self._category(params)
        orders = self.orders
        if params.get("orderId") or params.get("orderLinkId"):
            named = self._find(params)
            orders = [] if named is None else [named]
        symbol = params.get("symbol")
        if symbol:
            self._known_symbol(symbol)
        rows = [(o, f) for o in orders for f in o.fills if not symbol or o.symbol == symbol]
        exec_type = params.get("execType")
        if exec_type and exec_type != "Trade":
            rows = []
        start, end = self._millis(params, "startTime"), self._millis(params, "endTime")
        if start is not None:
            rows = [(o, f) for o, f in rows if f.time >= start]
        if end is not None:
            rows = [(o, f) for o, f in rows if f.time <= end]
        rows.sort(key=lambda r: (r[1].time, int(r[1].execId)), reverse=True)
        limit = self._limit(params, 50, 100)
        return {"category": "spot", "nextPageCursor": "",
                "list": [self._execution_view(o, f) for o, f in rows[:limit]]}

    # ------------------------------------------------------------------ order logic

    def _hook(self, phase: str, order: FakeOrder | None) -> None:
        if self.on_order is not None:
            self.on_order(phase, order)

    def _find(self, params: dict[str, Any]) -> FakeOrder | None:
        # Bybit: orderId takes priority over orderLinkId.
        if params.get("orderId"):
            return self._by_id.get(str(params["orderId"]))
        if params.get("orderLinkId"):
            return self._by_link_id.get(str(params["orderLinkId"]))
        raise _ApiError(10001, "params error: orderId or orderLinkId is required")

    def _recent(self, order: FakeOrder) -> bool:
        return order.is_open or order in self._closed

    def _place(self, params: dict[str, Any]) -> FakeOrder:
        """Validate a create-order request, then place and match it."""
        self._category(params)
        for name in ("symbol", "side", "orderType", "qty"):
            if params.get(name) in (None, ""):
                raise _ApiError(10001, f"Missing some parameters that must be filled in, {name}")
        market = self._known_symbol(params["symbol"])
        side, kind = params["side"], params["orderType"]
        if side not in ("Buy", "Sell"):
            raise _ApiError(170117, "Invalid side.")
        if kind not in _ORDER_TYPES:
            raise _ApiError(170116, "Invalid orderType.")
        if market.status != "Trading":
            raise _ApiError(170151, "The trading pair is not open yet")
        link_id = params.get("orderLinkId")
        if link_id is not None and (not isinstance(link_id, str)
                                    or not _LINK_ID.fullmatch(link_id)):
            raise _ApiError(10001, "params error: orderLinkId invalid")
        tif = params.get("timeInForce") or ("IOC" if kind == "Market" else "GTC")
        if tif not in _TIME_IN_FORCE:
            raise _ApiError(170115, "Invalid timeInForce.")
        qty = self._decimal(params, "qty")
        if kind == "Market":
            unit = params.get("marketUnit") or ("quoteCoin" if side == "Buy" else "baseCoin")
            if unit not in ("baseCoin", "quoteCoin"):
                raise _ApiError(10001, "params error: marketUnit invalid")
            price = _ZERO
        else:
            unit = ""
            if params.get("price") in (None, ""):
                raise _ApiError(10001, "Missing some parameters that must be filled in, price")
            price = self._decimal(params, "price")

        # Instrument rules.
        if unit == "quoteCoin":
            if qty % market.quote_precision != 0:
                raise _ApiError(170148, "Market order amount decimal too long")
            value = qty
            base_qty = (qty / market.price).quantize(market.step_size, ROUND_DOWN)
        else:
            if qty % market.step_size != 0:
                raise _ApiError(170137, "Order volume decimal too long")
            if qty < market.min_qty:
                raise _ApiError(170136, "Order quantity lower than the minimum.")
            if qty > market.max_qty:
                raise _ApiError(170381, "Order quantity too large.")
            base_qty = qty
            value = qty * (market.price if kind == "Market" else price)
        if kind == "Limit":
            if price % market.tick_size != 0:
                raise _ApiError(170134, "Order price decimal too long.")
            if price < market.min_price:
                raise _ApiError(170371, f"Order price cannot be lower than "
                                        f"{_fmt(market.min_price)}, the price limitation")
            if price > market.max_price:
                raise _ApiError(170372, f"Order price cannot be higher than "
                                        f"{_fmt(market.max_price)}, the price limitation")
        if value < market.min_notional:
            raise _ApiError(170140, "Order value exceeded lower limit")
        if value > market.max_notional:
            raise _ApiError(170124, "Order amount too large.")

        # The matching engine's checks.
        if link_id and link_id in self._by_link_id:
            raise _ApiError(170141, "Duplicate clientOrderId")
        takeable = base_qty if market.liquidity is None else min(base_qty, market.liquidity)
        if side == "Buy":
            need = (value if unit == "quoteCoin" else
                    takeable * market.price if kind == "Market" else qty * price)
        else:
            need = base_qty
        pay = market.quote if side == "Buy" else market.base
        if self.balance(pay).free < need:
            raise _ApiError(170131, "Insufficient balance.")

        now = self.server_time()
        order = FakeOrder(
            orderId=str(len(self.orders) + 1),
            orderLinkId=link_id or "",
            symbol=market.symbol, side=side, orderType=kind, timeInForce=tif,
            qty=qty, marketUnit=unit, price=price, createdTime=now, updatedTime=now,
        )
        self.orders.append(order)
        self._by_id[order.orderId] = order
        if order.orderLinkId:
            self._by_link_id[order.orderLinkId] = order
        self._open[order.orderId] = order
        if kind == "Limit":  # a limit order holds its whole amount while open
            order.locked = need
            self._move(pay, need, to_locked=True)

        crosses = kind == "Market" or (
            price >= market.price if side == "Buy" else price <= market.price)
        if kind == "Market":
            if takeable > 0:
                self._execute(order, market, takeable, market.price, maker=False)
            order.orderStatus = ("Filled" if order.cumExecQty == base_qty else
                                 "PartiallyFilledCanceled" if order.cumExecQty else "Cancelled")
        elif tif == "PostOnly" and crosses:
            order.orderStatus = "Cancelled"
            order.rejectReason = "EC_PostOnlyWillTakeLiquidity"
        elif crosses and not (tif == "FOK" and takeable < qty):
            self._execute(order, market, takeable, market.price, maker=False)
        if order.orderStatus == "New":
            if order.cumExecQty == qty:
                order.orderStatus = "Filled"
            elif tif in ("IOC", "FOK"):
                order.orderStatus = "PartiallyFilledCanceled" if order.cumExecQty else "Cancelled"
            elif order.cumExecQty:
                order.orderStatus = "PartiallyFilled"
        self._settle(order)
        return order

    def _move(self, asset: str, amount: Decimal, *, to_locked: bool) -> None:
        balance = self.balance(asset)
        if to_locked:
            balance.free -= amount
            balance.locked += amount
        else:
            balance.locked -= amount
            balance.free += amount

    def _settle(self, order: FakeOrder) -> None:
        """Bookkeeping after a state change: a closed order frees what it holds."""
        if order.is_open:
            return
        if self._open.pop(order.orderId, None) is not None:
            self._closed.append(order)
        if order.locked:
            market = self.markets[order.symbol]
            asset = market.quote if order.side == "Buy" else market.base
            self._move(asset, order.locked, to_locked=False)
            order.locked = _ZERO

    def _execute(self, order: FakeOrder, market: Market, qty: Decimal, price: Decimal,
                 *, maker: bool) -> None:
        """Trade ``qty`` of ``order`` at ``price``: fee, balances and the execution record."""
        value = qty * price
        base, quote = self.balance(market.base), self.balance(market.quote)
        if order.side == "Buy":
            if order.orderType == "Market":
                quote.free -= value
            else:  # paid out of what the limit price locked
                held = min(order.locked, qty * order.price)
                order.locked -= held
                quote.locked -= held
                quote.free += held - value
            fee, fee_coin = qty * self.fee_rate, market.base
            base.free += qty - fee
        else:
            if order.orderType == "Market":
                base.free -= qty
            else:
                order.locked -= qty
                base.locked -= qty
            fee, fee_coin = value * self.fee_rate, market.quote
            quote.free += value - fee
        self._exec_ids += 1
        now = self.server_time()
        order.fills.append(Fill(str(self._exec_ids), price, qty, fee, fee_coin, maker, now))
        order.cumExecQty += qty
        order.cumExecValue += value
        order.cumExecFee += fee
        order.updatedTime = now

    # ------------------------------------------------------------------ views

    def _order_view(self, order: FakeOrder) -> dict[str, Any]:
        """An order as /v5/order/realtime and /v5/order/history show it."""
        avg = order.cumExecValue / order.cumExecQty if order.cumExecQty else _ZERO
        base_qty = order.base_qty
        if order.is_open and base_qty is not None:
            leaves = base_qty - order.cumExecQty
            leaves_value = leaves * order.price
        else:
            leaves, leaves_value = _ZERO, _ZERO
        fee_coin = (self.markets[order.symbol].base if order.side == "Buy"
                    else self.markets[order.symbol].quote)
        return {
            "orderId": order.orderId, "orderLinkId": order.orderLinkId, "blockTradeId": "",
            "symbol": order.symbol, "price": _fmt(order.price), "qty": _fmt(order.qty),
            "side": order.side, "isLeverage": "0", "positionIdx": 0,
            "orderStatus": order.orderStatus,
            "createType": "CreateByUser", "cancelType": "UNKNOWN",
            "rejectReason": order.rejectReason,
            "avgPrice": _fmt(avg), "leavesQty": _fmt(leaves), "leavesValue": _fmt(leaves_value),
            "cumExecQty": _fmt(order.cumExecQty), "cumExecValue": _fmt(order.cumExecValue),
            "cumExecFee": _fmt(order.cumExecFee),
            "cumFeeDetail": {fee_coin: _fmt(order.cumExecFee)} if order.cumExecQty else {},
            "timeInForce": order.timeInForce, "orderType": order.orderType,
            "stopOrderType": "", "orderIv": "", "marketUnit": order.marketUnit,
            "triggerPrice": "0", "takeProfit": "0", "stopLoss": "0", "tpslMode": "",
            "ocoTriggerBy": "", "tpLimitPrice": "", "slLimitPrice": "", "tpTriggerBy": "",
            "slTriggerBy": "", "triggerDirection": 0, "triggerBy": "",
            "lastPriceOnCreated": "", "basePrice": "", "reduceOnly": False,
            "closeOnTrigger": False, "placeType": "", "smpType": "None", "smpGroup": 0,
            "smpOrderId": "", "createdTime": str(order.createdTime),
            "updatedTime": str(order.updatedTime),
        }

    def _execution_view(self, order: FakeOrder, fill: Fill) -> dict[str, Any]:
        return {
            "symbol": order.symbol, "orderId": order.orderId, "orderLinkId": order.orderLinkId,
            "side": order.side, "orderPrice": _fmt(order.price), "orderQty": _fmt(order.qty),
            "leavesQty": "0", "orderType": order.orderType, "stopOrderType": "",
            "execFee": _fmt(fill.fee), "feeCurrency": fill.feeCurrency,
            "execId": fill.execId, "execPrice": _fmt(fill.price), "execQty": _fmt(fill.qty),
            "execType": "Trade", "execValue": _fmt(fill.qty * fill.price),
            "execTime": str(fill.time), "isMaker": fill.isMaker, "feeRate": _fmt(self.fee_rate),
            "tradeIv": "", "markIv": "", "markPrice": "", "indexPrice": "",
            "underlyingPrice": "", "blockTradeId": "", "closedSize": "", "seq": int(fill.execId),
        }


class FakeBybitThread(FakeThread[FakeBybit]):
    """Run a :class:`FakeBybit` from a daemon thread (tests.fakes.thread)."""

    name = "fake-bybit"

