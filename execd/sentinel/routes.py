"""Routes: an intent that names a route goes to the first of its venues that can take it.

A route (``[routes.NAME]``, README "Routes") lists venues in order of preference, with
the symbol an intent's symbol trades under at each. :func:`route` tries them in order:
a venue is passed over when it is not ready or its backlog is full (a live venue's own
answer, :meth:`Usable.unusable`), or when the intent, given that venue and its symbol,
would be refused there for a reason of that venue (:data:`HOPS`: cooling down, a limit
it would breach, a symbol it does not list). The first venue it passes at gets it:
every check (policy, schedule, risk) runs as for an intent that named that venue, so
the limits are those of the venue that receives the order. Any other refusal is the
intent's own (it would be refused anywhere) and is its outcome at once.

A ``route`` record goes right before the intent's order or outcome: the venues passed
over, each with why, and the one that got it. When every venue was passed over, the
outcome is ``ROUTE_UNAVAILABLE``.

After the send: an order whose venue answered that it could not take it
(``EXECUTION_NOT_AVAILABLE``: unreachable, not ready; ``VENUE_BACKLOG_FULL``) hands
what it left unfilled to the next venues of its route, once, as a new order
(:func:`handoff_id`) with its own ``route`` record naming the order it follows
(``after``). Pure, but for what the live venues answer about themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Final, Protocol

import msgspec

from execd.config.schema import RouteConfig
from execd.model import reasons
from execd.model.messages import (
    Entry,
    ExecutionOutcome,
    IntentIn,
    OrderIntent,
    RouteRecord,
    RouterItem,
    normal,
)
from execd.model.refusal import Refusal

#: The refusals that are the venue's, not the intent's: the route tries the next venue.
HOPS: Final = frozenset((
    reasons.RISK_VENUE_COOLDOWN, reasons.RISK_NOTIONAL_EXCEEDED,
    reasons.RISK_ASSET_EXPOSURE_EXCEEDED, reasons.RISK_LEVERAGE_EXCEEDED,
    reasons.RISK_ORDER_RATE_EXCEEDED, reasons.RISK_REDUCE_ONLY_VIOLATION,
    reasons.VENUE_SYMBOL_UNKNOWN, reasons.EXECUTION_ALGORITHM_UNSUPPORTED,
    reasons.EXECUTION_TIME_IN_FORCE_UNSUPPORTED))
#: What a venue answers, after the send, that hands the rest to the next venue.
HANDED_ON: Final = frozenset((reasons.EXECUTION_NOT_AVAILABLE, reasons.VENUE_BACKLOG_FULL))
_HANDOFF: Final = uuid.UUID("6b3f4a52-7a43-5d2e-9a0e-3c1f0d7e2b11")


class Usable(Protocol):
    """A live venue as a route asks it: whether it can take an order now."""

    def unusable(self, symbol: str, /) -> str | None:
        """Why it cannot take an order of ``symbol`` now (not ready, backlog full, the
        symbol not listed), or None."""


def handoff_id(intent_id: uuid.UUID) -> uuid.UUID:
    """The id of the order that takes over what ``intent_id`` left: the same after a
    restart, so what is handed on is never sent twice."""
    return uuid.uuid5(_HANDOFF, str(intent_id))


#: Decide an intent as if it had named its venue: (the item, its id) -> its item out.
Judge = Callable[[IntentIn, uuid.UUID], RouterItem]
#: Insert a record right before the intent's own (the sentinel's numbering).
Insert = Callable[[RouteRecord], None]


def route(item: IntentIn, intent_id: uuid.UUID, table: RouteConfig, name: str,
          judge: Judge, insert: Insert, usable: Mapping[str, Usable],
          refuse: Callable[[Refusal], RouterItem], start: int = 0,
          after: uuid.UUID | None = None) -> RouterItem:
    """The first of ``table``'s venues from ``start`` on that takes ``item``; the
    ``route`` record goes in before it (``insert``)."""
    intent = item.intent
    hops: list[tuple[str, str]] = []
    for venue in table.venues[start:]:
        live = usable.get(venue)
        symbol = table.symbol_at(venue, intent.symbol)
        why = live.unusable(symbol) if live is not None else None
        if why is not None:
            hops.append((venue, why))
            continue
        candidate = msgspec.structs.replace(intent, venue=venue, symbol=symbol)
        got = judge(IntentIn(item.seq, item.time, item.source, candidate, item.raw,
                             item.sizing), intent_id)
        if type(got) is Entry and type(got.body) is ExecutionOutcome and (
                got.body.reason in HOPS):
            hops.append((venue, f"{got.body.reason}: {got.body.detail}"))
            continue
        insert(RouteRecord(intent_id, name, hops, venue, symbol, after,
                           intent.quantity if after is not None else None))
        # The record took the number the intent's item was given: the item goes after it.
        got.seq += 1
        return got
    insert(RouteRecord(intent_id, name, hops, None, None, after,
                       intent.quantity if after is not None else None))
    return refuse(Refusal(reasons.ROUTE_UNAVAILABLE, f"route {name}: every venue passed over: "
                          + "; ".join(f"{v}: {why}" for v, why in hops)))


def unrouted(item: IntentIn, routes: Mapping[str, RouteConfig]) -> Refusal | None:
    """Why ``item`` (which names a route, or no venue) cannot be routed, or None."""
    intent = item.intent
    if intent.route is None:
        return Refusal(reasons.INTENT_UNKNOWN_VENUE, "the intent names no venue and no route")
    if intent.venue:
        return Refusal(reasons.ROUTE_UNKNOWN, f"the intent names venue={intent.venue!r} and "
                       f"route={intent.route!r}: one or the other")
    if intent.route not in routes:
        known = ", ".join(sorted(routes)) or "none"
        return Refusal(reasons.ROUTE_UNKNOWN,
                       f"route={intent.route!r} is not in the config (known: {known})")
    return None


class Handed(msgspec.Struct, frozen=True):
    """An order handed on whose rest is not routed yet, as the ledger says: its route
    record, what it left, the line as received and the time of its outcome."""

    record: RouteRecord
    left: Decimal
    line: bytes
    time: int


_decode = msgspec.json.Decoder(OrderIntent).decode


def _line(line: bytes) -> OrderIntent:
    return normal(_decode(line))


class Routed:
    """What the ledger says of routes, for a restart (the fold's): the routed live
    orders without an outcome yet (their route records), and the orders handed on
    whose rest has no route record yet. Bounded by the orders in flight."""

    def __init__(self) -> None:
        self.open: dict[uuid.UUID, RouteRecord] = {}
        self.handed: dict[uuid.UUID, Handed] = {}
        # The id each handed order's rest goes under -> the handed order's: it is handed
        # on once that id has an order or outcome (its route record alone may be all a
        # stop left of it).
        self.awaiting: dict[uuid.UUID, uuid.UUID] = {}

    def record(self, record: RouteRecord, live: bool) -> None:
        """A ``route`` record; ``live``: the venue it names is on the live plane."""
        if live and record.venue is not None:
            self.open[record.intent_id] = record

    def taken(self, intent_id: uuid.UUID) -> None:
        """``intent_id`` has an order or outcome: if it is a handed order's rest, that
        order is handed on."""
        handed = self.awaiting.pop(intent_id, None)
        if handed is not None:
            self.handed.pop(handed, None)

    def hand(self, intent_id: uuid.UUID, handed: Handed) -> None:
        """``intent_id`` is handed on, its rest not routed yet."""
        self.handed[intent_id] = handed
        self.awaiting[handoff_id(intent_id)] = intent_id

    def outcome(self, intent_id: uuid.UUID, reason: str | None, requested: Decimal,
                filled: Decimal, line: bytes | None, time: int) -> None:
        """An order's outcome: a routed one its venue could not take is handed on."""
        if self.awaiting:
            self.taken(intent_id)
        record = self.open.pop(intent_id, None)
        if record is not None and reason in HANDED_ON and filled < requested and line:
            self.hand(intent_id, Handed(record, requested - filled, line, time))

    def flying(self, lines: Mapping[uuid.UUID, tuple[bytes, int]]
               ) -> dict[uuid.UUID, tuple[str, str, IntentIn]]:
        """The routed live orders in flight, as the sentinel follows them (route, venue,
        the intent as read), from ``lines``: each unresolved order's line and time."""
        out = {}
        for intent_id, record in self.open.items():
            found = lines.get(intent_id)
            if found is None:
                continue
            try:
                intent = _line(found[0])
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            out[intent_id] = (record.route, record.venue or "",
                              IntentIn(0, found[1], None, intent, found[0]))
        return out

    def handoffs(self) -> list[Handoff]:
        """The orders to hand on at the start, in the order they were handed."""
        out = []
        for intent_id, handed in self.handed.items():
            try:
                intent = _line(handed.line)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # its own outcome was recorded from this line: never
            item = IntentIn(0, handed.time, None, intent, handed.line)
            out.append(Handoff(intent_id, handed.record.route, handed.record.venue or "",
                               handed.left, item))
        return out


class Handoff(msgspec.Struct, frozen=True):
    """What an order handed on leaves to the next venues of its route: its id, its
    route, the venue it was at, the quantity left, and the intent (as read) and line."""

    intent_id: uuid.UUID
    route: str
    venue: str
    left: Decimal
    item: IntentIn
