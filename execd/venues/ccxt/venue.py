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

Seed 000: execution never retries on its own, and every submission attempt is
auditable. ccxt's own retries are off. Each send gets an ``order_attempt`` record
(the venue's answer, and what a lookup by client order id found when the answer
left the order's fate open: timeout, dropped connection, 5xx, rate limit, any
OperationFailed). An order the venue never received is FAILED EXECUTION_NOT_SENT,
unless ``send_attempts`` (default 1) explicitly allows another send, which is
made only once the record of the one before is durable (``venues.attempts``).

On a stop, orders already sent are followed to their end, but for at most
``drain_timeout_ms``: what is still being sent or followed then is left in doubt
(``order.in_doubt``) for the next start to reconcile.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Callable, Iterator
from contextvars import ContextVar
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

from execd.config.schema import CcxtConfig
from execd.model import ids, reasons
from execd.model.clock import Clock
from execd.model.messages import (
    LATE,
    Accepted,
    CancelRecord,
    Entry,
    ExecutionOutcome,
    Fee,
    LookupResult,
    OrderRecord,
    Plane,
    SendAttemptRecord,
    Settled,
)
from execd.model.once_durable import Call, Wake
from execd.service import logs
from execd.service.liveness import Pulse, beating
from execd.venues.ccxt import attempts, exchanges
from execd.venues.ccxt.credentials import Credentials
from execd.venues.ccxt.order_stream import OrderStream, Waker, rewrite_urls
from execd.venues.ccxt.prepare import MarketRules, OrderPlan, prepare, rules_from_market
from execd.venues.ccxt.results import (
    fees_of_trades,
    fees_so_far,
    filled_of,
    held_change,
    is_final,
    not_executed,
    outcome_of_order,
    own_fees,
)

Verdict = exchanges.Verdict
# (venue, ccxt method, seconds, "ok" or the exception class): the metrics hook.
CallHook = Callable[[str, str, float, str], None]

# The longest pause between lookups of an order whose fate is unknown.
_MAX_BACKOFF = 30.0
# Calls that may still fail once the daemon is stopping, before an order is left
# for the next start-up to reconcile.
_TRIES_WHILE_STOPPING = 3
_QUERY = re.compile(r"\?\S*")
# The HTTP status and body of the last reply ccxt read in this task (None: none yet
# in the current call): what a failed call's venue said, whatever ccxt made of it.
_LAST_REPLY: ContextVar[tuple[int | None, Any] | None] = ContextVar("execd_last_reply",
                                                                   default=None)


class _InDoubt(Exception):
    """The daemon is stopping and the venue could not say what became of an order."""


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


class _Order:
    """One order on its way through a worker; ``time`` is its intent's logical time."""

    __slots__ = ("attempt", "durable", "found", "held", "last", "record", "time")

    def __init__(self, record: OrderRecord, time: int, found: dict[str, Any] | None = None,
                 *, attempt: int = 1, last: SendAttemptRecord | None = None) -> None:
        self.record = record
        self.time = time
        self.durable = anyio.Event()
        # The venue's state of the order, when start-up found it already there.
        self.found = found
        # The number of its next send, and the record of its last one.
        self.attempt = attempt
        self.last = last
        # Records that go with the outcome, in its commit (the send of an order the
        # venue filled at once: nothing waits on that record alone).
        self.held: list[Entry] = []


class CcxtVenue:
    """One venue served by a ccxt exchange class."""

    plane: Plane = "live"

    def __init__(self, venue: str, table: CcxtConfig, credentials: Credentials, wall: Clock,
                 *, settle: Callable[[Settled], None], stopping: anyio.Event,
                 unresolved: list[tuple[OrderRecord, int]] | None = None,
                 attempts: dict[str, SendAttemptRecord] | None = None,
                 on_call: CallHook | None = None) -> None:
        self.venue = venue
        self.on_call = on_call
        self.table = table
        # The wall clock, for the wall_time of live records and the age of orders.
        # Logical time is never read here: every record carries its intent's.
        self.wall = wall
        self.settle = settle
        self.stopping = stopping
        self.unresolved = list(unresolved or ())
        # client order id -> the last send record of each unresolved order.
        self.last_sends = dict(attempts or {})
        # Set once a stop has waited drain_timeout_ms: no more calls to the venue.
        self.cut = anyio.Event()
        self._scopes: dict[anyio.CancelScope, OrderRecord | None] = {}
        self.ready = anyio.Event()
        self.state = "starting"
        # Every order an earlier run sent, it sent before this moment.
        self._started = anyio.current_time()
        self._window = table.acceptance_window_ms / 1000
        self.rules: dict[str, MarketRules] = {}
        self.in_flight = 0
        self.log = logs.get("venue", venue=venue)
        self.spec = exchanges.exchange(table.exchange)
        self._execution_id = ids.ExecutionIds(venue, "live")
        self.exchange = self._exchange(credentials)
        # Pushed order updates (where the exchange offers them) wake the trackers.
        self.stream = OrderStream(venue, self.exchange, table)
        self._work_send, self._work_receive = anyio.create_memory_object_stream[_Order](
            table.backlog)

    def reconfigure(self, table: CcxtConfig) -> None:
        """A reload's settings (only those that pace or bound calls: see execd.app.reload).

        Each is read when next used, so orders already in flight follow the new
        values from their next step on.
        """
        self.table = table
        self.exchange.timeout = table.timeout_ms

    async def _call(self, name: str, *args: Any) -> Any:
        """One ccxt call; timed and reported to ``on_call`` (metrics) when set."""
        method = getattr(self.exchange, name)
        _LAST_REPLY.set(None)
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

    def status(self) -> dict[str, Any]:
        """What ``execd ctl status`` shows for this venue."""
        return {"state": self.state, "in_flight": self.in_flight,
                "backlog": self._work_send.statistics().current_buffer_used,
                "unresolved": len(self.unresolved), "stream": self.stream.state}

    # ------------------------------------------------------------------- the actor

    async def run(self, receive: MemoryObjectReceiveStream[list[Accepted]],
                  send: MemoryObjectSendStream[list[Entry]], pulse: Pulse | None = None) -> None:
        """Start up, then take intents until the router closes, then finish in flight.

        ``pulse`` covers intake; workers wait on the venue, each call bounded by
        ``timeout_ms`` and, once stopping, all of them by ``drain_timeout_ms``, so
        they are not watched.
        """
        try:
            async with receive, send, anyio.create_task_group() as outer:
                outer.start_soon(self._bound_drain)
                # Ends with the venue: cancelled with ``outer`` once the workers are done.
                outer.start_soon(self.stream.run, self.ready)
                async with anyio.create_task_group() as tg:
                    for _ in range(self.table.max_in_flight):
                        tg.start_soon(self._worker, self._work_receive.clone(), send.clone())
                    self._work_receive.close()
                    # Start-up hands reconciled orders to the workers through its own
                    # clone, so the work stream stays open until both it and intake end.
                    tg.start_soon(self._start, send.clone(), self._work_send.clone())
                    async with self._work_send:
                        async for batch in beating(receive, pulse):
                            await send.send([self._intake(item) for item in batch])
                outer.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.exchange.close()

    async def _bound_drain(self) -> None:
        """Once stopping, give the venue drain_timeout_ms, then cut every call short.

        The unit's TimeoutStopSec must cover this bound, or the manager's SIGKILL
        comes first. What is cut is left in doubt: its order record stays without an
        outcome, and the next start reconciles it with the venue.
        """
        await self.stopping.wait()
        await anyio.sleep(self.table.drain_timeout_ms / 1000)
        self.cut.set()
        for scope in list(self._scopes):
            scope.cancel()

    @contextlib.contextmanager
    def _cuttable(self, record: OrderRecord | None) -> Iterator[anyio.CancelScope]:
        """A scope for calls to the venue that the drain bound cancels (at once if passed)."""
        with anyio.CancelScope() as scope:
            self._scopes[scope] = record
            if self.cut.is_set():
                scope.cancel()
            try:
                yield scope
            finally:
                del self._scopes[scope]

    def _in_doubt(self, record: OrderRecord, why: str) -> None:
        self.log.error("order.in_doubt", intent_id=str(record.intent_id),
                       client_order_id=record.client_order_id, why=why,
                       note="left for reconciliation at the next start")

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
        entry.then = Wake(order.durable)
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
        The position moves by what the account now holds (fees in the base asset
        taken off), which is what a later exit can sell.
        """
        symbol, side = outcome.symbol or "", outcome.side or "buy"
        settled = Settled(self.venue, symbol, side, outcome.status, outcome.reason,
                          outcome.requested_quantity or Decimal(0),
                          held_change(symbol, side, outcome.filled_quantity, outcome.fees),
                          outcome.average_price, outcome.logical_time)
        entry.then = Call(lambda seq: self.settle(settled))

    # ------------------------------------------------------------------ start-up

    async def _start(self, send: ObjectSendStream[list[Entry]],
                     work: ObjectSendStream[_Order]) -> None:
        async with send, work:
            with self._cuttable(None) as scope:
                if not await self._connect():
                    return
                try:
                    await self._reconcile(send, work)
                except _InDoubt:
                    return
            if scope.cancelled_caught:
                self.log.error("venue.start_cut", state=self.state,
                               drain_timeout_ms=self.table.drain_timeout_ms,
                               note="unresolved orders are reconciled at the next start")
                return
            self.unresolved = []
            self.last_sends = {}
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
        What follows is :func:`attempts.at_start`'s decision; a send the ledger
        does not show yet is recorded, durably, before anything else is done.
        """
        absent: list[tuple[OrderRecord, int]] = []
        for record, time in self.unresolved:
            self.state = f"reconciling {record.client_order_id}"
            found = await self._lookup(record, delay=0.0)
            if found is None:
                absent.append((record, time))
            else:
                await self._resolve(record, time, found, send, work)
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
            await self._resolve(record, time, await self._lookup(record, delay=0.0), send, work)

    async def _resolve(self, record: OrderRecord, time: int, found: dict[str, Any] | None,
                       send: ObjectSendStream[list[Entry]],
                       work: ObjectSendStream[_Order]) -> None:
        """Carry out start-up's decision for one unresolved order."""
        last = self.last_sends.get(record.client_order_id)
        # Age on the wall clock: logical time says nothing about how long ago.
        age_ms = (None if record.wall_time is None
                  else (self.wall.now() - record.wall_time) // 1_000_000)
        venue_id = found.get("id") if found is not None else None
        settle, step = attempts.at_start(
            record, last, found is not None, self.wall.now(),
            send_attempts=self.table.send_attempts, resend_window_ms=self.table.resend_window_ms,
            age_ms=age_ms, venue_order_id=str(venue_id) if venue_id else None,
            venue_status=found.get("status") if found is not None else None)
        order = _Order(record, time, found, last=settle or last)
        log = self.log.bind(intent_id=str(record.intent_id),
                            client_order_id=record.client_order_id, age_ms=age_ms)
        if step.action == "fail":
            log.warning("order.not_sent" if step.reason == reasons.EXECUTION_NOT_SENT
                        else "order.reconciled", reason=step.reason, detail=step.detail)
            outcome = self._failed(order, step.reason or "", step.detail or "")
            await self._finish(send, outcome, *([self._attempt_entry(order, settle)]
                                                if settle is not None else []))
            return
        if settle is not None:
            await self._write_attempt(send, order, settle, durable=step.action == "resend")
        if step.action == "resend":
            order.attempt = settle.attempt + 1 if settle is not None else 1
            log.info("order.resend_unsent", attempt=order.attempt)
        else:
            log.info("order.reconciled", venue_status=(found or {}).get("status"))
        order.durable.set()  # recorded by an earlier run
        await work.send(order)

    # ------------------------------------------------------------------- workers

    async def _worker(self, work: ObjectReceiveStream[_Order],
                      send: ObjectSendStream[list[Entry]]) -> None:
        async with work, send:
            async for order in work:
                await order.durable.wait()
                self.in_flight += 1
                outcome: ExecutionOutcome | None = None
                try:
                    with self._cuttable(order.record) as scope:
                        outcome = await self._execute(order, send)
                except _InDoubt:
                    self._in_doubt(order.record, "the venue could not say what became of it "
                                   "during the stop")
                finally:
                    self.in_flight -= 1
                if scope.cancelled_caught:
                    self._in_doubt(order.record, f"still being sent or followed after "
                                   f"drain_timeout_ms={self.table.drain_timeout_ms}")
                elif outcome is not None:
                    await self._finish(send, outcome, *order.held)

    async def _finish(self, send: ObjectSendStream[list[Entry]], outcome: ExecutionOutcome,
                      *before: Entry) -> None:
        """Write ``outcome`` (after ``before``, in the same commit) and settle it once durable."""
        entry = Entry(LATE, "outcome", outcome.logical_time, outcome)
        self._settle_when_durable(entry, outcome)
        await send.send([*before, entry])

    def _attempt_entry(self, order: _Order, attempt: SendAttemptRecord) -> Entry:
        order.last = attempt
        return Entry(LATE, "order_attempt", order.time, attempt)

    async def _write_attempt(self, send: ObjectSendStream[list[Entry]], order: _Order,
                             attempt: SendAttemptRecord, *, durable: bool) -> None:
        """Record one send; with ``durable``, return only once the record is on disk."""
        entry = self._attempt_entry(order, attempt)
        done = anyio.Event()
        if durable:
            entry.then = Wake(done)
        await send.send([entry])
        if durable:
            await done.wait()

    async def _execute(self, order: _Order,
                       send: ObjectSendStream[list[Entry]]) -> ExecutionOutcome | None:
        """The order's outcome; None when it was written already (with its send record)."""
        if order.found is None and self.stopping.is_set():
            # Its record is durable and nothing left: a drain never waits on a venue
            # for orders it has not sent yet.
            return self._failed(order, reasons.EXECUTION_NOT_SENT,
                                "not sent: the daemon was stopping")
        state = order.found if order.found is not None else await self._send(order, send)
        if state is None:
            return None
        return await self._track(order, state, send)

    async def _send(self, order: _Order,
                    send: ObjectSendStream[list[Entry]]) -> dict[str, Any] | None:
        """Send the order; its venue state, or None once a final outcome is written.

        Each send is recorded. A send that leaves the order's fate open is followed
        by lookups; another send is made only if ``attempts.after_send`` says so
        (never by default), and only once this one's record is durable.
        """
        record = order.record
        params: dict[str, Any] = {self.spec.client_id_param: record.client_order_id}
        if record.post_only:
            params["postOnly"] = True
        if record.reduce_only:
            params["reduceOnly"] = True
        price = str(record.price) if record.price is not None else None
        log = self.log.bind(intent_id=str(record.intent_id),
                            client_order_id=record.client_order_id)
        while True:
            attempt = order.attempt
            sent_at = anyio.current_time()
            try:
                placed: dict[str, Any] = await self._call(
                    "create_order", record.symbol, record.type, record.side,
                    str(record.amount), price, params)
            except Exception as exc:
                answer: Verdict = classify(exc, self.spec, venue_reply(self.spec))
                message = message_of(exc)
            else:
                unreadable = exchanges.readable_order(placed, record.client_order_id)
                if unreadable is None:
                    venue_id = placed.get("id")
                    sent = attempts.attempt_record(
                        record, attempt, "placed", self.wall.now(),
                        venue_order_id=str(venue_id), venue_status=placed.get("status"))
                    if is_final(placed):
                        order.held.append(self._attempt_entry(order, sent))
                    else:
                        await self._write_attempt(send, order, sent, durable=False)
                    return placed
                # A proxy's page, or an envelope ccxt took for an order: the venue may
                # have the order, so its fate is unknown and a lookup settles it.
                answer, message = "unknown", f"{unreadable}: {_snippet()}"
            log.warning("order.send_failed", attempt=attempt, verdict=answer, error=message)
            found: dict[str, Any] | None = None
            lookup: LookupResult | None = None
            if answer in ("unknown", "exists"):
                try:
                    found = await self._settle_lookup(record, sent_at)
                except _InDoubt:
                    await self._write_attempt(send, order, attempts.attempt_record(
                        record, attempt, answer, self.wall.now(), message=message,
                        lookup="pending"), durable=False)
                    raise
                lookup = "found" if found is not None else "absent"
            step = attempts.after_send(attempt, answer, message, lookup,
                                       self.table.send_attempts)
            venue_id = found.get("id") if found is not None else None
            sent = attempts.attempt_record(
                record, attempt, answer, self.wall.now(), message=message, lookup=lookup,
                venue_order_id=str(venue_id) if venue_id else None,
                venue_status=found.get("status") if found is not None else None,
                resend=step.action == "resend")
            if step.action == "track":
                assert found is not None
                log.info("order.found_after_error", venue_status=found.get("status"))
                await self._write_attempt(send, order, sent, durable=False)
                return found
            if step.action == "fail":
                outcome = self._failed(order, step.reason or "", step.detail or "")
                await self._finish(send, outcome, self._attempt_entry(order, sent))
                return None
            await self._write_attempt(send, order, sent, durable=True)
            order.attempt = attempt + 1

    async def _settle_lookup(self, record: OrderRecord, sent_at: float) -> dict[str, Any] | None:
        """After an answer that left the order's fate open: the venue's state of it, or None.

        "No such order" counts only once the acceptance window since the send has
        passed, since the venue may act late on a request it did not answer. Raises
        _InDoubt when a stop cuts the wait short.
        """
        found = await self._lookup(record, delay=self.table.lookup_delay_ms / 1000)
        if found is None:
            wait = sent_at + self._window - anyio.current_time()
            if wait > 0:
                found = await self._lookup(record, delay=wait)
                if found is None and anyio.current_time() < sent_at + self._window:
                    raise _InDoubt  # the wait was cut short by a stop
        return found

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
                return await self._find(record)
            except Exception as exc:
                failures += 1
                self._call_failed("order.lookup_failed", record, exc, failures)
                wait = min(max(wait * 2, self.table.poll_interval_ms / 1000), _MAX_BACKOFF)

    async def _find(self, record: OrderRecord) -> dict[str, Any] | None:
        """One lookup by client order id, through each of the venue's lookup calls in turn.

        None when every call says "no such order": ccxt's OrderNotFound, or the venue's
        own not-found code whatever class ccxt raised for it.
        """
        for call in self.spec.lookup:
            params = {call.param: record.client_order_id, **call.extra}
            try:
                if call.kind == "list":
                    listed: list[Any] = await self._call(call.method, record.symbol, None,
                                                         None, params)
                    if not listed:
                        if not _read_json():
                            # ccxt reads a 200 that is not the venue's JSON (a proxy's
                            # page) as an empty list: that is no answer, not "no order".
                            raise errors.ExchangeError(
                                f"{self.venue} lookup: not a list of orders: {_snippet()}")
                        continue
                    if len(listed) > 1:
                        raise errors.ExchangeError(
                            f"{self.venue} lookup: {len(listed)} orders with client order "
                            f"id {record.client_order_id}")
                    found: Any = listed[0]
                else:
                    found = await self._call(call.method, None, record.symbol, params)
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

    async def _write_cancel(self, send: ObjectSendStream[list[Entry]], placed: _Order,
                            order_id: Any, why: Literal["order_timeout_ms", "stopping"],
                            answer: str) -> None:
        """Record a cancel request execd made on its own, with the venue's answer."""
        record = placed.record
        await send.send([Entry(LATE, "order_cancel", placed.time, CancelRecord(
            intent_id=record.intent_id, venue=record.venue,
            client_order_id=record.client_order_id, why=why, answer=answer,
            wall_time=self.wall.now(), venue_order_id=str(order_id) if order_id else None))])

    async def _track(self, placed: _Order, order: dict[str, Any],
                     send: ObjectSendStream[list[Entry]]) -> ExecutionOutcome:
        """Follow the order until it is final; cancel it after order_timeout_ms or at stop."""
        with self.stream.follow(placed.record.client_order_id, order.get("id")) as pushed:
            return await self._follow(placed, order, send, pushed)

    async def _follow(self, placed: _Order, order: dict[str, Any],
                      send: ObjectSendStream[list[Entry]], pushed: Waker) -> ExecutionOutcome:
        """_track's loop: each wait ends early when the order stream pushes an update."""
        record = placed.record
        deadline = anyio.current_time() + self.table.order_timeout_ms / 1000
        poll = self.table.poll_interval_ms / 1000
        cancelled = False
        failures = polls_after_cancel = cancel_failures = 0
        # A refused cancel is tried again only after a backoff, with reads between:
        # the venue may refuse it because the order has just ended.
        next_cancel = 0.0
        # A stop cancels at once, whatever backoff a refused cancel left.
        stop_cancel_sent = False
        order_id = order.get("id")
        self.stream.known(record.client_order_id, order)
        while not is_final(order):
            try:
                if cancelled:
                    # Cancelled, not yet final: poll at the normal pace, and while
                    # stopping only a few times before leaving it to reconciliation.
                    polls_after_cancel += 1
                    if self.stopping.is_set() and polls_after_cancel > _TRIES_WHILE_STOPPING:
                        raise _InDoubt
                    await pushed.wait(poll)
                elif ((self.stopping.is_set() and not stop_cancel_sent)
                      or ((self.stopping.is_set() or anyio.current_time() >= deadline)
                          and anyio.current_time() >= next_cancel)):
                    why: Literal["order_timeout_ms", "stopping"] = (
                        "stopping" if self.stopping.is_set() else "order_timeout_ms")
                    stop_cancel_sent = stop_cancel_sent or why == "stopping"
                    try:
                        order = await self._call("cancel_order", order_id, record.symbol)
                        # Some venues (OKX, Bybit) answer a cancel without the order's state:
                        # the request was taken, and the polls below read the state.
                        answer = str(order.get("status") or "accepted")
                    except errors.OrderNotFound:
                        # It ended on its own meanwhile; read its final state below.
                        answer = "not found"
                    except Exception as exc:
                        await self._write_cancel(send, placed, order_id, why, message_of(exc))
                        cancel_failures += 1
                        self._call_failed("order.cancel_failed", record, exc, cancel_failures)
                        next_cancel = anyio.current_time() + min(poll * 2 ** cancel_failures,
                                                                 _MAX_BACKOFF)
                    else:
                        await self._write_cancel(send, placed, order_id, why, answer)
                        cancelled = True
                        if is_final(order):
                            break
                else:
                    # Until the next poll, or an update pushed for it (a wake-up: the
                    # outcome is still read by REST, just below), or the next cancel.
                    # Once stopping, the stop is no reason to wake: it has happened.
                    due = max(deadline, next_cancel) - anyio.current_time()
                    await pushed.wait(min(poll, max(due, 0)),
                                      None if self.stopping.is_set() else self.stopping)
                order = await self._read(order_id, record)
                self.stream.known(record.client_order_id, order)
            except _InDoubt:
                raise
            except Exception as exc:
                failures += 1
                self._call_failed("order.poll_failed", record, exc, failures)
                await self._pause(min(poll * failures, _MAX_BACKOFF))
        fees, complete = await self._fees(record, order)
        return outcome_of_order(record, order, execution_id=self._execution_id(record.intent_id),
                                time=placed.time, cancelled_by_us=cancelled,
                                wall_time=self.wall.now(), fees=fees, fees_complete=complete)

    async def _fees(self, record: OrderRecord, order: dict[str, Any]
                    ) -> tuple[tuple[Fee, ...], bool]:
        """The fees of a final order, and whether they are all of them.

        The order's own structure is enough when its fees cover all it filled (a
        FULL create reply lists its fills): no request. Otherwise its trades are
        read by venue order id, one request, and again after ``fee_read_pause_ms``
        while they add up to less than the fill (the venue's trade list can lag the
        order), ``fee_reads`` times at most and only once while stopping. What is
        still short then is recorded with the fees known so far, marked incomplete.
        """
        filled = filled_of(order)
        known = own_fees(order)
        if known.covered >= filled:
            return known.fees, True
        order_id = order.get("id")
        readable = bool(order_id) and bool(self.exchange.has.get("fetchOrderTrades"))
        why = "fee_reads=0" if readable else "the venue cannot list this order's trades"
        reads = 0
        while readable and reads < self.table.fee_reads:
            if reads:
                await self._pause(self.table.fee_read_pause_ms / 1000)
            reads += 1
            try:
                trades = await self._call("fetch_order_trades", order_id, record.symbol)
            except Exception as exc:
                why = message_of(exc)
            else:
                read = fees_of_trades(trades)
                if read.covered >= filled:
                    return read.fees, True
                known = fees_so_far(known, read)
                why = f"the trades add up to {read.covered} of filled={filled}"
            if self.stopping.is_set():
                break
        self.log.warning("order.fees_incomplete", intent_id=str(record.intent_id),
                         client_order_id=record.client_order_id, reads=reads, why=why,
                         fees=[[str(f.cost), f.currency] for f in known.fees],
                         covered=str(known.covered), filled=str(filled))
        return known.fees, False

    async def _read(self, order_id: Any, record: OrderRecord) -> dict[str, Any]:
        """The venue's state of an order being followed, read by its venue id.

        A venue's read by id may reach recent orders only (Bybit: open ones and the
        500 latest ended); one it no longer finds is looked up by client order id,
        whose calls reach the history. Not found by either: OrderNotFound.
        """
        try:
            order: dict[str, Any] = await self._call("fetch_order", order_id, record.symbol)
        except errors.OrderNotFound:
            found = await self._find(record)
            if found is None:
                raise
            self.log.info("order.read_by_client_id", intent_id=str(record.intent_id),
                          client_order_id=record.client_order_id, venue_order_id=order_id)
            return found
        return order

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
