"""A real exchange through ccxt (``adapter = "ccxt"``): the live plane's adapter, the shell.

Three parts, all in this actor:

* **Start-up** (:mod:`.startup`): load the markets (one request), read the
  balances (one request, which also proves the credentials), then reconcile every
  order an earlier run recorded without an outcome: look each up by client order
  id, track the ones the venue has, send the ones it never got (within
  ``resend_window_ms``). Only then is the venue ready, and the daemon reads no
  intent before every venue is.
* **Intake** (synchronous, never waits on the venue): each accepted intent is
  prepared (rounding, floor, order type) into an ``order`` record that holds the
  intent's place in the ledger, or into the outcome that replaces it. With
  ``max_in_flight`` orders in flight and ``backlog`` waiting, the intent is refused
  (VENUE_BACKLOG_FULL) instead of waiting: a stalled venue stalls nothing else.
* **Workers** (``max_in_flight``): wait until the order record is durable, then
  carry out its :class:`~execd.venues.ccxt.order.Order`'s actions (send, look up,
  read, cancel, wait, write) until it is done, and write its outcome.

Every decision is the order's (:mod:`.order`, sans I/O): this module only calls
the venue (:mod:`.calls`), sleeps until a time (or until the order stream or a stop
wakes it), hands records to the ledger and feeds the results back. Windows, waits
and deadlines run on ``mono``, records carry ``wall`` (see :mod:`.order` for why).

Execution never retries on its own (docs/CONTRACT.md, Never twice to a venue), and
every submission attempt is auditable (docs/ARCHITECTURE.md, "Live sends, times and
the drain"). On a stop,
orders already sent are followed to their end, but for at most
``drain_timeout_ms``: what is still being sent or followed then is left in doubt
(``order.in_doubt``) for the next start to reconcile.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from msgspec import Raw

from execd.config.schema import CcxtConfig
from execd.model import ids, reasons
from execd.model.clock import Clock, monotonic_ns
from execd.model.messages import (
    LATE,
    Accepted,
    Entry,
    ExecutionOutcome,
    HoldingsIn,
    OrderRecord,
    Plane,
    SendAttemptRecord,
    Settled,
)
from execd.model.once_durable import Call
from execd.policy.orders import skipped_plan
from execd.service import logs
from execd.service.liveness import Pulse, beating
from execd.venues.ccxt import actions as act
from execd.venues.ccxt import holdings_poll, markets_refresh
from execd.venues.ccxt.backlog import Waiting
from execd.venues.ccxt.calls import CallHook, Calls, classify, message_of
from execd.venues.ccxt.credentials import Credentials
from execd.venues.ccxt.driver import Driver
from execd.venues.ccxt.order import Order
from execd.venues.ccxt.order_stream import OrderStream
from execd.venues.ccxt.prepare import MarketRules, OrderPlan, prepare, round_down
from execd.venues.ccxt.results import held_change
from execd.venues.ccxt.startup import StartUp
from execd.venues.ccxt.tradability import Tradability

# classify and message_of lived here before the calls had their own module.
__all__ = ["CallHook", "CcxtVenue", "classify", "message_of"]

# An order on its way to a worker, and the event set once its record is durable.
Job = tuple[Order, anyio.Event]


class CcxtVenue:
    """One venue served by a ccxt exchange class."""

    plane: Plane = "live"

    def __init__(self, venue: str, table: CcxtConfig, credentials: Credentials, wall: Clock,
                 *, settle: Callable[[Settled | HoldingsIn], None], stopping: anyio.Event,
                 unresolved: list[tuple[OrderRecord, int]] | None = None,
                 attempts: dict[str, SendAttemptRecord] | None = None,
                 on_call: CallHook | None = None) -> None:
        self.venue = venue
        self.table = table
        # Two clocks, one job each: ``wall`` for the wall_time of live records and the
        # age of orders an earlier run left; ``mono`` (never steps) for every window,
        # wait and deadline (docs/ARCHITECTURE.md, Live orders, sans-I/O). Logical
        # time is never read here: every record carries its intent's.
        self.wall = wall
        self.mono = monotonic_ns
        self.settle = settle
        self.stopping = stopping
        # Set once a stop has waited drain_timeout_ms: no more calls to the venue.
        self.cut = anyio.Event()
        self._scopes: set[anyio.CancelScope] = set()
        self.ready = anyio.Event()
        self.state = "starting"
        self.rules: dict[str, MarketRules] = {}
        # What the periodic reads found (markets_refresh.py); the latest logical time
        # this venue saw, for the records those reads write.
        self.tradability = Tradability()
        self.time = 0
        # Orders this run started here (holdings_poll.py: a read is quiet while it holds).
        self.orders_started = 0
        self.in_flight = 0
        # The orders in a worker's hands, by intent id: a schedule's end cancels its child;
        # and the children whose cancel came before a worker had them (cancel()).
        self.active: dict[uuid.UUID, Order] = {}
        self.cancelled: set[uuid.UUID] = set()
        self.log = logs.get("venue", venue=venue)
        self.execution_id = ids.ExecutionIds(venue, "live")
        self.calls = Calls(venue, table, credentials, on_call)
        self.exchange = self.calls.exchange
        self.trades_readable = bool(self.exchange.has.get("fetchOrderTrades"))
        # Every order an earlier run sent, it sent before this moment.
        self.startup = StartUp(self, list(unresolved or ()), dict(attempts or {}),
                               started=self.mono())
        # Pushed order updates (where the exchange offers them) wake the workers.
        self.stream = OrderStream(venue, self.exchange, table)
        self.driver = Driver(self)
        # Tickets (each names nothing): the orders wait in ``waiting``, best first.
        self._work_send, self._work_receive = anyio.create_memory_object_stream[None](
            table.backlog)
        self.waiting: Waiting[Job] = Waiting()

    def reconfigure(self, table: CcxtConfig) -> None:
        """A reload's settings (only those that pace or bound calls: see execd.app.reload).

        Each is read when next used, so orders already in flight follow the new
        values from their next step on (each order is handed the table in force).
        """
        self.table = self.calls.table = table
        self.exchange.timeout = table.timeout_ms

    def status(self) -> dict[str, Any]:
        """What ``execd ctl status`` shows for this venue."""
        return {"state": self.state, "in_flight": self.in_flight,
                "backlog": self._work_send.statistics().current_buffer_used,
                "unresolved": len(self.startup.unresolved), "stream": self.stream.state,
                "venue_status": self.tradability.status,
                "inactive": len(self.tradability.inactive)}

    def cancel(self, intent_id: uuid.UUID) -> bool:
        """Cancel the order of ``intent_id`` if it is being sent or followed (a
        schedule's child whose schedule ended): its lifecycle cancels it at its next
        step, woken now. False when it is not (yet, or any more) in a worker's hands."""
        order = self.active.get(intent_id)
        if order is None:
            # Not here yet (in a queue, the backlog, waiting for its record to be durable)
            # or being reconciled: its intake or its worker sees this and sends nothing.
            self.cancelled.add(intent_id)
            return False
        order.cancel_asked = True
        self.stream.wake(order.record.client_order_id)
        return True

    def unusable(self, symbol: str) -> str | None:
        """Why a route passes this venue over for ``symbol`` now (README, "Routes"): not
        ready, its backlog full, or the symbol not listed; None when it can take one."""
        if not self.ready.is_set():
            return f"not ready: {self.state}"
        waiting = self._work_send.statistics().current_buffer_used
        # Full as intake finds it: no worker free to take one and no room to wait (with
        # backlog = 0, a free worker takes it at once).
        if waiting >= self.table.backlog and self.in_flight >= self.table.max_in_flight:
            return (f"backlog full: {waiting} waiting (backlog={self.table.backlog}), "
                    f"{self.in_flight} in flight")
        rules = self.rules.get(symbol)
        if rules is None or not rules.active:
            return f"symbol {symbol} is not listed (or not active)"
        why = self.tradability.why_not(symbol)
        return None if why is None else f"{why[0]}: {why[1]}"

    def order(self, record: OrderRecord, time: int) -> Order:
        """A new order's lifecycle (``time``: its intent's logical time)."""
        return Order(record, time, self.table, execution_id=self.execution_id(record.intent_id),
                     trades_readable=self.trades_readable)

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
                outer.start_soon(markets_refresh.run, self, send.clone())
                outer.start_soon(holdings_poll.run, self, send.clone())
                async with anyio.create_task_group() as tg:
                    for _ in range(self.table.max_in_flight):
                        tg.start_soon(self._worker, self._work_receive.clone(), send.clone())
                    self._work_receive.close()
                    # Start-up hands reconciled orders to the workers through its own
                    # clone, so the work stream stays open until both it and intake end.
                    tg.start_soon(self.startup.run, send.clone(), self._work_send.clone())
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
    def cuttable(self) -> Iterator[anyio.CancelScope]:
        """A scope for calls to the venue that the drain bound cancels (at once if passed)."""
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            if self.cut.is_set():
                scope.cancel()
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def _in_doubt(self, record: OrderRecord, why: str) -> None:
        self.log.error("order.in_doubt", intent_id=str(record.intent_id),
                       client_order_id=record.client_order_id, why=why,
                       note="left for reconciliation at the next start")

    # -------------------------------------------------------------------- intake

    def _intake(self, item: Accepted) -> Entry:
        """The order record that holds ``item``'s place, or the outcome instead of it."""
        intent = item.intent
        if item.intent_id in self.cancelled:
            self.cancelled.discard(item.intent_id)
            return self._instead(item, "FAILED", reasons.EXECUTION_NOT_SENT,
                                 "not sent: its schedule ended before it was sent")
        if not self.ready.is_set():
            return self._instead(item, "REJECTED", reasons.EXECUTION_NOT_AVAILABLE,
                                 f"venue {self.venue} is not ready: {self.state}")
        self.time = max(self.time, item.time)
        why = self.tradability.why_not(intent.symbol)
        if why is not None:  # the venue cannot trade it now: nothing is sent
            return self._instead(item, "SKIPPED", *why)
        rules = self.rules.get(intent.symbol)
        plan = prepare(item, rules, self.table.slippage_bps)
        if not isinstance(plan, OrderPlan):
            # What it would have sent: the quantity on the venue's lot.
            size = (round_down(intent.absolute, rules.amount_step)
                    if plan[0] == "SKIPPED" and rules is not None else None)
            return self._instead(item, *plan, size=size)
        record = OrderRecord(
            intent_id=item.intent_id, venue=self.venue, symbol=intent.symbol, side=item.side,
            client_order_id=ids.client_order_id(item.intent_id, self.venue,
                                                self.table.client_order_prefix,
                                                self.table.client_order_id_length),
            type=plan.type, amount=plan.amount, requested_quantity=intent.absolute,
            intent=Raw(item.raw), price=plan.price, reference_price=intent.reference_price,
            post_only=plan.post_only, reduce_only=plan.reduce_only, source=item.source,
            wall_time=self.wall.now(), time_in_force=plan.time_in_force, parent=item.parent,
            plan=plan.plan(intent), sizing=item.sizing)
        order = self.order(record, item.time)
        self.orders_started += 1
        first = order.start(self.mono(), self.wall.now())
        assert isinstance(first, act.Queue)
        durable = anyio.Event()
        try:
            self._work_send.send_nowait(None)
            # No await between the ticket and its order: no worker runs in between.
            self.waiting.put((order, durable), intent.priority)
        except anyio.WouldBlock:
            return self._instead(
                item, "REJECTED", reasons.VENUE_BACKLOG_FULL,
                f"{self.in_flight} orders in flight (max_in_flight={self.table.max_in_flight})"
                f" and {self.table.backlog} waiting (backlog={self.table.backlog})")
        entry = Entry(item.seq, "order", item.time, record)
        self.when_durable(entry, lambda seq: durable.set())
        return entry

    def _instead(self, item: Accepted, status: Any, reason: str, detail: str,
                 size: Decimal | None = None) -> Entry:
        intent = item.intent
        outcome = ExecutionOutcome(
            execution_id=self.execution_id(item.intent_id), intent_id=item.intent_id,
            status=status, filled_quantity=Decimal(0), logical_time=item.time, plane="live",
            venue=self.venue, symbol=intent.symbol, side=item.side,
            requested_quantity=intent.quantity, reason=reason, detail=detail,
            source=item.source, intent=Raw(item.raw), wall_time=self.wall.now(),
            parent=item.parent, sizing=item.sizing,
            plan=skipped_plan(intent, item.rule, reason, size) if status == "SKIPPED" else None)
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
                          outcome.average_price, outcome.logical_time, outcome.intent_id,
                          outcome.filled_quantity)
        self.when_durable(entry, lambda seq: self.settle(settled))

    def when_durable(self, entry: Entry, then: Callable[[int], None]) -> None:
        """The one place that asks the ledger to call ``then`` once ``entry`` is durable.

        The record carries it (``Entry.then``, docs/ARCHITECTURE.md, Durability and
        restart). A second follow-up on the same record runs after the first.
        """
        before = entry.then
        if before is None:
            entry.then = Call(then)
        else:
            assert isinstance(before, Call), before
            entry.then = Call(_both(before.fn, then))

    # ------------------------------------------------------------------- workers

    async def _worker(self, work: ObjectReceiveStream[None],
                      send: ObjectSendStream[list[Entry]]) -> None:
        async with work, send:
            async for _ in work:
                order, durable = self.waiting.take()
                await durable.wait()
                self.in_flight += 1
                done: act.Action | None = None
                self.active[order.record.intent_id] = order
                if order.record.intent_id in self.cancelled:
                    self.cancelled.discard(order.record.intent_id)
                    order.cancel_asked = True
                try:
                    with self.cuttable() as scope:
                        done = await self.driver.drive(order, self.driver.feed(order, act.Ok()),
                                                       send)
                finally:
                    self.in_flight -= 1
                    self.active.pop(order.record.intent_id, None)
                if scope.cancelled_caught:
                    self._in_doubt(order.record, f"still being sent or followed after "
                                   f"drain_timeout_ms={self.table.drain_timeout_ms}")
                elif isinstance(done, act.Done):
                    await self.finish(send, order, done)

    async def finish(self, send: ObjectSendStream[list[Entry]], order: Order,
                     done: act.Done) -> None:
        """Write ``order``'s end: its outcome after its held records (one commit), settled
        once durable; or, when it is left in doubt, only say so."""
        self.cancelled.discard(order.record.intent_id)  # a cancel that came too late
        if done.outcome is None:
            self._in_doubt(order.record, done.in_doubt or "")
            return
        entry = Entry(LATE, "outcome", done.outcome.logical_time, done.outcome)
        self._settle_when_durable(entry, done.outcome)
        await send.send([*done.before, entry])


def _both(first: Callable[[int], None], second: Callable[[int], None]) -> Callable[[int], None]:
    """Call ``first`` then ``second`` with the same ledger seq."""
    def both(seq: int) -> None:
        first(seq)
        second(seq)
    return both
