"""Carrying out orders' actions: the thin async shell around each pure lifecycle.

An :class:`~execd.venues.ccxt.order.Order` decides; the :class:`Driver` does what
it says, one action at a time, and feeds back the result (docs/ARCHITECTURE.md,
sans-I/O cores in thin shells): call the venue (:mod:`.calls`), sleep until a time
or until the order stream or a stop wakes it, hand records to the ledger. It reads
the two times each step gets from the venue (``mono`` to decide, ``wall`` to record:
see :mod:`.order`), and logs what the order noted.
One driver serves every order of its venue, each from its own task.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio
from anyio.abc import ObjectSendStream

from execd.model.messages import Entry, OrderRecord
from execd.venues.ccxt import actions as act
from execd.venues.ccxt.order import Order
from execd.venues.ccxt.order_stream import Waker

if TYPE_CHECKING:
    from execd.venues.ccxt.venue import CcxtVenue


class Driver:
    """Carries out the actions of ``venue``'s orders."""

    def __init__(self, venue: CcxtVenue) -> None:
        self.venue = venue

    def feed(self, order: Order, event: act.Event) -> act.Action:
        """Hand ``order`` one result with the times now; log what it noted."""
        venue = self.venue
        if venue.stopping.is_set():
            order.stop()
        # The settings in force: a reload applies from each order's next step on.
        order.table = venue.table
        action = order.handle(event, venue.mono(), venue.wall.now())
        record = order.record
        for note in order.take_notes():
            getattr(venue.log, note.level)(note.event, intent_id=str(record.intent_id),
                                           client_order_id=record.client_order_id,
                                           **note.fields)
        return action

    async def drive(self, order: Order, action: act.Action,
                    send: ObjectSendStream[list[Entry]], *, park: bool = False) -> act.Action:
        """Carry out ``order``'s actions until it is queued or done (with ``park``, also
        until it waits for the acceptance window since start-up); that last action."""
        record, stream = order.record, self.venue.stream
        with contextlib.ExitStack() as following:
            pushed: Waker | None = None
            while not isinstance(action, act.Queue | act.Done) and not (
                    park and isinstance(action, act.AfterWindow)):
                event: act.Event = act.Ok()
                if isinstance(action, act.Wait | act.AfterWindow):
                    await self._wait(action, pushed)
                elif isinstance(action, act.Follow):
                    pushed = following.enter_context(
                        stream.follow(record.client_order_id, action.venue_order_id))
                    stream.known(record.client_order_id, action.order)
                elif isinstance(action, act.Write):
                    await self.write(send, action.entries, durable=action.durable)
                else:
                    event = await self._call(record, action)
                action = self.feed(order, event)
        return action

    async def _call(self, record: OrderRecord, action: act.Action) -> act.Event:
        """The venue call that carries out ``action``, and its result."""
        calls = self.venue.calls
        if isinstance(action, act.Send):
            return await calls.send(record)
        if isinstance(action, act.Lookup):
            return await calls.lookup(record)
        if isinstance(action, act.Cancel):
            return await calls.cancel(record, action.venue_order_id)
        if isinstance(action, act.ReadTrades):
            return await calls.trades(record, action.venue_order_id)
        assert isinstance(action, act.Read), action
        event = await calls.read(record, action.venue_order_id)
        if isinstance(event, act.Got):
            self.venue.stream.known(record.client_order_id, event.value)
        return event

    async def write(self, send: ObjectSendStream[list[Entry]], entries: tuple[Entry, ...], *,
                    durable: bool) -> None:
        """Hand ``entries`` to the ledger; with ``durable``, return once they are on disk."""
        done = anyio.Event()
        if durable:
            self.venue.when_durable(entries[-1], lambda seq: done.set())
        await send.send(list(entries))
        if durable:
            await done.wait()

    async def _wait(self, action: act.Wait | act.AfterWindow, pushed: Waker | None) -> None:
        """Sleep until ``action.until`` (monotonic), or less when it says what wakes it."""
        venue = self.venue
        seconds = max(action.until - venue.mono(), 0) / 1e9
        if isinstance(action, act.Wait) and action.push and pushed is not None:
            await pushed.wait(seconds, venue.stopping if action.stop else None)
        elif isinstance(action, act.Wait) and not action.stop:
            await anyio.sleep(seconds)
        else:
            await self.pause(seconds)

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if the daemon starts stopping meanwhile."""
        with anyio.move_on_after(seconds):
            await self.venue.stopping.wait()
