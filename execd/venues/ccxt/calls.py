"""The ccxt calls an order's actions need, each answering with the event to feed back.

The I/O half of :mod:`~execd.venues.ccxt.order`: one ccxt exchange instance, built
as docs/ARCHITECTURE.md's live section says (ccxt's retries off, the venue's
acceptance window on every order request), and one method per action (send, look
up, read, cancel, read trades), each turning what ccxt returned or raised into an
:mod:`~execd.venues.ccxt.order` event. What an answer means is decided elsewhere:
here only what the venue said is read (its HTTP status and own code, whatever
class ccxt raised for it).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import aiohttp
import anyio
import ccxt.async_support as ccxt_async
from ccxt.base import errors

from execd.config.schema import CcxtConfig
from execd.model.messages import OrderRecord
from execd.service import logs
from execd.venues.ccxt import exchanges
from execd.venues.ccxt.actions import CallFailed, Cancelled, Found, Got, Placed, SendFailed
from execd.venues.ccxt.credentials import Credentials
from execd.venues.ccxt.order_stream import rewrite_urls

Verdict = exchanges.Verdict
# (venue, ccxt method, seconds, "ok" or the exception class): the metrics hook.
CallHook = Callable[[str, str, float, str], None]

_QUERY = re.compile(r"\?\S*")
# The HTTP status and body of the last reply ccxt read in this task (None: none yet
# in the current call): what a failed call's venue said, whatever ccxt made of it.
_LAST_REPLY: ContextVar[tuple[int | None, Any] | None] = ContextVar("execd_last_reply",
                                                                   default=None)


def classify(exc: BaseException, spec: exchanges.Exchange,
             reply: exchanges.Reply | None) -> Verdict:
    """What ``exc``, raised while sending an order, says about that order.

    ``rejected``: the venue answered and refused it. ``unreachable``: no byte left
    (the connection could not be opened). ``exists``: the venue says it already
    has an order with this client id. ``unknown``: anything else; the order may
    exist. A transport failure is judged by its cause (ccxt wraps some as a bare
    ExchangeError); a reply by the venue's HTTP status and own code
    (:func:`exchanges.verdict`), whatever class ccxt raised for it.
    """
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror):
        return "unreachable"
    if isinstance(cause, aiohttp.ClientError | TimeoutError) or (isinstance(
            exc, errors.NetworkError) and reply is None):
        return "unknown"
    return exchanges.verdict(spec, reply, type(exc).__name__)


def venue_reply(spec: exchanges.Exchange) -> exchanges.Reply | None:
    """The venue's answer in the current task's last call (None: it read none)."""
    last = _LAST_REPLY.get()
    return None if last is None else exchanges.read_reply(spec, *last)


def message_of(exc: BaseException) -> str:
    """The venue's message, without query strings (they carry signatures), at most 500 chars."""
    text = _QUERY.sub("", str(exc)) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _read_json() -> bool:
    """Whether the last reply ccxt read in this task was JSON (not a page, not nothing)."""
    last = _LAST_REPLY.get()
    return last is not None and isinstance(last[1], dict | list)


def _snippet() -> str:
    """The start of the last body ccxt read, for the record of an unreadable reply."""
    last = _LAST_REPLY.get()
    body = "" if last is None else last[1]
    text = body if isinstance(body, str) else repr(body)
    return _QUERY.sub("", " ".join(text.split()))[:200] or "(empty)"


class Calls:
    """One venue's ccxt exchange, and the calls of each order action on it."""

    def __init__(self, venue: str, table: CcxtConfig, credentials: Credentials,
                 on_call: CallHook | None) -> None:
        self.venue = venue
        self.table = table
        self.on_call = on_call
        self.spec = exchanges.exchange(table.exchange)
        self.log = logs.get("venue", venue=venue)
        self.exchange = self._exchange(credentials)

    async def call(self, name: str, *args: Any) -> Any:
        """One ccxt call; timed and reported to ``on_call`` (metrics) when set."""
        method = getattr(self.exchange, name)
        _LAST_REPLY.set(None)
        if self.on_call is None:
            return await method(*args)
        # Measured for metrics only: no decision reads this clock.
        started = anyio.current_time()
        result = "ok"
        try:
            return await method(*args)
        except BaseException as exc:
            result = type(exc).__name__
            raise
        finally:
            self.on_call(self.venue, name, anyio.current_time() - started, result)

    def _exchange(self, credentials: Credentials) -> Any:
        table, spec = self.table, self.spec
        # ccxt's retries are off: a retried POST /order can fill twice (one lost
        # reply is enough). Markets load in one request where the venue allows:
        # currencies and margin data are not fetched.
        options = {**spec.options, **table.options, "maxRetriesOnFailure": 0}
        settings: dict[str, Any] = {
            "apiKey": credentials.api_key, "secret": credentials.secret,
            "enableRateLimit": table.rate_limit_ms > 0, "rateLimit": table.rate_limit_ms,
            "timeout": table.timeout_ms, "options": options,
        }
        if credentials.password is not None:
            settings["password"] = credentials.password
        exchange = getattr(ccxt_async, table.exchange)(settings)
        # load_markets reads ``has``, not the option, to decide on a currencies request.
        exchange.has = {**exchange.has, **dict.fromkeys(spec.has_off, False)}
        if spec.window_option is not None:
            # The venue refuses a request older than this, so after it (plus skew)
            # an order it said it does not have can no longer appear.
            exchange.options[spec.window_option] = table.acceptance_window_ms // 2
        if table.base_url is not None:
            exchange.urls["api"] = rewrite_urls(exchange.urls["api"], table.base_url)
        if spec.deadline_header is not None:
            self._add_deadline(exchange, spec.deadline_header, spec.deadline_paths)
        original = exchange.handle_errors

        def handle_errors(status: int, reason: str, url: str, method: str, headers: Any,
                          body: str, response: Any, *request: Any) -> Any:
            # Seen before ccxt decides what the reply means: classify() reads the
            # status and the venue's own code rather than ccxt's class for it.
            _LAST_REPLY.set((status, response if response is not None else body))
            return original(status, reason, url, method, headers, body, response, *request)

        exchange.handle_errors = handle_errors
        return exchange

    def _add_deadline(self, exchange: Any, header: str, paths: tuple[str, ...]) -> None:
        """Put the venue's request deadline on every order request ccxt signs.

        Half the acceptance window from now, as Binance's recvWindow: after the
        window (the other half covers clock skew) the venue can no longer act on the
        request, so "no such order" is final.
        """
        sign = exchange.sign

        def signed(*args: Any, **kwargs: Any) -> Any:
            request = sign(*args, **kwargs)
            url = str(request.get("url") or "")
            if request.get("method") == "POST" and any(
                    url.split("?", 1)[0].endswith(p) for p in paths):
                # On the venue's clock, as ccxt measured it at start-up.
                venue_now = exchange.milliseconds() - int(
                    exchange.options.get("timeDifference") or 0)
                deadline = venue_now + self.table.acceptance_window_ms // 2
                request["headers"] = {**(request.get("headers") or {}),
                                      header: str(deadline)}
            return request

        exchange.sign = signed

    # ------------------------------------------------------------- the actions

    async def send(self, record: OrderRecord) -> Placed | SendFailed:
        """Send ``record``'s order once: the order placed, or what the failure says."""
        params: dict[str, Any] = {self.spec.client_id_param: record.client_order_id}
        if record.post_only:
            params["postOnly"] = True
        if record.reduce_only:
            params["reduceOnly"] = True
        if record.time_in_force is not None:
            params["timeInForce"] = record.time_in_force
        price = str(record.price) if record.price is not None else None
        try:
            placed: dict[str, Any] = await self.call(
                "create_order", record.symbol, record.type, record.side,
                str(record.amount), price, params)
        except Exception as exc:  # noqa: BLE001 - ccxt raises anything; every failure is classified
            return SendFailed(classify(exc, self.spec, venue_reply(self.spec)), message_of(exc))
        unreadable = exchanges.readable_order(placed, record.client_order_id)
        if unreadable is None:
            return Placed(placed)
        # A proxy's page, or an envelope ccxt took for an order: the venue may have
        # the order, so its fate is unknown and a lookup settles it.
        return SendFailed("unknown", f"{unreadable}: {_snippet()}")

    async def lookup(self, record: OrderRecord) -> Found | CallFailed:
        """The venue's order with ``record``'s client id (None: it has none), or the error."""
        try:
            return Found(await self._find(record))
        except Exception as exc:  # noqa: BLE001 - ccxt raises anything; every failure is classified
            return CallFailed(message_of(exc))

    async def read(self, record: OrderRecord, order_id: Any) -> Got | CallFailed:
        """The followed order's state, read by its venue id, or the error."""
        try:
            return Got(await self._read(order_id, record))
        except Exception as exc:  # noqa: BLE001 - ccxt raises anything; every failure is classified
            return CallFailed(message_of(exc))

    async def cancel(self, record: OrderRecord, order_id: Any) -> Cancelled | CallFailed:
        """Cancel the order: the venue's reply, None if it has ended, or the error."""
        try:
            return Cancelled(await self.call("cancel_order", order_id, record.symbol))
        except errors.OrderNotFound:
            return Cancelled(None)
        except Exception as exc:  # noqa: BLE001 - ccxt raises anything; every failure is classified
            return CallFailed(message_of(exc))

    async def trades(self, record: OrderRecord, order_id: Any) -> Got | CallFailed:
        """The order's trades (ccxt trade structures), or the error."""
        try:
            return Got(await self.call("fetch_order_trades", order_id, record.symbol))
        except Exception as exc:  # noqa: BLE001 - ccxt raises anything; every failure is classified
            return CallFailed(message_of(exc))

    async def _find(self, record: OrderRecord) -> dict[str, Any] | None:
        """One lookup by client order id, through each of the venue's lookup calls in turn.

        None when every call says "no such order": ccxt's OrderNotFound, or the venue's
        own not-found code whatever class ccxt raised for it.
        """
        for call in self.spec.lookup:
            params = {call.param: record.client_order_id, **call.extra}
            try:
                if call.kind == "list":
                    listed: list[Any] = await self.call(call.method, record.symbol, None,
                                                        None, params)
                    if not listed:
                        if not _read_json():
                            # ccxt reads a 200 that is not the venue's JSON (a proxy's
                            # page) as an empty list: that is no answer, not "no order".
                            raise errors.ExchangeError(  # noqa: TRY301 - judged as ccxt's own
                                f"{self.venue} lookup: not a list of orders: {_snippet()}")
                        continue
                    if len(listed) > 1:
                        raise errors.ExchangeError(  # noqa: TRY301 - judged as ccxt's own
                            f"{self.venue} lookup: {len(listed)} orders with client order "
                            f"id {record.client_order_id}")
                    found: Any = listed[0]
                else:
                    found = await self.call(call.method, None, record.symbol, params)
            except errors.OrderNotFound:
                continue
            except errors.ExchangeError:
                reply = venue_reply(self.spec)
                if reply is not None and reply.code in self.spec.codes.not_found:
                    continue
                raise
            if exchanges.readable_order(found, record.client_order_id) is not None:
                raise errors.ExchangeError(f"{self.venue} lookup: not an order: {_snippet()}")
            order: dict[str, Any] = found
            return order
        return None

    async def _read(self, order_id: Any, record: OrderRecord) -> dict[str, Any]:
        """The venue's state of an order being followed, read by its venue id.

        A venue's read by id may reach recent orders only (Bybit: open ones and the
        500 latest ended); one it no longer finds is looked up by client order id,
        whose calls reach the history. Not found by either: OrderNotFound.
        """
        try:
            order: dict[str, Any] = await self.call("fetch_order", order_id, record.symbol)
        except errors.OrderNotFound:
            found = await self._find(record)
            if found is None:
                raise
            self.log.info("order.read_by_client_id", intent_id=str(record.intent_id),
                          client_order_id=record.client_order_id, venue_order_id=order_id)
            return found
        return order
