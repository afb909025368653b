"""The sentinel's open schedules: parents admitted, children released and re-checked. Pure.

:class:`Schedules` joins the :class:`~execd.schedule.core.SchedulerCore` (when each
child is due, the carry, the parent's end) to the sentinel's risk state and numbering.
A parent is admitted once, with the quantity its children may send held pending
(``Risk.admit(hold=...)``); each child, when due, is re-checked with its own quantity
moved off that hold (``Risk.admit_child``) and goes downstream as an intent of its own;
the parent's one outcome follows the child that ends its schedule.

On the paper plane a child's fill is known as it is accepted (a full fill at the
parent's limit or reference price, as :class:`~execd.venues.paper.PaperAdapter`
records it), so the next slice, and the parent's outcome, are decided here at once and
numbered in the ingest order: a replay gives the same ledger, byte for byte, whatever
the queue and batch sizes (README, "Execution algorithms").

Children are released after the input record that moved the sentinel's clock to (or
past) their time, or after the ``schedule`` record itself when its first slice is due
already; never by a clock of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Protocol

from msgspec import Raw

from execd.model import ids, reasons
from execd.model.ids import child_intent_id
from execd.model.messages import (
    Accepted,
    Entry,
    ExecutionOutcome,
    OrderIntent,
    Plane,
    ResumeRecord,
    RouterItem,
    ScheduleRecord,
    Side,
    Source,
    TradingState,
    TradingStateRecord,
    encode,
)
from execd.model.refusal import Refusal
from execd.reader.profiles import Profiles
from execd.reader.volumes import NONE as NO_VOLUMES
from execd.reader.volumes import Volumes
from execd.schedule.children import child_intent, measured, parent_intent, parent_outcome
from execd.schedule.core import Done, OpenState, SchedulerCore
from execd.schedule.intake import lot_of, schedule_of
from execd.schedule.plan import Floor, lots_of
from execd.schedule.slippage import halt_reason
from execd.sentinel.checks import own_price
from execd.sentinel.risk import Risk
from execd.venues.ccxt.prepare import MarketRules, time_in_force_refusal

_ZERO = Decimal(0)
# The number the sentinel gives the next record it inserts into the ingest order.
Number = Callable[[], int]


def hold_open(risk: Risk, core: SchedulerCore) -> None:
    """Hold pending what every open schedule may still send: after a restart's fold,
    which, like a snapshot, holds nothing pending. A child out is an order the ledger
    holds on its own. A schedule that ended before the stop without its parent's
    outcome holds what it left unsent too: recording that outcome releases it."""
    for state in core:
        record = state.record
        left = (state.planned - state.filled - state.out_lots) * record.lot
        if left:
            risk.hold(record.venue, record.symbol, record.side, left)
    for done in core.unrecorded.values():
        record = done.record
        if done.planned - done.filled:
            risk.hold(record.venue, record.symbol, record.side,
                      (done.planned - done.filled) * record.lot)


class Taken(Protocol):
    """The sentinel's duplicate-id set (``sentinel.core.Seen``)."""

    def add(self, intent_id: uuid.UUID, /) -> bool:
        """Record ``intent_id``; False if it was already there."""


class Market(Protocol):
    """A live venue as schedules see it (``venues.ccxt.venue.CcxtVenue``): its market
    rules by symbol, loaded at start-up, and the cancel of a child whose schedule ended."""

    rules: dict[str, MarketRules]

    def cancel(self, intent_id: uuid.UUID, /) -> bool:
        """Cancel the order of ``intent_id`` if a worker has it."""

    def unusable(self, symbol: str, /) -> str | None:
        """Why a route passes the venue over for ``symbol`` now, or None."""


class Schedules:
    """The open schedules of one sentinel, and what each releases.

    On a live venue a child's fill comes later (:meth:`settle_live`, once its outcome
    is durable); what it ends or makes due is recorded at the sentinel's next
    :meth:`step`. ``markets``: the live venues through ccxt, whose market rules plan
    their schedules in their own lots and floors, and which cancel a child on demand.
    """

    def __init__(self, risk: Risk | None, planes: dict[str, Plane],
                 core: SchedulerCore | None = None,
                 markets: Mapping[str, Market] | None = None, seen: Taken | None = None) -> None:
        self.risk = risk
        self.seen = seen  # the sentinel's duplicate ids: a child's id is taken when released
        self.planes = planes
        self.markets = markets or {}
        self.core = core if core is not None else SchedulerCore()
        self.core.keep_time()  # a restart's come from the fold, which keeps no heap
        self._parents: dict[uuid.UUID, OrderIntent] = {}
        # When a waiting slice is next due (core.NEVER: none): a plain attribute, which
        # the sentinel reads after every record, kept up to date by every change here.
        self.due_at = self.core.next_due

    def plan(self, intent: OrderIntent, intent_id: uuid.UUID, side: Side, plane: Plane,
             now: int, raw: bytes, source: Source | None, profiles: Profiles,
             volumes: Volumes = NO_VOLUMES) -> Refusal | ScheduleRecord | None:
        """The schedule ``intent`` asks for (``schedule.intake.schedule_of``): on the
        paper plane in lots of its last digit, on a live venue in the venue's own."""
        floor = None
        if plane == "live" and intent.execution is not None and intent.execution.algorithm in (
                "twap", "vwap", "iceberg", "pov"):
            market = self.markets.get(intent.venue)
            if market is None:
                return Refusal(reasons.EXECUTION_ALGORITHM_UNSUPPORTED,
                               f"venue {intent.venue} has no market rules (a stub adapter): "
                               "a schedule needs its lot size and floors")
            rules = market.rules.get(intent.symbol)
            if rules is None or not rules.active:
                return Refusal(reasons.VENUE_SYMBOL_UNKNOWN,
                               f"symbol={intent.symbol} is not listed on venue {intent.venue}: "
                               "a schedule needs its lot size and floors")
            refused = time_in_force_refusal(intent, rules)
            if refused is not None:  # every child would be refused so: refuse the parent
                return Refusal(refused[1], refused[2])
            floor = Floor(rules.amount_step or lot_of(intent.absolute), rules.min_amount,
                          rules.min_cost, own_price(intent))
        return schedule_of(intent, intent_id, side, plane, now, raw, source, profiles, floor,
                           volumes)

    def set_volumes(self, volumes: Volumes) -> None:
        """The lakehouse's market volume changed: POVs size their children by it."""
        self.core.set_volumes(volumes)
        self.due_at = self.core.next_due

    def open(self, record: ScheduleRecord, intent: OrderIntent, seq: int) -> None:
        """``record``'s parent was admitted (and its hold taken): follow it."""
        self.core.open(record, seq)
        self._parents[record.intent_id] = intent
        self.due_at = self.core.next_due

    def _parent(self, record: ScheduleRecord) -> OrderIntent:
        parent = self._parents.get(record.intent_id)
        if parent is None:
            parent = self._parents[record.intent_id] = parent_intent(record)
        return parent

    def release(self, now: int, number: Number, out: list[RouterItem],
                most: int | None = None) -> None:
        """Append to ``out`` every child due by ``now`` (numbered by ``number``), the
        refusals of those a re-check refuses, and the outcomes of the parents they end;
        or stop once ``out`` holds ``most`` items (what is left stays due)."""
        core = self.core
        if core.breaches:
            self.breaches(now, number, out)
        while core.next_due <= now:
            room = None if most is None else most - len(out)
            if room is not None and room <= 0:
                break
            if core.halting:
                room = 1  # a child's breach may halt, ending the others before theirs
            for release in core.due(now, room):
                self._child(release.state, release.child, release.slice, release.lots, now,
                            number, out)
            if core.unrecorded:  # POVs whose windows ended with no child out
                self.unrecorded(now, number, out)
        self.due_at = core.next_due

    def _child(self, state: OpenState, child: uuid.UUID, first: int, lots: int, now: int,
               number: Number, out: list[RouterItem]) -> None:
        record = state.record
        plane = self.planes[record.venue]
        if self.seen is not None and not self.seen.add(child):
            # An intent of the input took this id first (ids are computable): the child
            # is the next attempt's, so no id ever has two outcomes.
            child = self._renamed(state, child, first)
        intent = child_intent(self._parent(record), child, lots * record.lot)
        if record.slippage is not None:
            intent = measured(intent, record, state.passive, None if plane != "paper" or (
                self.risk is None) else self.risk.context.prices.get(record.symbol))
        raw = encode(intent)
        refusal = None
        if state.ended is not None:
            # Its schedule ended after this child was released with others due at the
            # same time (a slippage breach halted trading): it is not sent.
            refusal = Refusal(state.ended, f"not sent: {state.note}", "SKIPPED")
        elif self.risk is not None:
            refusal = self.risk.admit_child(intent, record.side, raw, now)
        if refusal is not None:
            out.append(Entry(number(), "outcome", now, _refused(intent, record, refusal, plane,
                                                                 raw, now)))
            self._settled(child, 0, None, plane, now, number, out)
            return
        out.append(Accepted(number(), now, None, intent, raw, child, record.side, plane,
                            record.intent_id, record.rule))
        if plane == "paper":
            # A full fill at its own price, as PaperAdapter records it.
            self._settled(child, lots, own_price(intent), plane, now, number, out)
        # A live child's fill comes with its outcome (settle_live).

    def _renamed(self, state: OpenState, child: uuid.UUID, first: int) -> uuid.UUID:
        assert self.seen is not None
        parent = state.record.intent_id
        attempt = 1
        renamed = child_intent_id(parent, first, attempt)
        while not self.seen.add(renamed):
            attempt += 1
            renamed = child_intent_id(parent, first, attempt)
        self.core.rename_out(child, renamed)
        return renamed

    def settle_live(self, child: uuid.UUID, executed: Decimal, price: Decimal | None) -> bool:
        """A live child's outcome is durable: its parent moves on (a part lot filled
        counts as the whole lot, never to be sent again). True when the sentinel has
        something to record at its next step (the parent's outcome), or a slice may be
        due. False for an order that is no child out."""
        state = self.core.out_state(child)
        if state is None:
            return False
        record = state.record
        whole, rest = lots_of(executed, record.lot)
        lots = min(whole + (1 if rest else 0), state.out_lots)
        if self.risk is not None and lots < state.out_lots:
            # The settlement released the child's whole reservation; what it left unfilled
            # carries into the next child, so it is the parent's to hold again.
            self.risk.hold(record.venue, record.symbol, record.side,
                           (state.out_lots - lots) * record.lot)
        self.core.settled(child, lots, price if executed else None, executed)
        self.due_at = self.core.next_due
        return True

    def step(self, now: int, number: Number, most: int | None = None) -> list[RouterItem]:
        """What is due by ``now`` outside the input (a live child's settlement, the wall
        clock): parents' outcomes, then children."""
        out: list[RouterItem] = []
        self.breaches(now, number, out)
        self.unrecorded(now, number, out)
        if self.due_at <= now:
            self.release(now, number, out, most)
        return out

    def _settled(self, child: uuid.UUID, lots: int, price: Decimal | None, plane: Plane,
                 now: int, number: Number, out: list[RouterItem]) -> None:
        done = self.core.settled(child, lots, price)
        if self.core.breaches:
            self.breaches(now, number, out)
        if done is not None:
            out.append(self._finish(done, plane, now, number))

    def end(self, keep: Callable[[OpenState], bool], why: str, now: int, number: Number,
            out: list[RouterItem], note: str | None = None) -> int:
        """End every open schedule ``keep`` does not keep, for reason ``why`` (``note``:
        who asked, and why, for the parents' outcomes); how many."""
        ending = [state.record.intent_id for state in self.core if not keep(state)]
        for parent in ending:
            record = self.core.get(parent)
            assert record is not None
            plane = self.planes[record.record.venue]
            done = self.core.end(parent, why, note)
            if done is not None:
                out.append(self._finish(done, plane, now, number))
            elif record.out is not None and record.record.venue in self.markets:
                # Its outcome follows that child's, which a cancel now brings sooner.
                self.markets[record.record.venue].cancel(record.out)
        self.due_at = self.core.next_due
        return len(ending)

    def catch_up(self, now: int, number: Number) -> list[RouterItem]:
        """A start's first records: the outcomes of parents whose schedules ended before
        the stop without one; the ends a HALTED or REDUCING state asks for; then the
        children due by ``now`` (slices that fell due while the daemon was down go out
        under the catch-up rule)."""
        out: list[RouterItem] = []
        if self.core.unstated is not None:
            out.append(Entry(number(), "trading_state", now, self.core.unstated))
            self.core.unstated = None
        self.breaches(now, number, out)
        self.unrecorded(now, number, out)
        risk = self.risk
        if risk is not None and risk.state != "ACTIVE":
            self.end_for(risk.state, now, number, out, f"{risk.state} by {risk.state_note}")
        if self.due_at <= now:
            self.release(now, number, out)
        return out

    def end_for(self, state: TradingState, now: int, number: Number, out: list[RouterItem],
                note: str) -> None:
        """End the schedules trading state ``state`` stops: every one when HALTED, those
        that do not only shrink their position when REDUCING."""
        if state == "HALTED":
            self.end(lambda s: False, reasons.SCHEDULE_HALTED, now, number, out, note)
        elif state == "REDUCING":
            self.end(self._reduces, reasons.SCHEDULE_REDUCING, now, number, out, note)

    def _reduces(self, state: OpenState) -> bool:
        """Whether an open schedule only shrinks its position (it goes on under REDUCING):
        a sell against a long, a buy against a short."""
        record = state.record
        assert self.risk is not None
        filled = self.risk.book.venue(record.venue).position(record.symbol).filled
        return filled > 0 if record.side == "sell" else filled < 0

    def cancel(self, parent: uuid.UUID, note: str, now: int, number: Number,
               out: list[RouterItem]) -> None:
        """End ``parent``'s schedule (``execd ctl cancel``). ValueError if it has none."""
        if parent not in self.core:
            raise ValueError(f"intent {parent} has no open schedule")
        self.end(lambda s: s.record.intent_id != parent, reasons.SCHEDULE_CANCELLED, now,
                 number, out, note)

    def breaches(self, now: int, number: Number, out: list[RouterItem]) -> None:
        """The ``slippage`` records of breaches found on settlement (README, "Execution
        policies"), in the order found; a ``halt`` response then moves trading to
        HALTED, as ``execd ctl halt`` does, and ends every schedule."""
        found = self.core.breaches
        while found:
            breach = found.pop(next(iter(found)))
            out.append(Entry(number(), "slippage", now, breach))
            risk = self.risk
            if breach.response == "halt" and risk is not None and risk.state != "HALTED":
                actor, reason = f"policy:{breach.rule}", halt_reason(breach)
                previous = risk.set_state("HALTED", f"{actor}: {reason}")
                out.append(Entry(number(), "trading_state", now,
                                 TradingStateRecord("HALTED", previous, reason, actor)))
                self.end_for("HALTED", now, number, out, f"HALTED by {actor}: {reason}")

    def resume(self, parent: uuid.UUID, reason: str, actor: str, now: int, number: Number,
               out: list[RouterItem]) -> None:
        """Resume ``parent``'s paused schedule (``execd ctl resume-schedule``), record it,
        and release what is due. ValueError when it has no paused schedule."""
        self.core.resume(parent)
        out.append(Entry(number(), "resume", now, ResumeRecord(parent, reason, actor)))
        self.release(now, number, out)

    def unrecorded(self, now: int, number: Number, out: list[RouterItem]) -> None:
        """The outcomes of parents whose schedules ended before a stop without one."""
        core = self.core
        for done in list(core.unrecorded.values()):
            out.append(self._finish(done, self.planes[done.record.venue], now, number))

    def _finish(self, done: Done, plane: Plane, now: int, number: Number) -> Entry:
        record = done.record
        self.core.unrecorded.pop(record.intent_id, None)
        self._parents.pop(record.intent_id, None)
        if self.risk is not None:
            self.risk.release(record.venue, record.symbol, record.side,
                              (done.planned - done.filled) * record.lot)
        return Entry(number(), "outcome", now, parent_outcome(done, plane, now))


def _refused(intent: OrderIntent, record: ScheduleRecord, refusal: Refusal, plane: Plane,
             raw: bytes, now: int) -> ExecutionOutcome:
    """The outcome of a child its re-check refused (its lots carry into the next)."""
    assert intent.intent_id is not None
    return ExecutionOutcome(
        execution_id=ids.execution_id(intent.intent_id, intent.venue, plane),
        intent_id=intent.intent_id, status=refusal.status, filled_quantity=_ZERO,
        logical_time=now, plane=plane, venue=intent.venue, symbol=intent.symbol,
        side=record.side, requested_quantity=intent.quantity, reason=refusal.reason,
        detail=refusal.detail, intent=Raw(raw), parent=record.intent_id)

