"""A fake OKX (API v5) spot REST server for tests, written from OKX's documentation.

The real ``ccxt.async_support.okx`` class talks to it over HTTP on 127.0.0.1 once
its ``urls['api']['rest']`` points here (:func:`rewrite_urls`).  It serves what ccxt
calls for a spot account in Spot mode: instruments, currencies, server time, price
limits, balance, place order (``/trade/order`` and ``/trade/batch-orders``, which is
ccxt's default), order details by ``ordId`` or ``clOrdId``, cancel, pending orders
and the fills of an order (``/trade/fills`` and ``/trade/fills-history``).

What it follows from OKX's documentation (docs-v5, "REST Authentication", "Trade",
"Error Code"):

- Private requests carry ``OK-ACCESS-KEY``, ``OK-ACCESS-SIGN``, ``OK-ACCESS-TIMESTAMP``
  (ISO 8601 UTC with milliseconds) and ``OK-ACCESS-PASSPHRASE``; the signature is
  Base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath[?query] + body)).
  Missing headers are 50103/50104/50106/50107, a wrong key 50111, a wrong
  passphrase 50105, a malformed timestamp 50112, a bad signature 50113, all HTTP
  401; a timestamp more than 30 s away from the server's clock is 50102 (401).
- Replies are ``{"code", "msg", "data": [...]}``.  Errors about the request itself
  come at the top level with the documented HTTP status (51000 "Parameter {x}
  error" is 400); an order the venue refuses comes back HTTP 200 with ``code``
  "1" ("All operations failed", or "2" for a batch partly placed) and the reason in
  the order's ``sCode``/``sMsg``/``subCode``.
- ``clOrdId``: letters and digits, at most 32.  A second order with the client id of
  a pending order is refused with 51016 "Client order ID already exists."; the id
  of a finished order can be used again, and a lookup by ``clOrdId`` returns the
  newest order with it (as documented for GET /trade/order).
- Sizes: below ``minSz`` (or a value below the market's minimum order amount) 51020,
  not a multiple of ``lotSz`` 51121, above ``maxLmtSz`` 51005, a market order worth
  more than ``maxMktSz`` 51201; a price off the ``tickSz`` grid is 51000 (400); a buy
  above the price limit 51137, a sell below it 51138 (the limits are also served
  by GET /public/price-limit).  Not enough available balance: 51008 (sub-code 1000).
  OKX publishes no minimum notional in its instruments, so ``min_notional`` is
  enforced (51020) without being announced.
- Order states are OKX's: live, partially_filled, filled, canceled.  The place-order
  reply carries no state (only ``ordId``, ``clOrdId``, ``sCode``...).  A post_only
  order that would take is accepted and at once canceled (cancelSource 31); an ioc
  order's rest and an fok order that cannot fill in full are canceled; a market
  order that finds too little liquidity is canceled with what it filled.
- Fees: ``fee`` is negative, charged at ``fee_rate`` in the currency received (base
  for buys, quote for sells); each fill lists ``fee``, ``feeCcy``, ``feeRate``,
  ``execType`` (T taker, M maker).
- Canceled orders without fills are kept only 2 hours (GET /trade/order then says
  51603), as the order-history documentation says; :attr:`FakeOkx.time_offset_ms`
  moves the server clock to get there.

Faults (:meth:`FakeOkx.inject`) as they look on the wire:

- ``lost_reply``: the request is processed, then the connection is dropped.
- ``timeout``: processed, the reply is held ``delay`` seconds.
- ``drop``: the connection is dropped before anything is processed.
- ``429``: HTTP 429 ``{"code": "50011", "msg": "Too Many Requests"}``; not processed.
- ``503_plain``: HTTP 503 with an HTML page; not processed.
- ``503_json``: HTTP 503 ``{"code": "50001", "msg": "Service temporarily unavailable.
  Please try again later."}``; not processed.
- ``503_json_placed``: the same reply, but processed.
- ``503_then_placed``: the same reply at once; processed ``delay`` seconds later
  (unless its ``expTime`` header has passed by then).
- ``5xx_unknown_code_placed``: HTTP 500 ``{"code": "51149", "msg": "Order timed out.
  Please try again."}`` (documented as HTTP 500, "does not mean that the request was
  successful or failed"; missing from ccxt 4.5.90's table); processed.
- ``200_not_an_order_placed``: HTTP 200 with an HTML page (a proxy's); processed.
- ``venue_busy_placed``: HTTP 400 ``{"code": "50004", "msg": "API endpoint request
  timeout. (does not mean that the request was successful or failed, please check
  the request result)."}`` -- OKX's documented "result unknown" code, in its usual
  top-level envelope at its documented status; processed.
- ``clock``: HTTP 401 ``{"code": "50102", "msg": "Timestamp request expired."}``; not
  processed.

A duplicate client id needs no fault: it gets 51016 as described above.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import datetime
import hashlib
import hmac
import json
import re
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
    "ORDER_PATH",
    "Balance",
    "FakeOkx",
    "FakeOkxOrder",
    "FakeOkxThread",
    "Fill",
    "Market",
    "rewrite_urls",
]


_ZERO = Decimal(0)
# ccxt's okx class places orders through batch-orders unless told otherwise.
ORDER_PATH = "/api/v5/trade/batch-orders"
SINGLE_ORDER_PATH = "/api/v5/trade/order"
_CREATE_PATHS = frozenset({ORDER_PATH, SINGLE_ORDER_PATH})

OPEN_STATES = frozenset({"live", "partially_filled"})
_ORDER_TYPES = frozenset({"market", "limit", "post_only", "fok", "ioc"})
_KNOWN_ORDER_TYPES = _ORDER_TYPES | {
    "optimal_limit_ioc", "mmp", "mmp_and_post_only", "elp"}

FAULTS = frozenset({
    "lost_reply", "timeout", "drop", "429", "503_plain", "503_json", "503_json_placed",
    "503_then_placed", "5xx_unknown_code_placed", "200_not_an_order_placed",
    "venue_busy_placed", "clock",
})
_BEFORE = frozenset({"drop", "429", "503_plain", "503_json", "clock"})

_CLIENT_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_TAG = re.compile(r"^[A-Za-z0-9]{1,16}$")
_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
# The documentation: "The request will expire 30 seconds after the timestamp."
_TIMESTAMP_WINDOW_MS = 30_000
# "The incomplete orders that have been canceled are only reserved for 2 hours."
_CANCELED_RETENTION_MS = 2 * 3600 * 1000
_FIRST_ORDER_ID = 2_900_000_000_000_000_000
_DEFAULT_BALANCE = Decimal(10) ** 9
_HTML = ("<html><head><title>{title}</title></head><body><h1>{title}</h1>"
         "<p>The upstream server did not answer.</p></body></html>")


def _fmt(value: Decimal) -> str:
    """A decimal the way OKX prints it: plain, without trailing zeros."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


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
    """One spot instrument, with the same constructor keywords as fake_binance.Market.

    Mapped onto OKX's instrument: ``step_size`` is ``lotSz``, ``min_qty`` ``minSz``,
    ``max_qty`` ``maxLmtSz``, ``tick_size`` ``tickSz``; ``min_price``/``max_price``
    are the price limits (lowest sell, highest buy); ``min_notional`` is enforced
    but, as on OKX, not published.
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
    state: str = "live"  # live, suspend, preopen
    max_market_value: Decimal = Decimal(1000000)  # maxMktSz, in quote for spot

    @property
    def symbol(self) -> str:
        """The OKX instrument id, e.g. ``BTC-USDT``."""
        return f"{self.base}-{self.quote}"


@dataclass
class Fill:
    """One trade of an order (GET /trade/fills)."""

    tradeId: str
    billId: str
    fillPx: Decimal
    fillSz: Decimal
    fee: Decimal  # negative: charged
    feeCcy: str
    execType: str  # T taker, M maker
    ts: int


@dataclass
class FakeOkxOrder:
    """One order as the fake keeps it (field names follow OKX)."""

    ordId: str
    clOrdId: str
    tag: str
    instId: str
    side: str
    ordType: str
    tgtCcy: str
    sz: Decimal          # in quote for a market buy with tgtCcy quote_ccy, else base
    px: Decimal | None
    cTime: int
    uTime: int
    state: str = "live"
    accFillSz: Decimal = _ZERO
    quoteFilled: Decimal = _ZERO
    fee: Decimal = _ZERO
    feeCcy: str = ""
    cancelSource: str = ""
    cancelSourceReason: str = ""
    fills: list[Fill] = field(default_factory=list)
    locked: Decimal = _ZERO  # still frozen for this order (quote for buys, base for sells)

    @property
    def clientOrderId(self) -> str:
        """The client order id (``clOrdId``), named as on the Binance fake."""
        return self.clOrdId

    @property
    def status(self) -> str:
        """The order's OKX state."""
        return self.state

    @property
    def is_open(self) -> bool:
        """Whether the order still rests (live or partially_filled)."""
        return self.state in OPEN_STATES

    @property
    def base_size(self) -> Decimal | None:
        """The order's size in base units; None for a market buy sized in quote."""
        return None if self.tgtCcy == "quote_ccy" else self.sz


@dataclass
class Balance:
    """One currency of the trading account: available and frozen."""

    free: Decimal = _ZERO
    locked: Decimal = _ZERO


@dataclass
class _Fault:
    kind: str
    method: str
    path: str
    remaining: int
    delay: float


class _TopError(Exception):
    """A request-level error: ``{"code": code, "msg": msg, "data": []}`` at ``status``."""

    def __init__(self, code: str, msg: str, status: int = 200) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


class _OrderError(Exception):
    """One order refused: its ``sCode``/``sMsg``/``subCode`` in an HTTP 200 reply."""

    def __init__(self, code: str, msg: str, sub_code: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.sub_code = sub_code


def _param_error(name: str) -> _TopError:
    return _TopError("51000", f"Parameter {name} error", status=400)


def _reply(data: list[dict[str, Any]], code: str = "0", msg: str = "",
           status: int = 200, **extra: Any) -> web.Response:
    return web.json_response({"code": code, "data": data, "msg": msg, **extra}, status=status)


def _top_error(error: _TopError) -> web.Response:
    return _reply([], error.code, error.msg, error.status)


_Handler = Callable[[web.Request, dict[str, str], Any], Awaitable[web.StreamResponse]]


class FakeOkx:
    """An in-process fake of OKX's v5 spot REST API (see the module docstring)."""

    def __init__(
        self,
        markets: dict[str, Market],
        *,
        api_key: str,
        secret: str,
        passphrase: str,
        balances: dict[str, Decimal] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
    ) -> None:
        self.markets: dict[str, Market] = {}
        for key, market in markets.items():
            if key.replace("/", "-") != market.symbol:
                raise ValueError(f"market key {key!r} does not match {market.base}/{market.quote}")
            self.markets[market.symbol] = market
        self.api_key = api_key
        self.secret = secret
        self.passphrase = passphrase
        self.fee_rate = fee_rate
        if balances is None:
            assets = {a for m in self.markets.values() for a in (m.base, m.quote)}
            balances = dict.fromkeys(sorted(assets), _DEFAULT_BALANCE)
        self.balances: dict[str, Balance] = {a: Balance(free=v) for a, v in balances.items()}
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        # Place-order requests refused because they arrived after their expTime.
        self.expired = 0
        self.orders: list[FakeOkxOrder] = []
        # Order POSTs per clOrdId (each order of a batch), counted on arrival, before
        # any fault or check: every send that reached the venue.
        self.posts: collections.Counter[str] = collections.Counter()
        self.on_order: Callable[[str, FakeOkxOrder | None], None] | None = None
        # Added to the server clock (ms): a client clock that drifted, or time passing.
        self.time_offset_ms = 0
        self.url = ""
        self.port = 0
        self._faults: list[_Fault] = []
        self._late: set[asyncio.Task[None]] = set()
        self._by_id: dict[str, FakeOkxOrder] = {}
        self._open: dict[str, FakeOkxOrder] = {}
        self._by_client_id: dict[tuple[str, str], FakeOkxOrder] = {}  # newest per id
        self._trade_ids = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._routes: dict[tuple[str, str], tuple[bool, _Handler]] = {
            ("GET", "/api/v5/public/time"): (False, self._time),
            ("GET", "/api/v5/public/instruments"): (False, self._instruments),
            ("GET", "/api/v5/public/price-limit"): (False, self._price_limit),
            ("GET", "/api/v5/asset/currencies"): (True, self._currencies),
            ("GET", "/api/v5/account/balance"): (True, self._balance),
            ("POST", SINGLE_ORDER_PATH): (True, self._place_one),
            ("POST", ORDER_PATH): (True, self._place_batch),
            ("GET", "/api/v5/trade/order"): (True, self._order_details),
            ("POST", "/api/v5/trade/cancel-order"): (True, self._cancel),
            ("GET", "/api/v5/trade/orders-pending"): (True, self._pending),
            ("GET", "/api/v5/trade/fills"): (True, self._fills),
            ("GET", "/api/v5/trade/fills-history"): (True, self._fills_history),
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
        """Stop listening; replies still held by a "timeout" fault are cut short."""
        self._closing.set()
        for task in list(self._late):
            task.cancel()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ test helpers

    def open_orders(self) -> list[FakeOkxOrder]:
        """Orders that are live or partially_filled, oldest first."""
        return [o for o in self._open.values() if o.is_open]

    def balance(self, asset: str) -> Balance:
        """The trading account's balance of ``asset`` (zero if it has none)."""
        return self.balances.setdefault(asset, Balance())

    def inject(
        self,
        fault: str,
        *,
        method: str = "POST",
        path: str = ORDER_PATH,
        times: int = 1,
        delay: float = 5.0,
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests to ``method path``.

        Faults queue in injection order; a request takes the first pending one that
        matches it.  What each looks like on the wire: see the module docstring.
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
        """Fill open orders of ``symbol`` at their limit prices (as maker), oldest first.

        With ``quantity`` at most that much (base units) is filled in total.
        """
        market = self._market_for(symbol)
        left = quantity
        for order in self.open_orders():
            if left is not None and left <= 0:
                break
            if order.instId != market.symbol or order.px is None:
                continue
            rest = order.sz - order.accFillSz
            qty = rest if left is None else min(rest, left)
            self._execute(order, market, qty, order.px, "M")
            if left is not None:
                left -= qty
            order.state = "filled" if order.accFillSz == order.sz else "partially_filled"
            self._settle(order)

    def server_time(self) -> int:
        """The fake's clock in milliseconds."""
        return _now_ms() + self.time_offset_ms

    # ------------------------------------------------------------------ HTTP plumbing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        self.requests[(method, path)] += 1
        body = await request.text()
        if method == "POST" and path in _CREATE_PATHS:
            for client_id in self._sent_client_ids(body):
                self.posts[client_id] += 1
        fault = self._take_fault(method, path)
        if fault is not None and fault.kind in _BEFORE:
            return self._fault_reply(request, fault.kind)
        if fault is not None and fault.kind == "503_then_placed":
            task = asyncio.get_running_loop().create_task(
                self._later(fault.delay, request, body))
            self._late.add(task)
            task.add_done_callback(self._late.discard)
            return self._fault_reply(request, "503_json")
        response = await self._handle(request, body)
        if fault is None:
            return response
        if fault.kind == "lost_reply":
            return self._fault_reply(request, "drop")
        if fault.kind == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.delay)
            return response
        if fault.kind == "503_json_placed":
            return self._fault_reply(request, "503_json")
        return self._fault_reply(request, fault.kind)

    async def _handle(self, request: web.Request, body: str) -> web.StreamResponse:
        route = self._routes.get((request.method, request.path))
        if route is None:
            # Not documented; what OKX's gateway answers for a path it does not serve.
            return web.json_response({"msg": "Not Found", "code": "404"}, status=404)
        private, handler = route
        try:
            if private:
                self._authenticate(request, body)
            query = {k: v for k, v in urllib.parse.parse_qsl(
                request.raw_path.partition("?")[2], keep_blank_values=True)}
            payload: Any = None
            if request.method == "POST":
                payload = self._json_body(request, body)
            return await handler(request, query, payload)
        except _TopError as error:
            return _top_error(error)

    async def _later(self, delay: float, request: web.Request, body: str) -> None:
        # Processed late, but checked as it is processed (timestamp, expTime).
        await asyncio.sleep(delay)
        await self._handle(request, body)

    @staticmethod
    def _sent_client_ids(body: str) -> list[str]:
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return [""]
        entries = payload if isinstance(payload, list) else [payload]
        return [str(e.get("clOrdId", "")) if isinstance(e, dict) else "" for e in entries]

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
        if kind == "503_json":
            return _reply([], "50001", "Service temporarily unavailable. Please try again later.",
                          503)
        if kind == "503_plain":
            return web.Response(status=503, content_type="text/html",
                                text=_HTML.format(title="503 Service Temporarily Unavailable"))
        if kind == "429":
            return _reply([], "50011", "Too Many Requests", 429)
        if kind == "5xx_unknown_code_placed":
            return _reply([], "51149", "Order timed out. Please try again.", 500)
        if kind == "200_not_an_order_placed":
            return web.Response(status=200, content_type="text/html",
                                text=_HTML.format(title="Please wait"))
        if kind == "venue_busy_placed":
            return _reply([], "50004", "API endpoint request timeout. (does not mean that the "
                          "request was successful or failed, please check the request "
                          "result).", 400)
        # clock
        return _reply([], "50102", "Timestamp request expired.", 401)

    def _json_body(self, request: web.Request, body: str) -> Any:
        if not body:
            raise _TopError("50000", "Body for POST request cannot be empty.", 400)
        if request.content_type != "application/json":
            raise _TopError("50006", 'Invalid Content-Type. Please use "application/JSON".',
                            400)
        try:
            return json.loads(body)
        except ValueError:
            raise _TopError("50002", "JSON syntax error", 400) from None

    def _authenticate(self, request: web.Request, body: str) -> None:
        headers = request.headers
        key = headers.get("OK-ACCESS-KEY")
        if not key:
            raise _TopError("50103", 'Request header "OK-ACCESS-KEY" cannot be empty.', 401)
        passphrase = headers.get("OK-ACCESS-PASSPHRASE")
        if not passphrase:
            raise _TopError("50104", 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.',
                            401)
        signature = headers.get("OK-ACCESS-SIGN")
        if not signature:
            raise _TopError("50106", 'Request header "OK-ACCESS-SIGN" cannot be empty.', 401)
        stamp = headers.get("OK-ACCESS-TIMESTAMP")
        if not stamp:
            raise _TopError("50107", 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.',
                            401)
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise _TopError("50111", "Invalid OK-ACCESS-KEY.", 401)
        if not hmac.compare_digest(passphrase.encode(), self.passphrase.encode()):
            raise _TopError("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.', 401)
        if not _TIMESTAMP.fullmatch(stamp):
            raise _TopError("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
        sent = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if abs(self.server_time() - int(sent.timestamp() * 1000)) > _TIMESTAMP_WINDOW_MS:
            raise _TopError("50102", "Timestamp request expired.", 401)
        # "Transaction timeouts": a place-order request with an expTime header is not
        # processed once the server's time is past it. The docs name no error code for
        # it; the fake answers with the timestamp-expiry one.
        deadline = headers.get("expTime")
        if deadline is not None and request.path in _CREATE_PATHS:
            if not deadline.isdigit():
                raise _TopError("50112", "Invalid expTime.", 400)
            if self.server_time() > int(deadline):
                self.expired += 1
                raise _TopError("50102", "Request expired (expTime).", 400)
        prehash = stamp + request.method + request.raw_path + body
        expected = base64.b64encode(
            hmac.new(self.secret.encode(), prehash.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _TopError("50113", "Invalid signature.", 401)

    # ------------------------------------------------------------------ public endpoints

    async def _time(self, request: web.Request, query: dict[str, str],
                    payload: Any) -> web.StreamResponse:
        return _reply([{"ts": str(self.server_time())}])

    async def _instruments(self, request: web.Request, query: dict[str, str],
                           payload: Any) -> web.StreamResponse:
        kind = query.get("instType")
        if not kind:
            raise _TopError("50014", "Parameter instType can not be empty.", 400)
        if kind not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            raise _param_error("instType")
        markets = list(self.markets.values()) if kind == "SPOT" else []
        if query.get("instId"):
            markets = [m for m in markets if m.symbol == query["instId"]]
            if not markets:
                raise _TopError("51001", "Instrument ID, Instrument ID code or Spread ID "
                                         "doesn't exist.")
        return _reply([self._instrument(m) for m in markets])

    @staticmethod
    def _instrument(market: Market) -> dict[str, Any]:
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": market.base, "category": "1",
            "ctMult": "", "ctType": "", "ctVal": "", "ctValCcy": "", "expTime": "",
            "instFamily": "", "instId": market.symbol, "instIdCode": 1, "instType": "SPOT",
            "lever": "", "listTime": "1548133413000", "lotSz": _fmt(market.step_size),
            "maxIcebergSz": _fmt(market.max_qty), "maxLmtAmt": "20000000",
            "maxLmtSz": _fmt(market.max_qty), "maxMktAmt": "",
            "maxMktSz": _fmt(market.max_market_value), "maxStopSz": _fmt(market.max_market_value),
            "maxTriggerSz": _fmt(market.max_qty), "maxTwapSz": _fmt(market.max_qty),
            "minSz": _fmt(market.min_qty), "optType": "", "quoteCcy": market.quote,
            "ruleType": "normal", "settleCcy": "", "state": market.state, "stk": "",
            "tickSz": _fmt(market.tick_size), "tradeQuoteCcyList": [market.quote], "uly": "",
        }

    async def _price_limit(self, request: web.Request, query: dict[str, str],
                           payload: Any) -> web.StreamResponse:
        market = self._known_instrument(query.get("instId"))
        return _reply([{"instId": market.symbol, "instType": "SPOT",
                        "buyLmt": _fmt(market.max_price), "sellLmt": _fmt(market.min_price),
                        "ts": str(self.server_time()), "enabled": True}])

    # ------------------------------------------------------------------ private endpoints

    async def _currencies(self, request: web.Request, query: dict[str, str],
                          payload: Any) -> web.StreamResponse:
        assets = sorted({a for m in self.markets.values() for a in (m.base, m.quote)})
        return _reply([{
            "ccy": asset, "name": asset, "chain": f"{asset}-{asset}", "canDep": True,
            "canWd": True, "canInternal": True, "minDep": "0.00000001", "minWd": "0.001",
            "maxWd": "1000000", "wdTickSz": "8", "minFee": "0.0001", "maxFee": "0.0002",
            "mainNet": True, "needTag": False, "logoLink": "", "burningFeeRate": "",
            "depQuotaFixed": "", "usedDepQuotaFixed": "", "wdQuota": "10000000",
            "usedWdQuota": "0",
        } for asset in assets])

    async def _balance(self, request: web.Request, query: dict[str, str],
                       payload: Any) -> web.StreamResponse:
        wanted = set(filter(None, query.get("ccy", "").split(",")))
        now = str(self.server_time())
        details = []
        for asset, held in sorted(self.balances.items()):
            if wanted and asset not in wanted:
                continue
            total = held.free + held.locked
            # Spot mode (acctLv 1): availEq and the margin fields are "".
            details.append({
                "availBal": _fmt(held.free), "availEq": "", "cashBal": _fmt(total),
                "ccy": asset, "crossLiab": "", "disEq": "0", "eq": _fmt(total),
                "eqUsd": "", "fixedBal": "0", "frozenBal": _fmt(held.locked), "imr": "",
                "interest": "", "isoEq": "", "isoLiab": "", "isoUpl": "", "liab": "",
                "maxLoan": "", "mgnRatio": "", "mmr": "", "notionalLever": "",
                "ordFrozen": _fmt(held.locked), "spotBal": "", "spotInUseAmt": "",
                "stgyEq": "0", "twap": "0", "uTime": now, "upl": "", "uplLiab": "",
            })
        return _reply([{"adjEq": "", "availEq": "", "borrowFroz": "", "details": details,
                        "imr": "", "isoEq": "", "mgnRatio": "", "mmr": "", "notionalUsd": "",
                        "ordFroz": "", "totalEq": "", "uTime": now, "upl": ""}])

    async def _place_one(self, request: web.Request, query: dict[str, str],
                         payload: Any) -> web.StreamResponse:
        if not isinstance(payload, dict):
            raise _TopError("50002", "JSON syntax error", 400)
        self._check_parameters(payload)
        return self._placed_reply([self._place_entry(payload)])

    async def _place_batch(self, request: web.Request, query: dict[str, str],
                           payload: Any) -> web.StreamResponse:
        if not isinstance(payload, list) or not all(isinstance(e, dict) for e in payload):
            raise _TopError("50002", "JSON syntax error", 400)
        if not payload:
            raise _TopError("50000", "Body for POST request cannot be empty.", 400)
        if len(payload) > 20:
            raise _TopError("51111", "Maximum 20 orders can be placed in bulk.")
        # Request-level checks for every entry come first: one bad parameter fails all.
        for entry in payload:
            self._check_parameters(entry)
        return self._placed_reply([self._place_entry(entry) for entry in payload])

    def _placed_reply(self, results: list[dict[str, Any]]) -> web.Response:
        failed = sum(1 for r in results if r["sCode"] != "0")
        now_us = str(self.server_time() * 1000)
        if failed == 0:
            code, msg = "0", ""
        elif failed == len(results):
            code, msg = "1", "All operations failed"
        else:
            code, msg = "2", "Bulk operation partially succeeded"
        return _reply(results, code, msg, inTime=now_us, outTime=now_us)

    def _place_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        self._hook("received", None)
        client_id = str(entry.get("clOrdId", ""))
        tag = str(entry.get("tag", ""))
        try:
            order = self._place(entry)
        except _OrderError as error:
            return {"clOrdId": client_id, "ordId": "", "tag": tag, "ts": str(self.server_time()),
                    "sCode": error.code, "sMsg": error.msg, "subCode": error.sub_code}
        self._hook("placed", order)
        return {"clOrdId": order.clOrdId, "ordId": order.ordId, "tag": order.tag,
                "ts": str(order.cTime), "sCode": "0", "sMsg": "Order placed", "subCode": ""}

    async def _order_details(self, request: web.Request, query: dict[str, str],
                             payload: Any) -> web.StreamResponse:
        order = self._find(query)
        if order is None:
            raise _TopError("51603", "Order does not exist.")
        return _reply([self._order_view(order)])

    async def _cancel(self, request: web.Request, query: dict[str, str],
                      payload: Any) -> web.StreamResponse:
        if not isinstance(payload, dict):
            raise _TopError("50002", "JSON syntax error", 400)
        params = {k: str(v) for k, v in payload.items()}
        order = self._find(params)
        now = str(self.server_time())
        if order is None or not order.is_open:
            return _reply([{"clOrdId": params.get("clOrdId", ""), "ordId": params.get("ordId", ""),
                            "ts": now, "sCode": "51400",
                            "sMsg": "Order cancellation failed as the order has been filled, "
                                    "canceled or does not exist.", "subCode": ""}],
                          "1", "All operations failed")
        order.state = "canceled"
        order.cancelSource = "1"
        order.cancelSourceReason = "Order canceled by user"
        order.uTime = self.server_time()
        self._settle(order)
        return _reply([{"clOrdId": order.clOrdId, "ordId": order.ordId, "ts": now,
                        "sCode": "0", "sMsg": "", "subCode": ""}])

    async def _pending(self, request: web.Request, query: dict[str, str],
                       payload: Any) -> web.StreamResponse:
        inst_id = query.get("instId")
        orders = [o for o in reversed(self.open_orders())  # newest first
                  if inst_id in (None, "", o.instId)
                  and query.get("instType", "SPOT") == "SPOT"
                  and query.get("state") in (None, "", o.state)]
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 100
        return _reply([self._order_view(o) for o in orders[:min(limit, 100)]])

    async def _fills(self, request: web.Request, query: dict[str, str],
                     payload: Any) -> web.StreamResponse:
        return _reply(self._fill_rows(query))

    async def _fills_history(self, request: web.Request, query: dict[str, str],
                             payload: Any) -> web.StreamResponse:
        if not query.get("instType"):
            raise _TopError("50014", "Parameter instType can not be empty.", 400)
        return _reply(self._fill_rows(query))

    def _fill_rows(self, query: dict[str, str]) -> list[dict[str, Any]]:
        kind = query.get("instType", "SPOT")
        inst_id, ord_id = query.get("instId"), query.get("ordId")
        rows = []
        for order in reversed(self.orders):  # newest first, as OKX returns them
            if kind != "SPOT" or inst_id not in (None, "", order.instId):
                continue
            if ord_id not in (None, "", order.ordId):
                continue
            for fill in reversed(order.fills):
                rows.append({
                    "instType": "SPOT", "instId": order.instId, "tradeId": fill.tradeId,
                    "ordId": order.ordId, "clOrdId": order.clOrdId, "billId": fill.billId,
                    "subType": "1" if order.side == "buy" else "2", "tag": order.tag,
                    "fillPx": _fmt(fill.fillPx), "fillSz": _fmt(fill.fillSz),
                    "fillIdxPx": "", "fillPnl": "0", "fillPxVol": "", "fillPxUsd": "",
                    "fillMarkVol": "", "fillFwdPx": "", "fillMarkPx": "",
                    "side": order.side, "posSide": "net", "execType": fill.execType,
                    "feeCcy": fill.feeCcy, "fee": _fmt(fill.fee),
                    "feeRate": _fmt(-self.fee_rate), "ts": str(fill.ts),
                    "fillTime": str(fill.ts), "tradeQuoteCcy": "",
                })
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 100
        return rows[:min(limit, 100)]

    # ------------------------------------------------------------------ order logic

    def _hook(self, phase: str, order: FakeOkxOrder | None) -> None:
        if self.on_order is not None:
            self.on_order(phase, order)

    def _market_for(self, symbol: str) -> Market:
        market = self.markets.get(symbol.replace("/", "-"))
        if market is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        return market

    def _known_instrument(self, inst_id: str | None) -> Market:
        if not inst_id:
            raise _TopError("50014", "Parameter instId can not be empty.", 400)
        market = self.markets.get(inst_id)
        if market is None:
            raise _TopError("51001", "Instrument ID, Instrument ID code or Spread ID "
                                     "doesn't exist.")
        return market

    def _find(self, params: dict[str, str]) -> FakeOkxOrder | None:
        market = self._known_instrument(params.get("instId"))
        ord_id, client_id = params.get("ordId"), params.get("clOrdId")
        if ord_id:  # "if both are passed, ordId will be used"
            order = self._by_id.get(ord_id)
        elif client_id:
            order = self._by_client_id.get((market.symbol, client_id))
        else:
            raise _TopError("51003", "Either client order ID or order ID is required.")
        if order is None or order.instId != market.symbol:
            return None
        # Canceled orders that never filled are kept for 2 hours only.
        if (order.state == "canceled" and order.accFillSz == 0
                and self.server_time() - order.uTime > _CANCELED_RETENTION_MS):
            return None
        return order

    @staticmethod
    def _decimal(entry: dict[str, Any], name: str) -> Decimal:
        raw = entry.get(name)
        if not isinstance(raw, str) or not _NUMBER.fullmatch(raw):
            raise _param_error(name)
        try:
            value = Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
            raise _param_error(name) from None
        if value <= 0:
            raise _param_error(name)
        return value

    def _check_parameters(self, entry: dict[str, Any]) -> None:
        """The request-level checks of one order (HTTP 400, nothing placed)."""
        for name in ("instId", "tdMode", "side", "ordType", "sz"):
            if entry.get(name) in (None, ""):
                raise _TopError("50014", f"Parameter {name} can not be empty.", 400)
        if entry["side"] not in ("buy", "sell"):
            raise _param_error("side")
        if entry["ordType"] not in _KNOWN_ORDER_TYPES:
            raise _param_error("ordType")
        if entry["tdMode"] not in ("cash", "cross", "isolated", "spot_isolated"):
            raise _param_error("tdMode")
        if entry.get("tgtCcy", "") not in ("", "base_ccy", "quote_ccy"):
            raise _param_error("tgtCcy")
        client_id = entry.get("clOrdId")
        if client_id not in (None, "") and not (
                isinstance(client_id, str) and _CLIENT_ID.fullmatch(client_id)):
            raise _param_error("clOrdId")
        tag = entry.get("tag")
        if tag not in (None, "") and not (isinstance(tag, str) and _TAG.fullmatch(tag)):
            raise _param_error("tag")
        self._decimal(entry, "sz")
        if entry["ordType"] != "market":
            if entry.get("px") in (None, ""):
                raise _TopError("51204", "The price for the limit order can not be empty.")
            self._decimal(entry, "px")

    def _place(self, entry: dict[str, Any]) -> FakeOkxOrder:
        """Validate and place one order; a refusal raises :class:`_OrderError`."""
        try:
            self._check_parameters(entry)
            market = self._known_instrument(str(entry["instId"]))
        except _TopError as error:  # inside a batch entry the same checks become sCode
            raise _OrderError(error.code, error.msg) from None
        if market.state != "live":
            raise _OrderError("51001", "Instrument ID, Instrument ID code or Spread ID "
                                       "doesn't exist.")
        kind, side = str(entry["ordType"]), str(entry["side"])
        if kind not in _ORDER_TYPES:
            raise _OrderError("51000", "Parameter ordType error")
        if entry["tdMode"] != "cash":
            raise _OrderError("51010", "Request unsupported under current account mode")
        size = self._decimal(entry, "sz")
        # Spot market orders: a buy is sized in quote unless tgtCcy says base.
        default_tgt = "quote_ccy" if side == "buy" else "base_ccy"
        tgt = str(entry.get("tgtCcy") or default_tgt) if kind == "market" else ""
        price = None if kind == "market" else self._decimal(entry, "px")
        if price is not None and price % market.tick_size != 0:
            raise _OrderError("51000", "Parameter px error")
        if tgt == "quote_ccy":
            base_qty = (size / market.price).quantize(market.step_size, ROUND_DOWN)
        else:
            base_qty = size
            if base_qty % market.step_size != 0:
                raise _OrderError("51121", "Order quantity must be a multiple of the lot size.")
        if base_qty < market.min_qty:
            raise _OrderError("51020", "Your order should meet or exceed the minimum order "
                                       "amount.")
        if kind != "market" and base_qty > market.max_qty:
            raise _OrderError("51005", "Your order amount exceeds the max order amount.")
        fill_price = market.price if price is None else price
        notional = size if tgt == "quote_ccy" else base_qty * fill_price
        if kind == "market" and notional > market.max_market_value:
            raise _OrderError("51201", "Value of per market order cannot exceed "
                                       f"{_fmt(market.max_market_value)} {market.quote}.")
        if notional < market.min_notional:
            raise _OrderError("51020", "Your order should meet or exceed the minimum order "
                                       "amount.")
        if price is not None and side == "buy" and price > market.max_price:
            raise _OrderError("51137", "The highest price limit for buy orders is "
                                       f"{_fmt(market.max_price)}.")
        if price is not None and side == "sell" and price < market.min_price:
            raise _OrderError("51138", "The lowest price limit for sell orders is "
                                       f"{_fmt(market.min_price)}.")
        client_id = str(entry.get("clOrdId") or "")
        same = self._by_client_id.get((market.symbol, client_id)) if client_id else None
        if same is not None and same.is_open:
            raise _OrderError("51016", "Client order ID already exists.")

        takeable = base_qty if market.liquidity is None else min(base_qty, market.liquidity)
        crosses = price is not None and (
            price >= market.price if side == "buy" else price <= market.price)
        pay_asset = market.quote if side == "buy" else market.base
        if side == "buy":
            need = takeable * market.price if price is None else base_qty * price
        else:
            need = base_qty
        if self.balance(pay_asset).free < need:
            raise _OrderError("51008", f"Order failed. Insufficient {pay_asset} balance in "
                                       "account", "1000")

        now = self.server_time()
        order = FakeOkxOrder(
            ordId=str(_FIRST_ORDER_ID + len(self.orders) + 1), clOrdId=client_id,
            tag=str(entry.get("tag") or ""), instId=market.symbol, side=side, ordType=kind,
            tgtCcy=tgt, sz=size, px=price, cTime=now, uTime=now,
            feeCcy=market.base if side == "buy" else market.quote,
        )
        self.orders.append(order)
        self._by_id[order.ordId] = order
        self._open[order.ordId] = order
        if client_id:
            self._by_client_id[(market.symbol, client_id)] = order
        if price is not None:  # resting orders freeze what they may spend
            order.locked = need
            self._move(pay_asset, need, to_locked=True)

        if kind == "market":
            if takeable > 0:
                self._execute(order, market, takeable, market.price, "T")
            filled_all = order.accFillSz == base_qty
            order.state = "filled" if filled_all else "canceled"
        elif kind == "post_only" and crosses:
            order.state = "canceled"
            order.cancelSource = "31"
            order.cancelSourceReason = "The post-only order will take liquidity in taker orders"
        else:
            if crosses and not (kind == "fok" and takeable < base_qty):
                self._execute(order, market, takeable, market.price, "T")
            if order.accFillSz == base_qty:
                order.state = "filled"
            elif kind in ("ioc", "fok"):
                order.state = "canceled"
            else:
                order.state = "partially_filled" if order.accFillSz > 0 else "live"
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

    def _settle(self, order: FakeOkxOrder) -> None:
        """After a state change: a finished order unfreezes what it still holds."""
        if order.is_open:
            return
        self._open.pop(order.ordId, None)
        if order.locked:
            market = self.markets[order.instId]
            asset = market.quote if order.side == "buy" else market.base
            self._move(asset, order.locked, to_locked=False)
            order.locked = _ZERO

    def _execute(self, order: FakeOkxOrder, market: Market, qty: Decimal, price: Decimal,
                 exec_type: str) -> None:
        """Trade ``qty`` at ``price``: balances, the fee and the fill record."""
        quote = qty * price
        base_balance, quote_balance = self.balance(market.base), self.balance(market.quote)
        if order.side == "buy":
            if order.px is None:
                quote_balance.free -= quote
            else:  # paid out of what was frozen at the limit price
                held = min(order.locked, qty * order.px)
                order.locked -= held
                quote_balance.locked -= held
                quote_balance.free += held - quote
            fee = qty * self.fee_rate
            base_balance.free += qty - fee
        else:
            if order.px is None:
                base_balance.free -= qty
            else:
                order.locked -= qty
                base_balance.locked -= qty
            fee = quote * self.fee_rate
            quote_balance.free += quote - fee
        self._trade_ids += 1
        now = self.server_time()
        order.fills.append(Fill(str(self._trade_ids), str(10_000 + self._trade_ids), price, qty,
                                -fee, order.feeCcy, exec_type, now))
        order.accFillSz += qty
        order.quoteFilled += quote
        order.fee -= fee
        order.uTime = now

    # ------------------------------------------------------------------ replies

    def _order_view(self, order: FakeOkxOrder) -> dict[str, Any]:
        """An order as GET /trade/order and /trade/orders-pending show it."""
        last = order.fills[-1] if order.fills else None
        average = order.quoteFilled / order.accFillSz if order.accFillSz else None
        market = self.markets.get(order.instId)
        quote = market.quote if market is not None else ""
        return {
            "accFillSz": _fmt(order.accFillSz), "algoClOrdId": "", "algoId": "",
            "attachAlgoClOrdId": "", "attachAlgoOrds": [],
            "avgPx": "" if average is None else _fmt(average),
            "cTime": str(order.cTime), "cancelSource": order.cancelSource,
            "cancelSourceReason": order.cancelSourceReason, "category": "normal", "ccy": "",
            "clOrdId": order.clOrdId, "fee": _fmt(order.fee), "feeCcy": order.feeCcy,
            "fillPx": "" if last is None else _fmt(last.fillPx),
            "fillSz": "0" if last is None else _fmt(last.fillSz),
            "fillTime": "" if last is None else str(last.ts),
            "instId": order.instId, "instType": "SPOT", "isTpLimit": "false", "lever": "",
            "linkedAlgoOrd": {"algoId": ""}, "ordId": order.ordId, "ordType": order.ordType,
            "pnl": "0", "posSide": "net", "px": "" if order.px is None else _fmt(order.px),
            "pxType": "", "pxUsd": "", "pxVol": "", "quickMgnType": "", "rebate": "0",
            "rebateCcy": quote, "reduceOnly": "false", "side": order.side, "slOrdPx": "",
            "slTriggerPx": "", "slTriggerPxType": "", "source": "", "state": order.state,
            "stpId": "", "stpMode": "cancel_maker", "sz": _fmt(order.sz), "tag": order.tag,
            "tdMode": "cash", "tgtCcy": order.tgtCcy, "tpOrdPx": "", "tpTriggerPx": "",
            "tpTriggerPxType": "", "tradeId": "" if last is None else last.tradeId,
            "tradeQuoteCcy": quote, "uTime": str(order.uTime),
        }


class FakeOkxThread(FakeThread[FakeOkx]):
    """Run a :class:`FakeOkx` from a daemon thread (tests.fakes.thread)."""

    name = "fake-okx"
