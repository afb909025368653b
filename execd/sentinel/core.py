"""The Risk Sentinel's core: decides whether an intent may reach a venue. Pure.

:class:`SentinelCore` is a synchronous function of (intent, what it has seen, config):
the structural checks here (duplicate, venue, quantity, side, HOLD, prices), then the
risk checks of :class:`~execd.sentinel.risk.Risk`. Every refusal is an outcome with a
reason code and a detail that names the numbers. :func:`control` carries out the
operator's commands on it. The waiting is in :mod:`execd.sentinel.shell`
(docs/ARCHITECTURE.md, "Actors and streams").
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import msgspec
from msgspec import Raw, Struct

from execd.config.schema import Config, RouteConfig
from execd.model import ids, reasons
from execd.model.messages import (
    Accepted,
    ConfigRecord,
    ContextIn,
    Entry,
    ExecutionOutcome,
    IntentIn,
    OrderIntent,
    OverrideRecord,
    Plane,
    ReaderItem,
    RecordKind,
    RouteRecord,
    RouterItem,
    SafetySellRecord,
    ScheduleRecord,
    Settled,
    Side,
    TargetIn,
    TradingState,
    TradingStateRecord,
    encode,
    normal,
)
from execd.model.refusal import Refusal
from execd.policy.apply import govern, judge
from execd.policy.file import Policy
from execd.reader.context import EMPTY as NO_CONTEXT
from execd.reader.context import LakehouseContext, Override
from execd.schedule.core import SchedulerCore, progress
from execd.sentinel import drift, safety, sizing, targets
from execd.sentinel import routes as routing
from execd.sentinel.book import Position
from execd.sentinel.checks import own_price
from execd.sentinel.risk import Risk
from execd.sentinel.schedules import Market, Schedules
from execd.service.control import ControlRequest

_ZERO = Decimal(0)
_seq_of = operator.attrgetter("seq")
# What an action implies about the side of the order, for long positions.
_ACTION_SIDE: dict[str, Side] = {
    "ADD": "buy", "RECLAIM": "buy", "TRIM": "sell", "EXIT": "sell", "EMERGENCY_EXIT": "sell",
}
# Actions (and none) that need nothing of sizing: upper case, not an emergency exit.
_PLAIN: frozenset[str | None] = frozenset((None, "ADD", "RECLAIM", "TRIM", "EXIT", "HOLD"))


class Seen(Protocol):
    """The duplicate-id set the sentinel and the fold ask: :class:`SeenIds` in memory
    (checkpoints off), or the on-disk index's
    :class:`~execd.ledger.index.ids.IdIndex` (checkpoints on; README, "Checkpoints")."""

    def add(self, intent_id: uuid.UUID, /) -> bool:
        """Record ``intent_id``; False if it was already there."""

    def __len__(self) -> int:
        """How many ids are held."""


class SeenIds:
    """Intent ids that already have an outcome: a second intent with one gets no order.

    The in-memory set, used with checkpoints off (with them on, the on-disk index takes
    its place, so memory does not grow with history).

    Exact, and compact because it lives as long as the ledger: each id is its 16
    raw bytes appended to one of 65,536 bytearray buckets chosen by its low bits,
    about 18 bytes an id where a set of ints costs about 95. A lookup scans one
    bucket with ``bytearray.find`` (a few hundred bytes at a million ids).
    """

    _BUCKETS = 1 << 16
    __slots__ = ("_buckets",)

    def __init__(self) -> None:
        self._buckets = [bytearray() for _ in range(self._BUCKETS)]

    def __len__(self) -> int:
        # Counted when asked (at start-up), not on every add: each entry is 16 bytes.
        return sum(map(len, self._buckets)) >> 4

    def add(self, intent_id: uuid.UUID) -> bool:
        """Record ``intent_id``; False if it was already there."""
        key = intent_id.int
        needle = key.to_bytes(16, "big")
        bucket = self._buckets[key & 0xFFFF]
        at = bucket.find(needle)
        while at >= 0:
            if at % 16 == 0:
                return False
            # A match straddling two entries is not an entry: look further.
            at = bucket.find(needle, at + 1)
        bucket += needle
        return True


# Quantities, prices and leverage must lie within 1e-18 .. 1e15 (by adjusted exponent):
# products and sums of such numbers stay exact enough and can never overflow.
_LOW, _HIGH = -18, 15
# The same range as two bounds: a number x is positive with an adjusted exponent within
# _LOW .. _HIGH exactly when _LEAST <= x < _BEYOND, which is two comparisons per number on
# the path every intent takes (a NaN raises InvalidOperation when compared).
_LEAST, _BEYOND = Decimal(1).scaleb(_LOW), Decimal(1).scaleb(_HIGH + 1)


def _out_of_range(name: str, value: Decimal) -> Refusal:
    return Refusal(reasons.INTENT_NUMBER_OUT_OF_RANGE,
                   f"{name}={value} is outside 1e-18 .. 1e15 (or not a positive number)")


def _quantity(quantity: Decimal) -> Refusal:
    """Why ``quantity`` is refused (called only when it is)."""
    if not (quantity.is_finite() and quantity > _ZERO):
        return Refusal(reasons.INTENT_QUANTITY_NOT_POSITIVE, f"quantity={quantity} must be > 0")
    return _out_of_range("quantity", quantity)


def _positive(value: Decimal) -> bool:
    # is_finite first: ordering a NaN raises InvalidOperation.
    return value.is_finite() and value > _ZERO


def _side(intent: OrderIntent) -> Side | Refusal | None:
    if intent.action is None and intent.side is not None:
        return intent.side
    implied = _ACTION_SIDE.get(intent.action or "")
    if intent.side is None:
        if implied is None and intent.action != "HOLD":
            return Refusal(reasons.INTENT_SIDE_MISSING,
                           f"side is missing and action={intent.action} implies none")
        return implied
    if implied is not None and implied != intent.side:
        return Refusal(reasons.INTENT_SIDE_CONFLICT,
                       f"side={intent.side} but action={intent.action} implies {implied}")
    return intent.side

def _prices(intent: OrderIntent) -> Refusal:
    """Why the prices of ``intent`` are refused (called only when they are)."""
    if intent.order_type == "limit" and intent.limit_price is None:
        return Refusal(reasons.INTENT_LIMIT_PRICE_MISSING, "order_type=limit needs limit_price")
    for name in ("limit_price", "reference_price"):
        value = getattr(intent, name)
        if value is not None and not _positive(value):
            return Refusal(reasons.INTENT_PRICE_NOT_POSITIVE, f"{name}={value} must be > 0")
        if value is not None and not _LEAST <= value < _BEYOND:
            return _out_of_range(name, value)
    raise AssertionError("prices refused without a reason")


def refused(item: IntentIn, seq: int, intent_id: uuid.UUID, plane: Plane | None,
            refusal: Refusal) -> Entry:
    """The outcome of a refused intent, at ``seq`` (the intent's place in the ledger)."""
    intent = item.intent
    outcome = ExecutionOutcome(
        execution_id=ids.execution_id(intent_id, intent.venue or intent.route or "",
                                      plane or "none"),
        intent_id=intent_id, status=refusal.status, filled_quantity=_ZERO,
        logical_time=item.time, plane=plane, venue=intent.venue or None, symbol=intent.symbol,
        side=intent.side, requested_quantity=intent.quantity, reason=refusal.reason,
        detail=refusal.detail, source=item.source,
        # The line as received, as a venue's outcome carries it: audit sees research's
        # reason codes and context for refusals too.
        intent=Raw(item.raw), sizing=item.sizing)
    return Entry(seq, "outcome", item.time, outcome)


class Reconfigure(Struct, frozen=True):
    """A reload for the sentinel: the new config and what its record says."""

    config: Config
    settings_sha256: str
    file_sha256: str
    changed: list[str]
    values: dict[str, list[Any]]
    reason: str
    policy: Policy | None = None


class SentinelCore:
    """Every check, in a fixed order; the first failure is the intent's outcome.

    Structural checks first (duplicate, venue, quantity, side, HOLD, prices), then
    the risk checks of :class:`~execd.sentinel.risk.Risk` when one is given.

    The sentinel also numbers what goes downstream. The reader's ingest sequence
    comes in gap-free; records the sentinel adds of its own (a trading-state change,
    a Safety Sell and its exit intents, an override) take the next number, and
    everything after them moves up by one (``shift``). So the ledger's order is the
    order in which the sentinel decided, which is what an audit needs to see.
    """

    def __init__(self, planes: Mapping[str, Plane], seen: Seen,
                 risk: Risk | None = None, schedules: SchedulerCore | None = None,
                 markets: Mapping[str, Market] | None = None,
                 policy: Policy | None = None,
                 routes: Mapping[str, RouteConfig] | None = None) -> None:
        self.planes = planes
        self.routes = dict(routes or {})
        # Routed live orders in flight (route, venue, the item as routed), and the
        # orders handed on whose rest the next step routes (README, "Routes").
        self.routed: dict[uuid.UUID, tuple[str, str, IntentIn]] = {}
        self.handoffs: list[routing.Handoff] = []
        # The execution policy (README, "Execution policies"): None, every intent
        # executes as written.
        self.policy = policy
        self.seen = seen
        self.risk = risk
        self.shift = 0
        self.next_in = 0
        self.time = 0
        self._inserted: list[RouterItem] = []
        # Open parent orders (README, "Execution algorithms"): a restart's are the fold's.
        self.schedules = Schedules(risk, dict(planes), schedules, markets, seen)

    # ----------------------------------------------------------------- numbering

    def _insert(self, kind: RecordKind, time: int, body: Struct) -> Entry:
        """A record of the sentinel's own, numbered before whatever comes next."""
        return Entry(self._number(), kind, time, body)

    def _number(self) -> int:
        """The seq of a record the sentinel inserts before whatever comes next."""
        seq = self.next_in + self.shift
        self.shift += 1
        return seq

    def catch_up(self, context: LakehouseContext | None = None) -> list[RouterItem]:
        """A start's first records: the lakehouse context as of the start (``context``:
        the reader does not record it again while it is unchanged), so that what the
        catch-up decides (a child's re-check against prices, a POV's sizing by the
        market's volume) is judged under the context an uninterrupted run had; then
        ``Schedules.catch_up``."""
        out: list[RouterItem] = []
        if context is not None:
            self._use(context)
            out.append(self._insert("context", self.time, context.record))
        if self.risk is not None and self.risk.targets.pending:
            out += targets.catch_up(self)  # what a stop cut off after a target record
        if self.handoffs:  # orders handed on before the stop, their rest not yet routed
            out += hand_on(self)
        out += self.schedules.catch_up(self.time, self._number)
        return out

    # ------------------------------------------------------------------ intents

    def handle(self, item: IntentIn) -> RouterItem:
        """Accept ``item`` for its venue, or return its refusal outcome."""
        intent = item.intent
        intent_id = intent.intent_id
        if intent_id is None:
            # No id given: the id of the intent's canonical content.
            intent_id = ids.derived_intent_id(encode(intent))
        if not self.seen.add(intent_id):
            return self.refuse(item, intent_id, Refusal(
                reasons.INTENT_DUPLICATE, f"intent_id={intent_id} already has an outcome"))
        if (intent.quantity is None or intent.action not in _PLAIN
                or intent.size_frac is not None or intent.size_of is not None
                or intent.allocation is not None):
            sized = size_item(self, item, intent_id)
            if type(sized) is Entry:
                return sized
            item = sized  # type: ignore[assignment]
            intent = item.intent
        if intent.route is not None or not intent.venue:
            return route_intent(self, item, intent_id)
        return self.judge(item, intent_id)

    def judge(self, item: IntentIn, intent_id: uuid.UUID) -> RouterItem:
        """Every check after the duplicate one, for the venue ``item`` names."""
        intent = item.intent
        plane = self.planes.get(intent.venue)
        if plane is None:
            return self.refuse(item, intent_id, Refusal(
                reasons.INTENT_UNKNOWN_VENUE,
                f"venue={intent.venue!r} is not in the config "
                f"(known: {', '.join(sorted(self.planes))})"))
        quantity = intent.absolute
        try:
            usual = _LEAST <= quantity < _BEYOND
        except InvalidOperation:  # a NaN: refused like any number outside the range
            usual = False
        if not usual:
            return self.refuse(item, intent_id, _quantity(quantity))
        side = intent.side
        if intent.action is not None or side is None:
            # Only then can side and action disagree, or the side be missing.
            resolved = _side(intent)
            if type(resolved) is Refusal:
                return self.refuse(item, intent_id, resolved)
            side = resolved  # type: ignore[assignment]
            if intent.action == "HOLD":
                return self.refuse(item, intent_id, Refusal(
                    reasons.INTENT_HOLD, "action=HOLD: nothing to execute", "SKIPPED"))
        limit, reference = intent.limit_price, intent.reference_price
        try:
            usual = ((limit is None or _LEAST <= limit < _BEYOND)
                     and (reference is None or _LEAST <= reference < _BEYOND)
                     and (limit is not None or intent.order_type == "market"))
        except InvalidOperation:
            usual = False
        if not usual:
            return self.refuse(item, intent_id, _prices(intent))
        constraints = intent.constraints
        if constraints is not None and constraints.max_leverage is not None:
            leverage = constraints.max_leverage
            if not (leverage.is_finite() and leverage > _ZERO
                    and _LOW <= leverage.adjusted() <= _HIGH):
                return self.refuse(item, intent_id,
                                    _out_of_range("constraints.max_leverage", leverage))
        side = side or "buy"
        rule: str | None = None
        policy = self.policy
        if policy is not None:
            applied = judge(policy, intent, plane)
            if type(applied) is Refusal:
                return self.refuse(item, intent_id, applied)
            rule, intent = applied.rule, applied.intent  # type: ignore[union-attr]
        schedule: ScheduleRecord | None = None
        if intent.execution is not None:
            context = self.risk.context if self.risk else NO_CONTEXT
            planned = self.schedules.plan(intent, intent_id, side, plane, item.time, item.raw,
                                          item.source, context.profiles, context.volumes)
            if isinstance(planned, Refusal):
                return self.refuse(item, intent_id, planned)
            schedule = planned
            if item.sizing is not None and planned is not None:
                schedule = msgspec.structs.replace(planned, sizing=item.sizing)
        if rule is not None and policy is not None:
            governed = govern(policy, rule, item.intent, intent, schedule, item.time,
                              self.risk.price_of(intent) if self.risk else own_price(intent))
            if type(governed) is Refusal:
                return self.refuse(item, intent_id, governed)
            schedule = governed  # type: ignore[assignment]
        risk = self.risk
        if risk is not None:
            verdict = risk.admit(intent, intent_id, side, item.raw, item.time,
                                 None if schedule is None else
                                 schedule.quantity - schedule.unplanned)
            if verdict is not None:
                if type(verdict) is Refusal:
                    return self.refuse(item, intent_id, verdict)
                # Accepted on an operator's override: the record goes right before it.
                override: Override = verdict  # type: ignore[assignment]
                self.next_in = item.seq
                self._inserted.append(self._insert("override", item.time, OverrideRecord(
                    intent_id, risk.context.regime or "", override.operator, override.reason)))
        if schedule is not None:
            seq = item.seq + self.shift
            self.schedules.open(schedule, intent, seq)
            return Entry(seq, "schedule", item.time, schedule)
        return Accepted(item.seq + self.shift, item.time, item.source, intent, item.raw,
                        intent_id, side, plane, None, rule, item.sizing)

    def refuse(self, item: IntentIn, intent_id: uuid.UUID, refusal: Refusal) -> Entry:
        """The outcome of a refused intent, in the intent's place in the ledger."""
        return refused(item, item.seq + self.shift, intent_id, self.planes.get(item.intent.venue),
                       refusal)

    def handle_batch(self, batch: list[ReaderItem]) -> list[RouterItem]:
        """Decide every intent of a batch; other items pass through (renumbered)."""
        return [x for part in self.decide(batch) for x in part]

    def decide(self, batch: list[ReaderItem], most: int | None = None
               ) -> Iterator[list[RouterItem]]:
        """Decide every intent of a batch, in parts: a part ends early once the children
        released after a record make it ``most`` items or more (a tick can release one
        child of every open schedule), so memory stays bounded and the actors
        downstream start on it. Between parts the core is as after a whole batch
        ending at that record, so a control command applied there is numbered right."""
        if not batch:
            return
        # Read before the batch is renumbered in place.
        last = batch[-1]
        last_in, last_time = last.seq, last.time
        handle, other = self.handle, self._other
        schedules = self.schedules
        out: list[RouterItem] = []
        append = out.append
        breaches = schedules.core.breaches
        for item in batch:
            seq, time = item.seq, item.time  # _other renumbers an entry in place
            if breaches:
                # A live child's settlement found one since: recorded (and a halt
                # taken) before anything after it is decided.
                self.next_in = seq
                schedules.breaches(self.time, self._number, out)
            append(handle(item) if type(item) is IntentIn else other(item))  # type: ignore[arg-type]
            while time >= schedules.due_at:
                # Children due by now follow the record that brought the clock here.
                self.next_in = seq + 1
                schedules.release(time, self._number, out, most)
                if most is not None and len(out) >= most and (
                        item is not last or time >= schedules.due_at):
                    self._merge_inserted(out)
                    self.next_in, self.time = seq + 1, time
                    yield out
                    out = []
                    append = out.append
        self._merge_inserted(out)
        self.next_in = last_in + 1
        self.time = last_time
        if out:
            yield out

    def _merge_inserted(self, out: list[RouterItem]) -> None:
        inserted = self._inserted
        if inserted:
            # Rare (overrides): each inserted record's seq sits right before its intent's.
            out.extend(inserted)
            inserted.clear()
            out.sort(key=_seq_of)

    def _other(self, item: Entry | ContextIn | TargetIn) -> RouterItem:
        if type(item) is Entry:
            if self.shift:
                item.seq += self.shift
            return item
        if type(item) is TargetIn:
            return targets.target(self, item)
        return self._context(item)  # type: ignore[arg-type]

    def _context(self, item: ContextIn) -> Entry:
        """A new lakehouse context: the intents after it are judged under it."""
        self._use(item.context)
        return Entry(item.seq + self.shift, "context", item.time, item.record)

    def _use(self, context: LakehouseContext) -> None:
        if self.risk is not None:
            self.risk.set_context(context)
        self.schedules.set_volumes(context.volumes)

    # ------------------------------------------------------------------ control

    def set_state(self, state: TradingState, reason: str, actor: str) -> list[RouterItem]:
        """The operator changed the trading state: apply it now, and record it."""
        risk = self.require_risk()
        previous = risk.set_state(state, f"{actor}: {reason}")
        out: list[RouterItem] = [self._insert("trading_state", self.time,
                                              TradingStateRecord(state, previous, reason, actor))]
        self.schedules.end_for(state, self.time, self._number, out, f"{state} by {actor}: {reason}")
        return out

    def cancel(self, parent: uuid.UUID, reason: str, actor: str) -> list[RouterItem]:
        """End one open schedule (``execd ctl cancel --intent``). ValueError when
        ``parent`` has none."""
        out: list[RouterItem] = []
        self.schedules.cancel(parent, f"cancelled by {actor}: {reason}", self.time,
                              self._number, out)
        return out

    def reconfigure(self, change: Reconfigure, actor: str) -> list[RouterItem]:
        """A reload: new limits and policies from the next intent on, and its record."""
        risk = self.require_risk()
        risk.reconfigure(change.config)
        self.policy = change.policy
        self.routes = dict(change.config.routes)
        return [self._insert("config", self.time, ConfigRecord(
            change.settings_sha256, change.file_sha256, change.changed, actor,
            change.reason, change.values))]

    def settle(self, settled: Settled) -> bool:
        """A live order's outcome is durable: release what was held pending for it. True
        when it was a schedule's child: :meth:`step` has its parent to move on."""
        return settle(self, settled)

    def step(self, now: int, most: int | None = None) -> list[RouterItem]:
        """What schedules have to record outside the input (``Schedules.step``) by ``now``
        (the wall clock's; under the logical clock, the sentinel's own time)."""
        return step(self, now, most)

    def require_risk(self) -> Risk:
        if self.risk is None:
            raise RuntimeError("this sentinel runs without risk state")
        return self.risk


def step(core: SentinelCore, now: int, most: int | None) -> list[RouterItem]:
    """``SentinelCore.step``: handoffs, holdings compared, schedules moved on, then the
    target legs a superseded live child's settling let go."""
    core.time = max(core.time, now)
    out = hand_on(core) if core.handoffs else []
    if core.risk is not None and core.risk.arrived:
        out += compare_holdings(core)
    out += core.schedules.step(core.time, core._number, most)
    if core.risk is not None and core.risk.targets.deferred:
        out += targets.release(core)
    return out


def settle(core: SentinelCore, settled: Settled) -> bool:
    """``SentinelCore.settle``: the pending released, a routed order the venue could
    not take handed on, a child's parent moved on."""
    if core.risk is not None:
        core.risk.observe(settled.venue, settled.symbol, settled.side, settled.status,
                          settled.reason, settled.filled, settled.price, settled.time,
                          settled.reserved)
    if settled.intent_id is None or settled.executed is None:
        return False
    routed = core.routed.pop(settled.intent_id, None)
    if routed is not None and settled.reason in routing.HANDED_ON and (
            settled.executed < settled.reserved):
        core.handoffs.append(routing.Handoff(settled.intent_id, routed[0], routed[1],
                                            settled.reserved - settled.executed, routed[2]))
        return True
    return core.schedules.settle_live(settled.intent_id, settled.executed, settled.price)


def compare_holdings(core: SentinelCore) -> list[RouterItem]:
    """The ``drift`` records of the venues' holdings that arrived (README, "What the
    venue holds"), and REDUCING where a venue's config says drift reduces."""
    risk = core.require_risk()
    out: list[RouterItem] = []
    while risk.arrived:
        held = risk.arrived.pop(0)
        name = held.record.venue
        table = risk.config.venues.get(name)
        book = risk.book.venues.get(name)
        if table is None or book is None:
            continue
        market = core.schedules.markets.get(name)
        rules = market.rules if market is not None else {}
        lots = {symbol: rule.amount_step for symbol, rule in rules.items()
                if symbol in book.positions}
        for record in drift.compare(risk.drift, name, held.record, held.seq, book,
                                    table.drift, lots):
            out.append(core._insert("drift", core.time, record))
            if record.state == "drift" and record.action == "reduce" and (
                    risk.state == "ACTIVE"):
                out += core.set_state("REDUCING", f"{record.asset} at {name}: the venue holds "
                                      f"{record.venue_quantity}, the ledger "
                                      f"{record.baseline + record.ledger_low}.."
                                      f"{record.baseline + record.ledger_high}", "drift")
    return out


def safety_sell(core: SentinelCore, venue: str, symbol: str | None, reason: str,
                actor: str, basis: str = "ledger", wall: int | None = None,
                max_age: float | None = None) -> list[RouterItem]:
    """Exit intents for every open position of ``venue`` (or one ``symbol``); with
    ``basis = "venue"``, for what the venue's last holdings record says it holds.

    They bypass plans, provenance, trading state and limits (Safety Sell bypasses
    lifecycle checks: README, The Risk Sentinel) but not the ledger: the request is recorded,
    then each exit intent gets its outcome like any other.
    """
    risk = core.require_risk()
    plane = core.planes.get(venue)
    if plane is None:
        raise ValueError(f"venue={venue!r} is not in the config "
                         f"(known: {', '.join(sorted(core.planes))})")
    held = risk.drift.held.get(venue) if basis == "venue" else None
    if basis == "venue":
        if held is None:
            raise ValueError(f"venue={venue!r} has no holdings record: only a live ccxt "
                             "venue reads what it holds (at start-up, then every holdings_ms)")
        stale = drift.stale(held, venue, wall, max_age, risk.config.venues[venue].ccxt)
        if stale is not None:
            raise ValueError(stale)
        book = risk.book.venues.get(venue)
        found = drift.venue_exits(held.record, book.positions if book else (), symbol)
        if isinstance(found, str):
            raise ValueError(found)
        exits = safety.exits_of(found, venue, reason, actor, risk.safety_sells)
    else:
        exits = safety.exit_intents(risk.book, venue, symbol, reason, actor,
                                    risk.safety_sells)
    for intent, _ in exits:
        assert intent.intent_id is not None
        if not core.seen.add(intent.intent_id):
            raise ValueError(f"exit intent id {intent.intent_id} already has an outcome")
    risk.safety_sells += 1
    out: list[RouterItem] = [core._insert("safety_sell", core.time, SafetySellRecord(
        venue, reason, actor, len(exits), symbol, "venue" if held else None,
        held.seq if held else None))]
    for intent, side in exits:
        assert intent.intent_id is not None
        risk.commit(intent, side, core.time)
        out.append(Accepted(core.next_in + core.shift, core.time, None, intent,
                            encode(intent), intent.intent_id, side, plane))
        core.shift += 1
    return out


def route_intent(core: SentinelCore, item: IntentIn, intent_id: uuid.UUID, start: int = 0,
                 after: uuid.UUID | None = None, out: list[RouterItem] | None = None
                 ) -> RouterItem:
    """An intent of a route (README, "Routes"): the first venue that takes it. Its
    ``route`` record goes in before it; into ``out`` outside a batch (a handoff)."""
    refusal = routing.unrouted(item, core.routes)
    if refusal is not None:
        return core.refuse(item, intent_id, refusal)
    name = item.intent.route
    assert name is not None

    def insert(record: RouteRecord) -> None:
        entry = core._insert("route", item.time, record)
        if out is None:
            core._inserted.append(entry)
        else:
            out.append(entry)

    core.next_in = item.seq
    got = routing.route(item, intent_id, core.routes[name], name, core.judge, insert,
                       core.schedules.markets, lambda r: core.refuse(item, intent_id, r),
                       start, after)
    if type(got) is Accepted and got.intent.venue in core.schedules.markets:
        core.routed[intent_id] = (name, got.intent.venue, item)
    return got


def _unsizable(intent: OrderIntent) -> Refusal | None:
    """Why ``intent`` is refused whatever its quantity: a side its action contradicts,
    a price out of range (judged again, the same way, once it is sized)."""
    if intent.side is not None and intent.action is not None:
        side = _side(intent)
        if type(side) is Refusal:
            return side
    limit, reference = intent.limit_price, intent.reference_price
    try:
        usual = ((limit is None or _LEAST <= limit < _BEYOND)
                 and (reference is None or _LEAST <= reference < _BEYOND))
    except InvalidOperation:
        usual = False
    return None if usual else _prices(intent)


def numbers_refused(intent: OrderIntent) -> Refusal | None:
    """Why the sentinel refuses ``intent`` for its numbers or its side, before any rule
    or plan (what ``execd policy explain`` asks first), or None."""
    quantity = intent.quantity
    if quantity is not None:
        try:
            usual = _LEAST <= quantity < _BEYOND
        except InvalidOperation:  # a NaN
            usual = False
        if not usual:
            return _quantity(quantity)
    return _unsizable(intent)


def size_item(core: SentinelCore, item: IntentIn, intent_id: uuid.UUID) -> IntentIn | Entry:
    """``item`` with its quantity resolved and its action in upper case (README,
    "Sizing"), or the outcome of why it could not be sized."""
    intent = item.intent
    if intent.route is None and intent.venue not in core.planes:
        return item  # the venue check refuses it, before its quantity is looked at
    position: Position | None = None
    if intent.route is None:
        book = core.risk.book.venues.get(intent.venue) if core.risk else None
        found = book.positions.get(intent.symbol) if book is not None else None
        position = found if found is not None else Position(intent.symbol)
    # What the line gets wrong whatever its size is refused as such, not as a size.
    early = _unsizable(normal(intent))
    if early is not None:
        return core.refuse(item, intent_id, early)
    risk = core.risk
    allocations: Mapping[str, Decimal] | None = {}
    if risk is not None:
        context = risk.context
        allocations = None if context.allocations_unreadable else (
            {**risk.config.allocations, **context.allocations} if context.allocations
            else risk.config.allocations)
    try:
        got = sizing.size(intent, position, allocations,
                          risk.price_of(intent) if risk else own_price(intent))
    except ArithmeticError as exc:  # a number no sizing can hold: the line's refusal
        got = Refusal(reasons.INTENT_NUMBER_OUT_OF_RANGE, f"cannot size it: {exc!r}")
    if type(got) is Refusal:
        return core.refuse(item, intent_id, got)
    sized: sizing.Sized = got  # type: ignore[assignment]
    return IntentIn(item.seq, item.time, item.source, sized.intent, item.raw, sized.sizing)


def hand_on(core: SentinelCore) -> list[RouterItem]:
    """Each order handed on: what it left, routed to the venues after its own."""
    out: list[RouterItem] = []
    while core.handoffs:
        handoff = core.handoffs.pop(0)
        new_id = routing.handoff_id(handoff.intent_id)
        item = handoff.item
        table = core.routes.get(handoff.route)
        rest = msgspec.structs.replace(item.intent, intent_id=new_id, venue="",
                                       quantity=handoff.left)
        # No source line: the line was the first order's, whose outcome moved the file's
        # progress already (a later order of it must not move it back).
        routed = IntentIn(core.next_in, core.time, None, rest, item.raw)
        if not core.seen.add(new_id):
            continue  # handed on already (a restart's fold found it)
        start = table.venues.index(handoff.venue) + 1 if table is not None and (
            handoff.venue in table.venues) else 0
        got = route_intent(core, routed, new_id, start, handoff.intent_id, out)
        core.shift += 1
        out.append(got)
        if core._inserted:  # accepted on an override: its record goes right before it
            out.extend(core._inserted)
            core._inserted.clear()
            out.sort(key=_seq_of)
    return out


_STATES: dict[str, TradingState] = {"halt": "HALTED", "reduce": "REDUCING",
                                    "resume": "ACTIVE"}


def control(core: SentinelCore, request: ControlRequest) -> list[RouterItem]:
    """Carry out one control command on the core; fills in the request's answer."""
    req = request.request
    risk = core.risk
    if risk is None:
        request.error = "this daemon runs without a risk sentinel"
        return []
    if req.command == "status":
        request.result = {
            "state": risk.state, "state_note": risk.state_note, "logical_time": core.time,
            "positions": [msgspec.to_builtins(v) for v in risk.book.open_positions()],
            "schedules": [msgspec.to_builtins(p) for p in progress(core.schedules.core)],
        }
        return []
    if req.command in _STATES:
        state = _STATES[req.command]
        if risk.state == state:
            request.result = {"state": state, "changed": False}
            return []
        out = core.set_state(state, req.reason or "", req.actor or "")
        request.result = {"state": state, "changed": True}
        return out
    if req.command == "safety-sell":
        try:
            out = safety_sell(core, req.venue or "", req.symbol, req.reason or "",
                              req.actor or "", req.basis or "ledger", request.wall,
                              req.max_age)
        except ValueError as exc:
            request.error = str(exc)
            return []
        record = out[0].body if out and type(out[0]) is Entry else None
        request.result = {"venue": req.venue, "orders": [
            {"symbol": item.intent.symbol, "side": item.side,
             "quantity": str(item.intent.quantity), "intent_id": str(item.intent_id)}
            for item in out if type(item) is Accepted]}
        if type(record) is SafetySellRecord and record.holdings is not None:
            request.result["holdings"] = record.holdings
        return out
    if req.command == "reload":
        return core.reconfigure(request.payload, req.actor or "")
    if req.command == "cancel":
        try:
            out = core.cancel(uuid.UUID(req.intent or ""), req.reason or "", req.actor or "")
        except ValueError as exc:
            request.error = str(exc) if "schedule" in str(exc) else (
                f"intent={req.intent!r} is not a UUID")
            return []
        request.result = {"intent": req.intent, "ended": bool(out),
                          "note": "its outcome follows its last child" if not out else None}
        return out
    if req.command == "resume-schedule":
        return _resume(core, request)
    request.error = f"the sentinel does not handle {req.command!r}"
    return []


def _resume(core: SentinelCore, request: ControlRequest) -> list[RouterItem]:
    """``execd ctl resume-schedule``: a paused schedule's children go out again."""
    req = request.request
    out: list[RouterItem] = []
    try:
        parent = uuid.UUID(req.intent or "")
    except ValueError:
        request.error = f"intent={req.intent!r} is not a UUID"
        return []
    try:
        core.schedules.resume(parent, req.reason or "", req.actor or "", core.time,
                              core._number, out)
    except ValueError as exc:
        request.error = str(exc)
        return []
    request.result = {"intent": req.intent, "released": sum(
        1 for item in out if type(item) is Accepted)}
    return out
