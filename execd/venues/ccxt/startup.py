"""A ccxt venue's start-up: connect, then reconcile what an earlier run left open.

Connecting loads the markets (one request) and reads the balances (one request,
which also proves the credentials), again with backoff until it works or the
daemon stops. Reconciling (docs/ARCHITECTURE.md, "Live sends, times and the
drain"): every order an earlier run recorded without an outcome is looked up by
client order id; each is an :meth:`Order.unresolved
<execd.venues.ccxt.order.Order.unresolved>`, which decides, and this shell
carries out its actions. The ones the venue does not have
are asked about again once, after the acceptance window since this start (one
wait for all of them: the earlier run sent nothing later). Orders to follow or to
send again go to the venue's workers; only then is the venue ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ObjectSendStream
from ccxt.base.decimal_to_precision import TICK_SIZE

from execd.model.messages import Entry, OrderRecord, SendAttemptRecord
from execd.venues.ccxt import actions as act
from execd.venues.ccxt.actions import MAX_BACKOFF
from execd.venues.ccxt.backlog import RECONCILED
from execd.venues.ccxt.calls import message_of
from execd.venues.ccxt.order import Order
from execd.venues.ccxt.prepare import MarketRules, rules_from_market
from execd.venues.ccxt.tradability import Tradability, inactive

if TYPE_CHECKING:
    from execd.venues.ccxt.venue import CcxtVenue


class StartUp:
    """Connect ``venue`` and reconcile its ``unresolved`` orders, then mark it ready."""

    def __init__(self, venue: CcxtVenue, unresolved: list[tuple[OrderRecord, int]],
                 last_sends: dict[str, SendAttemptRecord], *, started: int) -> None:
        self.venue = venue
        self.unresolved = unresolved
        # client order id -> the last send record of each unresolved order.
        self.last_sends = last_sends
        # Monotonic: every order an earlier run sent, it sent before this.
        self.started = started
        # The balance the connect read, and whether orders were left to reconcile then:
        # the first holdings record (holdings_poll.py).
        self.balance: Any = None
        self.had_unresolved = bool(unresolved)

    async def run(self, send: ObjectSendStream[list[Entry]],
                  work: ObjectSendStream[None]) -> None:
        """Connect, reconcile, then set the venue ready (unless a stop came first)."""
        venue = self.venue
        async with send, work:
            with venue.cuttable() as scope:
                if not await self._connect() or not await self._reconcile(send, work):
                    return
            if scope.cancelled_caught:
                venue.log.error("venue.start_cut", state=venue.state,
                                drain_timeout_ms=venue.table.drain_timeout_ms,
                                note="unresolved orders are reconciled at the next start")
                return
            self.unresolved = []
            self.last_sends = {}
            venue.state = "ready"
            venue.log.info("venue.ready", markets=len(venue.rules))
            venue.ready.set()

    async def _connect(self) -> bool:
        """Load markets and balances, retrying with backoff until it works or the daemon stops."""
        venue = self.venue
        wait = venue.table.poll_interval_ms / 1000
        while not venue.stopping.is_set():
            try:
                markets = await venue.calls.call("load_markets")
                balance = await venue.calls.call("fetch_balance")
            except Exception as exc:  # noqa: BLE001 - any failure to start is retried, never a crash
                venue.state = f"cannot start: {message_of(exc)}"
                venue.log.error("venue.start_failed", error=message_of(exc), retry_in_s=wait)
                await venue.driver.pause(wait)
                wait = min(wait * 2, MAX_BACKOFF / 1e9)
                continue
            venue.rules = {symbol: self.rules(market) for symbol, market in markets.items()}
            self.balance = balance
            # What the periodic reads compare with (markets_refresh.py): the start's.
            venue.tradability = Tradability(inactive=inactive(venue.rules))
            held = {asset: str(amount) for asset, amount in (balance.get("total") or {}).items()
                    if amount}
            venue.log.info("venue.connected", markets=len(venue.rules), balances=held,
                           unresolved_orders=len(self.unresolved))
            venue.state = "reconciling" if self.unresolved else "ready"
            return True
        return False

    def rules(self, market: dict[str, Any]) -> MarketRules:
        """One market's rules, as ccxt describes it (at start-up and at each refresh)."""
        exchange = self.venue.exchange
        features = exchange.features or {}
        kind = features.get(market.get("type") or "spot") or {}
        if "createOrder" not in kind:  # derivatives are nested one level deeper
            kind = kind.get("linear" if market.get("linear") else "inverse") or {}
        create = kind.get("createOrder") or {}
        tif = create.get("timeInForce") or {}
        post_only = bool(tif.get("PO"))
        return rules_from_market(market, tick_precision=exchange.precisionMode == TICK_SIZE,
                                 post_only=post_only,
                                 times_in_force=frozenset(
                                     name for name in ("IOC", "FOK") if tif.get(name)),
                                 # Spot has no position to reduce; contracts take the flag.
                                 reduce_only=bool(market.get("contract")))

    async def _reconcile(self, send: ObjectSendStream[list[Entry]],
                         work: ObjectSendStream[None]) -> bool:
        """Resolve every unresolved order; False when a stop leaves one in doubt."""
        venue = self.venue
        parked: list[tuple[Order, act.AfterWindow]] = []
        for record, time in self.unresolved:
            venue.state = f"reconciling {record.client_order_id}"
            order = Order.unresolved(
                record, time, venue.table, execution_id=venue.execution_id(record.intent_id),
                trades_readable=venue.trades_readable,
                last=self.last_sends.get(record.client_order_id), started=self.started)
            # A schedule's end may cancel it while it is reconciled (CcxtVenue.cancel).
            venue.active[record.intent_id] = order
            if record.intent_id in venue.cancelled:
                order.cancel_asked = True
            action = await venue.driver.drive(order, self._first(order), send, park=True)
            if isinstance(action, act.AfterWindow):
                parked.append((order, action))
            elif not await self._hand_over(order, action, send, work):
                return False
        for order, window in parked:
            if window.until > venue.mono():
                venue.state = (f"reconciling: {len(parked)} orders not at the venue; asking "
                               f"again after the acceptance window")
            action = await venue.driver.drive(order, window, send)
            if not await self._hand_over(order, action, send, work):
                return False
        return True

    def _first(self, order: Order) -> act.Action:
        if self.venue.stopping.is_set():
            order.stop()
        return order.start(self.venue.mono(), self.venue.wall.now())

    async def _hand_over(self, order: Order, action: act.Action,
                         send: ObjectSendStream[list[Entry]], work: ObjectSendStream[None]
                         ) -> bool:
        """Give a reconciled order to the workers, or write its end; False: left in doubt."""
        venue = self.venue
        venue.active.pop(order.record.intent_id, None)
        if isinstance(action, act.Queue):
            if order.cancel_asked:
                venue.cancelled.add(order.record.intent_id)  # for the worker that takes it
            durable = anyio.Event()
            durable.set()  # recorded by an earlier run
            # Its order first, then its ticket: a send cut short leaves an order without
            # a ticket (never sent, reconciled at the next start), never the reverse.
            venue.waiting.put((order, durable), RECONCILED)
            await work.send(None)
            return True
        assert isinstance(action, act.Done), action
        if action.outcome is None:
            return False
        await self.venue.finish(send, order, action)
        return True
