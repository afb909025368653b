"""A real exchange through ccxt (``adapter = "ccxt"``): the live plane's adapter.

Three parts, all in this actor:

* **Start-up**: load the markets (one request), read the balances (one request,
  which also proves the credentials), then reconcile every order an earlier run
  recorded without an outcome: look each up by client order id, track the ones
  the venue has, send the ones it never got (within ``resend_window_ms``). Only
  then is the venue ready, and the daemon reads no intent before every venue is.
* **Intake** (synchronous, never waits on the venue): each accepted intent is
  prepared (rounding, floor, order type) into an ``order`` record that holds the
  intent's place in the ledger, or into the outcome that replaces it. With
  ``max_in_flight`` orders in flight and ``backlog`` waiting, the intent is refused
  (VENUE_BACKLOG_FULL) instead of waiting: a stalled venue stalls nothing else.
* **Workers** (``max_in_flight``): wait until the order record is durable, send
  the order, follow it to a final state (cancelling it after
  ``order_timeout_ms``) and write its outcome.

No order is sent twice. ccxt's own retries are off. A reply that leaves the
order's fate unknown (timeout, dropped connection, 5xx, rate limit, any
OperationFailed) is followed by a lookup by client order id; the order is sent
again only when the venue answers that it does not have it, and at most
``send_attempts`` times in all.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal

import aiohttp
import anyio
import ccxt.async_support as ccxt_async
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from ccxt.base import errors
from ccxt.base.decimal_to_precision import TICK_SIZE
from msgspec import Raw

from execd import ids, logs, reasons
from execd.clock import Clock
from execd.config import CcxtConfig
from execd.liveness import Pulse, beating
from execd.messages import (
    LATE,
    Accepted,
    Entry,
    ExecutionOutcome,
    OrderRecord,
    Plane,
    Settled,
)
from execd.venues.credentials import Credentials
from execd.venues.prepare import MarketRules, OrderPlan, prepare, rules_from_market
from execd.venues.results import is_final, not_executed, outcome_of_order

# What an error from the venue means for an order that was being sent.
Verdict = Literal["rejected", "unreachable", "unknown", "exists"]
Watch = Callable[[Entry, Callable[[int], None]], None]
# (venue, ccxt method, seconds, "ok" or the exception class): the metrics hook.
CallHook = Callable[[str, str, float, str], None]

# The longest pause between lookups of an order whose fate is unknown.
_MAX_BACKOFF = 30.0
# Calls that may still fail once the daemon is stopping, before an order is left
# for the next start-up to reconcile.
_TRIES_WHILE_STOPPING = 3
_QUERY = re.compile(r"\?\S*")


class _InDoubt(Exception):
    """The daemon is stopping and the venue could not say what became of an order."""


def classify(exc: BaseException) -> Verdict:
    """What ``exc``, raised while sending an order, says about that order.

    ``rejected``: the venue answered and refused it. ``unreachable``: no byte left
    (the connection could not be opened). ``exists``: the venue says it already
    has an order with this client id. ``unknown``: anything else; the order may
    exist. ccxt wraps some transport failures as a bare ExchangeError, so the
    cause is looked at before the class.
    """
    if isinstance(exc, errors.DuplicateOrderId) or (
            isinstance(exc, errors.InvalidOrder) and "duplicate order" in str(exc).lower()):
        return "exists"
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror):
        return "unreachable"
    if isinstance(exc, errors.OperationFailed) or isinstance(cause, aiohttp.ClientError):
        return "unknown"
    if isinstance(exc, errors.ExchangeError):
        return "rejected"
    return "unknown"


def message_of(exc: BaseException) -> str:
    """The venue's message, without query strings (they carry signatures), at most 500 chars."""
    text = _QUERY.sub("", str(exc)) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def rewrite_urls(urls: Any, base_url: str) -> Any:
    """Every URL in ccxt's ``urls['api']`` moved to ``base_url``, keeping its path."""
    if isinstance(urls, dict):
        return {key: rewrite_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and "://" in urls:
        rest = urls.split("://", 1)[1]
        return base_url + (rest[rest.index("/"):] if "/" in rest else "")
    return urls


class _Order:
    """One order on its way through a worker; ``time`` is its intent's logical time."""

    __slots__ = ("durable", "found", "record", "time")

    def __init__(self, record: OrderRecord, time: int,
                 found: dict[str, Any] | None = None) -> None:
        self.record = record
        self.time = time
        self.durable = anyio.Event()
        # The venue's state of the order, when start-up found it already there.
        self.found = found


class CcxtVenue:
    """One venue served by a ccxt exchange class."""

    plane: Plane = "live"

    def __init__(self, venue: str, table: CcxtConfig, credentials: Credentials, wall: Clock,
                 *, watch: Watch, settle: Callable[[Settled], None], stopping: anyio.Event,
                 unresolved: list[tuple[OrderRecord, int]] | None = None,
                 on_call: CallHook | None = None) -> None:
        self.venue = venue
        self.on_call = on_call
        self.table = table
        # The wall clock, for the wall_time of live records and the age of orders.
        # Logical time is never read here: every record carries its intent's.
        self.wall = wall
        self.watch = watch
        self.settle = settle
        self.stopping = stopping
        self.unresolved = list(unresolved or ())
        self.ready = anyio.Event()
        self.state = "starting"
        # Every order an earlier run sent, it sent before this moment.
        self._started = anyio.current_time()
        self._window = table.acceptance_window_ms / 1000
        self.rules: dict[str, MarketRules] = {}
        self.in_flight = 0
        self.log = logs.get("venue", venue=venue)
        self._execution_id = ids.ExecutionIds(venue, "live")
        self.exchange = self._exchange(credentials)
        self._work_send, self._work_receive = anyio.create_memory_object_stream[_Order](
            table.backlog)

    def reconfigure(self, table: CcxtConfig) -> None:
        """A reload's settings (only those that pace or bound calls: see execd.reload).

        Each is read when next used, so orders already in flight follow the new
        values from their next step on.
        """
        self.table = table
        self.exchange.timeout = table.timeout_ms

    async def _call(self, name: str, *args: Any) -> Any:
        """One ccxt call; timed and reported to ``on_call`` (metrics) when set."""
        method = getattr(self.exchange, name)
        if self.on_call is None:
            return await method(*args)
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
        table = self.table
        # ccxt's retries are off: a retried POST /order can fill twice (one lost
        # reply is enough). Markets load in one request; currencies and margin
        # data are not fetched at all.
        options = {"fetchCurrencies": False, "fetchMargins": False,
                   "fetchMarkets": {"types": ["spot"]}, **table.options,
                   "maxRetriesOnFailure": 0}
        settings: dict[str, Any] = {
            "apiKey": credentials.api_key, "secret": credentials.secret,
            "enableRateLimit": table.rate_limit_ms > 0, "rateLimit": table.rate_limit_ms,
            "timeout": table.timeout_ms, "options": options,
        }
        if credentials.password is not None:
            settings["password"] = credentials.password
        exchange = getattr(ccxt_async, table.exchange)(settings)
        if "recvWindow" in exchange.options:
            # The venue refuses a request older than this, so after it (plus skew)
            # an order it said it does not have can no longer appear.
            exchange.options["recvWindow"] = table.acceptance_window_ms // 2
        if table.base_url is not None:
            exchange.urls["api"] = rewrite_urls(exchange.urls["api"], table.base_url)
        return exchange

    def status(self) -> dict[str, Any]:
        """What ``execd ctl status`` shows for this venue."""
        return {"state": self.state, "in_flight": self.in_flight,
                "backlog": self._work_send.statistics().current_buffer_used,
                "unresolved": len(self.unresolved)}

    # ------------------------------------------------------------------- the actor

    async def run(self, receive: MemoryObjectReceiveStream[list[Accepted]],
                  send: MemoryObjectSendStream[list[Entry]], pulse: Pulse | None = None) -> None:
        """Start up, then take intents until the router closes, then finish in flight.

        ``pulse`` covers intake; workers wait on the venue, each call bounded by
        ``timeout_ms``, so they are not watched.
        """
        try:
            async with receive, send, anyio.create_task_group() as tg:
                for _ in range(self.table.max_in_flight):
                    tg.start_soon(self._worker, self._work_receive.clone(), send.clone())
                self._work_receive.close()
                # Start-up hands reconciled orders to the workers through its own
                # clone, so the work stream stays open until both it and intake end.
                tg.start_soon(self._start, send.clone(), self._work_send.clone())
                async with self._work_send:
                    async for batch in beating(receive, pulse):
                        await send.send([self._intake(item) for item in batch])
        finally:
            with anyio.CancelScope(shield=True):
                await self.exchange.close()

    # -------------------------------------------------------------------- intake

    def _intake(self, item: Accepted) -> Entry:
        """The order record that holds ``item``'s place, or the outcome instead of it."""
        intent = item.intent
        if not self.ready.is_set():
            return self._instead(item, "REJECTED", reasons.EXECUTION_NOT_AVAILABLE,
                                 f"venue {self.venue} is not ready: {self.state}")
        plan = prepare(item, self.rules.get(intent.symbol), self.table.slippage_bps)
        if not isinstance(plan, OrderPlan):
            return self._instead(item, *plan)
        record = OrderRecord(
            intent_id=item.intent_id, venue=self.venue, symbol=intent.symbol, side=item.side,
            client_order_id=ids.client_order_id(item.intent_id, self.venue,
                                                self.table.client_order_prefix,
                                                self.table.client_order_id_length),
            type=plan.type, amount=plan.amount, requested_quantity=intent.quantity,
            intent=Raw(item.raw), price=plan.price, reference_price=intent.reference_price,
            post_only=plan.post_only, reduce_only=plan.reduce_only, source=item.source,
            wall_time=self.wall.now())
        order = _Order(record, item.time)
        try:
            self._work_send.send_nowait(order)
        except anyio.WouldBlock:
            return self._instead(
                item, "REJECTED", reasons.VENUE_BACKLOG_FULL,
                f"{self.in_flight} orders in flight (max_in_flight={self.table.max_in_flight})"
                f" and {self.table.backlog} waiting (backlog={self.table.backlog})")
        entry = Entry(item.seq, "order", item.time, record)
        self.watch(entry, lambda seq: order.durable.set())
        return entry

    def _instead(self, item: Accepted, status: Any, reason: str, detail: str) -> Entry:
        intent = item.intent
        outcome = ExecutionOutcome(
            execution_id=self._execution_id(item.intent_id), intent_id=item.intent_id,
            status=status, filled_quantity=Decimal(0), logical_time=item.time, plane="live",
            venue=self.venue, symbol=intent.symbol, side=item.side,
            requested_quantity=intent.quantity, reason=reason, detail=detail,
            source=item.source, intent=Raw(item.raw), wall_time=self.wall.now())
        entry = Entry(item.seq, "outcome", item.time, outcome)
        self._settle_when_durable(entry, outcome)
        return entry

    def _settle_when_durable(self, entry: Entry, outcome: ExecutionOutcome) -> None:
        """Once ``outcome`` is durable, release what the sentinel holds pending for it.

        The sentinel held the intent's whole quantity: the outcome's requested one.
        """
        settled = Settled(self.venue, outcome.symbol or "", outcome.side or "buy",
                          outcome.status, outcome.reason,
                          outcome.requested_quantity or Decimal(0), outcome.filled_quantity,
                          outcome.average_price, outcome.logical_time)
        self.watch(entry, lambda seq: self.settle(settled))

    # ------------------------------------------------------------------ start-up

    async def _start(self, send: ObjectSendStream[list[Entry]],
                     work: ObjectSendStream[_Order]) -> None:
        async with send, work:
            if not await self._connect():
                return
            try:
                await self._reconcile(send, work)
            except _InDoubt:
                return
            self.unresolved = []
            self.state = "ready"
            self.log.info("venue.ready", markets=len(self.rules))
            self.ready.set()

    async def _connect(self) -> bool:
        """Load markets and balances, retrying with backoff until it works or the daemon stops."""
        wait = self.table.poll_interval_ms / 1000
        while not self.stopping.is_set():
            try:
                markets = await self._call("load_markets")
                balance = await self._call("fetch_balance")
            except Exception as exc:
                self.state = f"cannot start: {message_of(exc)}"
                self.log.error("venue.start_failed", error=message_of(exc), retry_in_s=wait)
                await self._pause(wait)
                wait = min(wait * 2, _MAX_BACKOFF)
                continue
            self.rules = {symbol: self._rules(market) for symbol, market in markets.items()}
            held = {asset: str(amount) for asset, amount in (balance.get("total") or {}).items()
                    if amount}
            self.log.info("venue.connected", markets=len(self.rules), balances=held,
                          unresolved_orders=len(self.unresolved))
            self.state = "reconciling" if self.unresolved else "ready"
            return True
        return False

    def _rules(self, market: dict[str, Any]) -> MarketRules:
        features = self.exchange.features or {}
        kind = features.get(market.get("type") or "spot") or {}
        if "createOrder" not in kind:  # derivatives are nested one level deeper
            kind = kind.get("linear" if market.get("linear") else "inverse") or {}
        create = kind.get("createOrder") or {}
        post_only = bool((create.get("timeInForce") or {}).get("PO"))
        return rules_from_market(market, tick_precision=self.exchange.precisionMode == TICK_SIZE,
                                 post_only=post_only,
                                 # Spot has no position to reduce; contracts take the flag.
                                 reduce_only=bool(market.get("contract")))

    async def _reconcile(self, send: ObjectSendStream[list[Entry]],
                         work: ObjectSendStream[_Order]) -> None:
        """Resolve every order an earlier run recorded without an outcome.

        Each is looked up by client order id. One the venue does not have is looked
        up again once the acceptance window has passed since this start (the
        earlier run sent nothing later than that), and only then counts as unsent.
        """
        absent: list[tuple[OrderRecord, int]] = []
        for record, time in self.unresolved:
            self.state = f"reconciling {record.client_order_id}"
            found = await self._lookup(record, delay=0.0)
            if found is None:
                absent.append((record, time))
            else:
                await self._hand_over(record, time, work, found)
        if not absent:
            return
        remaining = self._started + self._window - anyio.current_time()
        if remaining > 0:
            self.state = (f"reconciling: {len(absent)} orders not at the venue; asking again "
                          f"after the acceptance window")
            await self._pause(remaining)
            if self.stopping.is_set():
                raise _InDoubt
        for record, time in absent:
            found = await self._lookup(record, delay=0.0)
            if found is not None:
                await self._hand_over(record, time, work, found)
                continue
            # Age on the wall clock: logical time says nothing about how long ago.
            age_ms = (None if record.wall_time is None
                      else (self.wall.now() - record.wall_time) // 1_000_000)
            log = self.log.bind(intent_id=str(record.intent_id),
                                client_order_id=record.client_order_id, age_ms=age_ms)
            if age_ms is None or age_ms > self.table.resend_window_ms:
                log.warning("order.not_sent")
                age = ("its age is unknown (recorded without a wall-clock time)"
                       if age_ms is None else f"it was recorded {age_ms} ms ago "
                       f"> resend_window_ms={self.table.resend_window_ms}")
                await self._finish(send, self._failed(
                    _Order(record, time), reasons.EXECUTION_NOT_SENT,
                    f"the venue does not have it and {age}"))
                continue
            log.info("order.resend_unsent")
            await self._hand_over(record, time, work, None)

    async def _hand_over(self, record: OrderRecord, time: int, work: ObjectSendStream[_Order],
                         found: dict[str, Any] | None) -> None:
        if found is not None:
            self.log.info("order.reconciled", intent_id=str(record.intent_id),
                          client_order_id=record.client_order_id,
                          venue_status=found.get("status"))
        order = _Order(record, time, found)
        order.durable.set()  # recorded by an earlier run
        await work.send(order)

    # ------------------------------------------------------------------- workers

    async def _worker(self, work: ObjectReceiveStream[_Order],
                      send: ObjectSendStream[list[Entry]]) -> None:
        async with work, send:
            async for order in work:
                await order.durable.wait()
                self.in_flight += 1
                try:
                    outcome = await self._execute(order)
                except _InDoubt:
                    self.log.error("order.in_doubt", intent_id=str(order.record.intent_id),
                                   client_order_id=order.record.client_order_id,
                                   note="left for reconciliation at the next start")
                    continue
                finally:
                    self.in_flight -= 1
                await self._finish(send, outcome)

    async def _finish(self, send: ObjectSendStream[list[Entry]],
                      outcome: ExecutionOutcome) -> None:
        entry = Entry(LATE, "outcome", outcome.logical_time, outcome)
        self._settle_when_durable(entry, outcome)
        await send.send([entry])

    async def _execute(self, order: _Order) -> ExecutionOutcome:
        if order.found is None and self.stopping.is_set():
            # Its record is durable and nothing left: a drain never waits on a venue
            # for orders it has not sent yet.
            return self._failed(order, reasons.EXECUTION_NOT_SENT,
                                "not sent: the daemon was stopping")
        state = order.found if order.found is not None else await self._send(order)
        if isinstance(state, ExecutionOutcome):
            return state
        return await self._track(order, state)

    async def _send(self, order: _Order) -> dict[str, Any] | ExecutionOutcome:
        """Send the order; its venue state, or the outcome when it was not placed."""
        record = order.record
        params: dict[str, Any] = {"clientOrderId": record.client_order_id}
        if record.post_only:
            params["postOnly"] = True
        if record.reduce_only:
            params["reduceOnly"] = True
        price = str(record.price) if record.price is not None else None
        log = self.log.bind(intent_id=str(record.intent_id),
                            client_order_id=record.client_order_id)
        message = ""
        for attempt in range(1, self.table.send_attempts + 1):
            sent_at = anyio.current_time()
            try:
                placed: dict[str, Any] = await self._call(
                    "create_order", record.symbol, record.type, record.side,
                    str(record.amount), price, params)
                return placed
            except Exception as exc:
                verdict, message = classify(exc), message_of(exc)
            log.warning("order.send_failed", attempt=attempt, verdict=verdict, error=message)
            if verdict == "rejected":
                return self._failed(order, reasons.EXECUTION_REJECTED, message)
            if verdict == "unreachable":
                return self._failed(order, reasons.EXECUTION_NOT_AVAILABLE, message)
            found = await self._lookup(record, delay=self.table.lookup_delay_ms / 1000)
            if found is None:
                # Not there yet is not never: ask again once the venue can no longer
                # act on the request it did not answer.
                wait = sent_at + self._window - anyio.current_time()
                if wait > 0:
                    found = await self._lookup(record, delay=wait)
                    if found is None and anyio.current_time() < sent_at + self._window:
                        raise _InDoubt  # the wait was cut short by a stop
            if found is not None:
                log.info("order.found_after_error", venue_status=found.get("status"))
                return found
            if verdict == "exists":
                # The venue refused a duplicate id, then could not find the original:
                # its two answers disagree, and sending a third time could double it.
                return self._failed(order, reasons.EXECUTION_REJECTED,
                                    f"{message}; and no order with this client id was found")
        return self._failed(order, reasons.EXECUTION_NOT_SENT,
                            f"{self.table.send_attempts} sends each failed and the venue "
                            f"then had no such order (send_attempts); last: {message}")

    def _failed(self, order: _Order, reason: str, detail: str) -> ExecutionOutcome:
        record = order.record
        return not_executed(record, execution_id=self._execution_id(record.intent_id),
                            time=order.time, reason=reason, detail=detail,
                            wall_time=self.wall.now())

    async def _lookup(self, record: OrderRecord, *, delay: float) -> dict[str, Any] | None:
        """The venue's state of the order with ``record``'s client id; None if it has none.

        Keeps asking (with backoff) while the venue cannot answer; raises _InDoubt
        once the daemon is stopping and it still cannot.
        """
        wait = delay
        failures = 0
        while True:
            if wait:
                await self._pause(wait)
            try:
                found: dict[str, Any] = await self._call(
                    "fetch_order", None, record.symbol, {"clientOrderId": record.client_order_id})
                return found
            except errors.OrderNotFound:
                return None
            except Exception as exc:
                failures += 1
                self._call_failed("order.lookup_failed", record, exc, failures)
                wait = min(max(wait * 2, self.table.poll_interval_ms / 1000), _MAX_BACKOFF)

    async def _track(self, placed: _Order, order: dict[str, Any]) -> ExecutionOutcome:
        """Follow the order until it is final; cancel it after order_timeout_ms or at stop."""
        record = placed.record
        deadline = anyio.current_time() + self.table.order_timeout_ms / 1000
        poll = self.table.poll_interval_ms / 1000
        cancelled = False
        failures = polls_after_cancel = 0
        order_id = order.get("id")
        while not is_final(order):
            try:
                if cancelled:
                    # Cancelled, not yet final: poll at the normal pace, and while
                    # stopping only a few times before leaving it to reconciliation.
                    polls_after_cancel += 1
                    if self.stopping.is_set() and polls_after_cancel > _TRIES_WHILE_STOPPING:
                        raise _InDoubt
                    await anyio.sleep(poll)
                elif self.stopping.is_set() or anyio.current_time() >= deadline:
                    # OrderNotFound: it ended on its own meanwhile; read its final state.
                    with contextlib.suppress(errors.OrderNotFound):
                        order = await self._call("cancel_order", order_id, record.symbol)
                    cancelled = True
                    if is_final(order):
                        break
                else:
                    await self._pause(poll)
                order = await self._call("fetch_order", order_id, record.symbol)
            except _InDoubt:
                raise
            except Exception as exc:
                failures += 1
                self._call_failed("order.poll_failed", record, exc, failures)
                await self._pause(min(poll * failures, _MAX_BACKOFF))
        return outcome_of_order(record, order, execution_id=self._execution_id(record.intent_id),
                                time=placed.time, cancelled_by_us=cancelled,
                                wall_time=self.wall.now())

    def _call_failed(self, event: str, record: OrderRecord, exc: Exception,
                     failures: int) -> None:
        """Log a failed read of an order; once stopping, give up after a few (_InDoubt)."""
        self.log.warning(event, intent_id=str(record.intent_id),
                         client_order_id=record.client_order_id, error=message_of(exc),
                         failures=failures)
        if self.stopping.is_set() and failures >= _TRIES_WHILE_STOPPING:
            raise _InDoubt from exc

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the daemon starts stopping meanwhile."""
        with anyio.move_on_after(seconds):
            await self.stopping.wait()
