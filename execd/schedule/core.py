"""Open schedules and what each asks for next, sans-I/O: ``due(now)``, ``settled(...)``.

:class:`SchedulerCore` holds every open parent order's schedule (its ``schedule``
record: the slices :mod:`execd.schedule.plan` made) and its progress, and answers three
questions, each a pure function of what it was told before (no clock is read: ``now``
is given, as the sentinel's time):

* :meth:`SchedulerCore.due`: the children to release by ``now``, the earliest due
  first (of schedules due at the same time, the parent of higher ``priority`` first,
  then in the order they were opened: so where a limit lets only some children
  through, the more urgent parent's are checked first). For a
  time-sliced schedule (``merge``: TWAP, VWAP), every slice that is due by then goes
  out as **one** child, with the lots its earlier children left unfilled (the
  *carry*) added: so a clock that jumps, a tick that comes late, or a daemon that was
  down while slices fell due (the *catch-up rule*, README "Execution algorithms")
  never bursts several children of one parent at the market at once, and never loses
  a lot. An iceberg (no ``merge``) sends its slices one by one. A schedule sends its
  next child only once the one before has settled: a child's fill decides the carry.
  A POV (``record.pov``) has no slices planned ahead: each child is sized when an
  interval of the market's volume ends (:mod:`execd.reader.volumes`, given by
  :meth:`SchedulerCore.set_volumes`): at most its participation of that interval's
  volume, nor more than what is left; the unfilled part of a child stays in what is
  left (no carry is added to a later interval's cap), and what is left at the window's
  end is not sent.
* :meth:`SchedulerCore.settled`: a child's fill; when it was the schedule's last
  (every slice released, or the schedule ended), the parent's :class:`Done`.
* :meth:`SchedulerCore.end`: no more children for a parent (halt, cancel, reduce); its
  :class:`Done` at once when no child is out, else when that one settles.

A child's id is a UUIDv5 of the parent's id, the slice and the attempt
(:func:`execd.model.ids.child_intent_id`), so a restart that rebuilds the schedule from
the ledger asks for the same child, and the venue's client order id, derived from it,
finds an order already sent instead of sending it twice. :meth:`SchedulerCore.replay`
is how the fold rebuilds a schedule's progress from its children's outcomes.

Waiting schedules sit in a heap by the time their next slice is due, so ``due`` costs
nothing per open schedule: 10,000 schedules cost what one does until one is due.
"""

from __future__ import annotations

import heapq
import uuid
from array import array
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import Struct

from execd.model.ids import child_intent_id
from execd.model.messages import ScheduleRecord, SlippageRecord, TradingStateRecord
from execd.reader.volumes import NONE as NO_VOLUMES
from execd.reader.volumes import Volumes
from execd.schedule import slippage
from execd.schedule.plan import pov_share
from execd.schedule.slippage import EXACT

#: ``next_due`` when no schedule waits for a slice.
NEVER = 2**63


class Release(Struct, frozen=True):
    """A child to send: its id, its parent, the first slice it covers, its lots, and
    its schedule's state."""

    child: uuid.UUID
    parent: uuid.UUID
    slice: int
    lots: int
    state: OpenState


class Done(Struct, frozen=True):
    """A parent's end: lots planned and filled, the quantity its children filled (the
    sum of theirs, which a venue need not fill in whole lots), their notional (price
    times quantity, for the fill-weighted average price), and why it ended early (None:
    its last slice settled)."""

    record: ScheduleRecord
    planned: int
    filled: int
    notional: Decimal
    children: int
    ended: str | None = None
    note: str | None = None
    executed: Decimal = Decimal(0)

    @property
    def slices(self) -> int:
        """How many slices the schedule had (a POV's: its children)."""
        if self.record.pov is not None:
            return self.children
        return len(slices_of(self.record.slices))


class Progress(Struct, frozen=True):
    """One open schedule as ``execd ctl status`` shows it. ``next_due``: when its next
    slice is due (None: none left); ``child``: the child out, whose fill it waits for."""

    intent_id: uuid.UUID
    algorithm: str
    venue: str
    symbol: str
    side: str
    planned: str
    filled: str
    slices: int
    released: int
    next_due: int | None
    child: uuid.UUID | None
    ending: str | None
    until: int | None = None  # a POV: the end of its window (it has no slice times)
    # A slippage response in force: "paused" (until resume-schedule), or "passive".
    held: str | None = None


class OpenState(Struct, array_like=True):
    """One open schedule's progress (mutable, owned by the core).

    Once adopted, its slices are two arrays of 8-byte integers (``dues``, ``shares``) and
    ``record`` is the schedule record without them: 10,000 open schedules of 100 slices
    would otherwise hold a million small tuples. :meth:`whole` gives the record back.
    """

    record: ScheduleRecord
    order: int  # its schedule record's seq: breaks ties between equal due times
    next: int = 0  # the first slice not released yet
    carry: int = 0  # lots earlier children left unfilled, for the next one
    out: uuid.UUID | None = None  # the child out
    out_lots: int = 0
    filled: int = 0
    notional: Decimal = Decimal(0)
    children: int = 0
    ended: str | None = None
    turn: int = 0  # counts its entries in the heap: only the last one is live
    note: str | None = None  # who ended it and why, for the parent's outcome
    executed: Decimal = Decimal(0)  # the quantity its children filled
    dues: Any = None  # array('q'): each slice's due time
    shares: Any = None  # array('q') (a list when one is beyond 64 bits): each slice's lots
    since: int = -1  # a POV: when its last child was released (intervals to then are used)
    # Slippage responses in force (README, "Execution policies"): the children left are
    # passive limits; no child is released until an operator resumes the schedule.
    passive: bool = False
    paused: bool = False

    @property
    def planned(self) -> int:
        return sum(self.shares)

    def whole(self) -> ScheduleRecord:
        """The schedule record, slices and all."""
        return msgspec.structs.replace(self.record, slices=_json(self.dues, self.shares))


#: A schedule record's ``slices`` as (due, lots) pairs.
slices_of = msgspec.json.Decoder(list[tuple[int, int]]).decode
_NONE = msgspec.Raw(b"[]")


def _json(dues: Any, shares: Any) -> msgspec.Raw:
    return msgspec.Raw(b"[" + b",".join(b"[%d,%d]" % pair for pair in zip(dues, shares,
                                                                          strict=True)) + b"]")


def compact(values: list[int]) -> Any:
    """``values`` as an array of 8-byte integers, or the list itself when one does not
    fit (a share of more than 2**63 lots: a 24-digit quantity in lots of its last digit)."""
    try:
        return array("q", values)
    except OverflowError:
        return values


class SchedulerCore:
    """Every open schedule, and the heap of those waiting for their next slice.

    ``timed=False``: no heap is kept (the fold's, which only replays what the ledger
    says and never asks what is due); :meth:`keep_time` starts one, for the sentinel
    that takes the fold's schedules over at start-up.
    """

    def __init__(self, timed: bool = True) -> None:
        self.timed = timed
        # Keyed by the UUIDs' integers: a UUID's own hash is a Python call, and these
        # are asked several times per child.
        self._open: dict[int, OpenState] = {}  # parent -> its schedule
        self._children: dict[int, OpenState] = {}  # child out -> its parent's schedule
        # (due, -priority, order, turn, parent): the live entry of each waiting schedule,
        # and stale ones (a schedule that ended, or was released by replay), skipped when
        # met. Of the children due at one time, the higher priority's goes first.
        self._waiting: list[tuple[int, int, int, int, OpenState]] = []
        # Schedules that ended whose parent's outcome is not recorded yet: the fold's
        # (a stop fell between the last child's outcome and the parent's), for the next
        # start to record. The sentinel takes each Done as it comes (``unrecorded.pop``).
        self.unrecorded: dict[uuid.UUID, Done] = {}
        # Open POVs (a subset of _open), and the market volume their children follow.
        self._povs: dict[int, OpenState] = {}
        self.volumes: Volumes = NO_VOLUMES
        # Slippage breaches found on settlement whose ``slippage`` record is not written
        # yet, by parent: the sentinel records each (``breaches.pop``); the fold forgets
        # one when it meets its record, so a restart records the rest.
        self.breaches: dict[uuid.UUID, SlippageRecord] = {}
        # Open schedules whose breach halts trading (children then go one at a time);
        # a halt's trading_state record a stop cut off, for the next start to write.
        self.halting = 0
        self.unstated: TradingStateRecord | None = None
        self._last_order = -1  # the largest order of a schedule opened or adopted

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, parent: uuid.UUID) -> bool:
        return parent.int in self._open

    def __iter__(self) -> Iterator[OpenState]:
        return iter(self._open.values())

    def get(self, parent: uuid.UUID) -> OpenState | None:
        """The open schedule of ``parent``, or None."""
        return self._open.get(parent.int)

    def rename_out(self, child: uuid.UUID, renamed: uuid.UUID) -> None:
        """The child out ``child`` goes under the id ``renamed`` (another attempt's)."""
        state = self._children.pop(child.int)
        state.out = renamed
        self._children[renamed.int] = state

    def out_state(self, child: uuid.UUID) -> OpenState | None:
        """The schedule whose child out ``child`` is, or None."""
        return self._children.get(child.int)

    @property
    def next_due(self) -> int:
        """When the earliest waiting slice is due (:data:`NEVER`: none waits)."""
        waiting = self._waiting
        while waiting:
            due, _, _, turn, state = waiting[0]
            # A finished schedule's turn moved on too (_finish).
            if state.turn == turn and state.out is None and state.ended is None:
                return due
            heapq.heappop(waiting)  # its schedule ended, or the entry is stale
        return NEVER

    def open(self, record: ScheduleRecord, seq: int) -> None:
        """Follow ``record`` (the ledger's record ``seq``) from now on. ValueError if its
        parent is open already or it has no slice (a parent below one lot is refused
        before this). Its order among schedules due at one time is after every schedule
        opened before it: ``seq``, or after the last one adopted when that is larger (a
        restart's sentinel numbers from its own start, the fold by the ledger's seqs)."""
        self.adopt(OpenState(record, max(seq, self._last_order + 1)))

    def adopt(self, state: OpenState) -> None:
        """Take ``state`` as it is (a snapshot's, or a new one): ValueError as ``open``."""
        parent = state.record.intent_id
        if parent.int in self._open:
            raise ValueError(f"schedule {parent} is open already")
        if state.dues is None:
            slices = slices_of(state.record.slices)
            if not slices:
                raise ValueError(f"schedule {parent} has no slice")
            state.dues = array("q", [due for due, _ in slices])
            state.shares = compact([lots for _, lots in slices])
            state.record = msgspec.structs.replace(state.record, slices=_NONE)
        self._open[parent.int] = state
        self.halting += _halts(state)
        self._last_order = max(self._last_order, state.order)
        if state.record.pov is not None:
            self._povs[parent.int] = state
        if state.out is not None:
            self._children[state.out.int] = state
        self._wait(state)

    def set_volumes(self, volumes: Volumes) -> None:
        """The market's volume per interval from now on: each waiting POV wakes for the
        next interval its file lists."""
        self.volumes = volumes
        for state in self._povs.values():
            self._wait(state)

    def keep_time(self) -> None:
        """From now on keep the heap of waiting schedules (see the class docstring)."""
        if not self.timed:
            self.timed = True
            for state in self._open.values():
                self._wait(state)

    def _wait(self, state: OpenState, after: int = -1) -> None:
        state.turn += 1
        if (self.timed and state.out is None and state.ended is None and not state.paused
                and state.next < len(state.dues)):
            due = state.dues[state.next]
            terms = state.record.pov
            if terms is not None:
                # The end of the next interval listed after ``after`` (or its last
                # child), or the window's end.
                bars = self.volumes.of(state.record.symbol)
                wake = None if bars is None else bars.after(max(state.since, after),
                                                            terms.start, terms.end)
                if wake is not None:
                    due = wake
            heapq.heappush(self._waiting, (due, -state.record.priority, state.order,
                                           state.turn, state))

    def due(self, now: int, most: int | None = None) -> list[Release]:
        """The children to send by ``now``: for each waiting schedule whose next slice
        is due, one child (see the module docstring), the earliest due first; at most
        ``most`` of them (the rest stay due, for the next call)."""
        released: list[Release] = []
        while self.next_due <= now and (most is None or len(released) < most):
            state = heapq.heappop(self._waiting)[4]
            if state.record.pov is not None:
                if self._pov_due(state, now, released):
                    # Its parent's Done is to be recorded before any later child, however
                    # many children a call may return (``most``): return it now.
                    break
                continue
            parent = state.record.intent_id
            dues = state.dues
            first = last = state.next
            if state.record.merge:
                while last < len(dues) and dues[last] <= now:
                    last += 1
            else:
                last += 1
            if last == first + 1:
                lots = state.shares[first] + state.carry
            else:
                lots = sum(state.shares[first:last]) + state.carry
            child = child_intent_id(parent, first, 0)
            self._release(state, child, last, lots)
            released.append(Release(child, parent, first, lots, state))
        return released

    def _pov_due(self, state: OpenState, now: int, released: list[Release]) -> bool:
        """A POV woke at ``now``: its window ended (its parent's Done, left in
        ``unrecorded`` for the sentinel to record), or an interval did (its child, if
        the interval's cap allows one of at least the floor)."""
        record = state.record
        terms = record.pov
        assert terms is not None
        if now >= terms.end:
            state.next = 1  # past its end: its last slice, in the record's terms
            self._finish(state)
            return True
        bars = self.volumes.of(record.symbol)
        bar = None if bars is None else bars.latest(state.since, now, terms.start, terms.end)
        lots = 0
        if bar is not None:
            lots = pov_share(state.shares[0] - state.filled, bar[1], terms.participation,
                             record.lot, terms.smallest)
        if not lots:
            self._wait(state, now)  # this interval passes: wake for the next one
            return False
        child = child_intent_id(record.intent_id, state.children, 0)
        first = state.children
        self._release(state, child, 0, lots)
        state.since = now
        released.append(Release(child, record.intent_id, first, lots, state))
        return False

    def _release(self, state: OpenState, child: uuid.UUID, last: int, lots: int) -> None:
        state.next, state.carry, state.out, state.out_lots = last, 0, child, lots
        state.turn += 1  # its heap entry, if still there, is stale now
        state.children += 1
        self._children[child.int] = state

    def replay(self, parent: uuid.UUID, child: uuid.UUID, lots: int, time: int = 0) -> None:
        """Child ``child`` of ``lots`` lots was released at ``time`` (the fold, from its
        record): progress moves as :meth:`due` moved it. The slices it covered follow
        from its lots and the carry, since every slice holds at least one lot (a POV's
        child used the interval that ended last by ``time``). ValueError when its lots
        are not those of any child this schedule could release next."""
        state = self._open.get(parent.int)
        if state is None or state.out is not None:
            raise ValueError(f"child {child} of {parent}: no such schedule waits for a child")
        if state.record.pov is not None:
            if not 0 < lots <= state.shares[0] - state.filled:
                raise ValueError(f"child {child} of {parent} ({lots} lots) is more than the "
                                 f"{state.shares[0] - state.filled} lots its POV has left")
            self._release(state, child, state.next, lots)
            state.since = max(state.since, time)
            return
        shares = state.shares
        first = last = state.next
        need, total = lots - state.carry, 0
        while total < need and last < len(shares):
            total += shares[last]
            last += 1
            if not state.record.merge:
                break
        # The child's id is not derived again to compare (a hash per child, in every
        # fold): the hash-chained ledger's outcome names its parent, and its lots say
        # which slices it covered.
        if total != need:
            raise ValueError(f"child {child} of {parent} ({lots} lots) is not the child of "
                             f"slice {first} with a carry of {state.carry}")
        self._release(state, child, last, lots)

    def settled(self, child: uuid.UUID, filled: int, price: Decimal | None,
                executed: Decimal | None = None) -> Done | None:
        """Child ``child`` ended having filled ``filled`` lots (``executed``, when the
        venue filled a part of a lot: what it did fill; ``filled`` is then that rounded
        up, so a part lot is never sent again) at ``price`` (its average; None when
        nothing filled): the unfilled lots carry into the next child. The parent's Done
        when nothing is left to send. KeyError for a child not out."""
        state = self._children.pop(child.int)
        lots = state.out_lots
        if not 0 <= filled <= lots:
            raise ValueError(f"child {child} filled {filled} of {lots} lots")
        state.out, state.out_lots = None, 0
        state.filled += filled
        quantity = filled * state.record.lot if executed is None else executed
        state.executed += quantity
        if quantity and price is not None:
            # Exact (a 24-digit price times a quantity): the parent's slippage is judged
            # on it, and its average is divided from it once.
            state.notional = EXACT.add(state.notional, EXACT.multiply(price, quantity))
            if state.record.slippage is not None:
                found = _measure(state, child, price)
                if found is not None:
                    self.breaches[state.record.intent_id] = found
        if state.record.pov is None:
            state.carry += lots - filled
        elif state.shares[0] - state.filled < state.record.pov.smallest:
            return self._finish(state)  # what is left (if any) is below the floor
        if state.ended is not None or state.next == len(state.dues):
            return self._finish(state)
        self._wait(state)
        return None

    def resume(self, parent: uuid.UUID) -> None:
        """An operator resumed ``parent``'s paused schedule: its next child is released
        when due (slices that fell due while it was paused go out as one, as after a
        stop). ValueError when it is not open or not paused."""
        state = self._open.get(parent.int)
        if state is None or not state.paused:
            raise ValueError(f"intent {parent} has no paused schedule")
        state.paused = False
        self._wait(state)

    def end(self, parent: uuid.UUID, why: str, note: str | None = None) -> Done | None:
        """No more children for ``parent`` (``why``: the reason its outcome gives, ``note``
        who asked and why); its Done now if no child is out, else None (it comes with
        that child's settlement). None as well for a parent not open."""
        state = self._open.get(parent.int)
        if state is None:
            return None
        if state.ended is None:
            state.ended, state.note = why, note
        return self._finish(state) if state.out is None else None

    def close(self, parent: uuid.UUID) -> None:
        """The parent's outcome is recorded (the fold): forget its schedule."""
        self.unrecorded.pop(parent, None)
        state = self._open.pop(parent.int, None)
        self._povs.pop(parent.int, None)
        if state is not None:
            self.halting -= _halts(state)
            state.turn += 1
            if state.out is not None:
                self._children.pop(state.out.int, None)

    def _finish(self, state: OpenState) -> Done:
        parent = state.record.intent_id
        del self._open[parent.int]
        self.halting -= _halts(state)
        self._povs.pop(parent.int, None)
        state.turn += 1  # any heap entry of it is stale
        done = self.unrecorded[parent] = Done(state.whole(), state.planned, state.filled,
                                              state.notional, state.children, state.ended,
                                              state.note, state.executed)
        return done


def progress(core: SchedulerCore) -> list[Progress]:
    """Every open schedule's progress, in the order they were opened."""
    shown = []
    for state in core:
        record, dues = state.record, state.dues
        if record.pov is not None:
            shown.append(Progress(
                record.intent_id, record.algorithm, record.venue, record.symbol,
                record.side, str(state.planned * record.lot), str(state.executed),
                state.children, state.children, None, state.out, state.ended,
                record.pov.end, _held(state)))
            continue
        shown.append(Progress(
            record.intent_id, record.algorithm, record.venue, record.symbol, record.side,
            str(state.planned * record.lot), str(state.executed),
            len(dues), state.next, dues[state.next] if state.next < len(dues) else None,
            state.out, state.ended, None, _held(state)))
    return shown


def _halts(state: OpenState) -> int:
    """1 when a breach of ``state``'s tolerance halts trading, else 0."""
    terms = state.record.slippage
    return int(terms is not None and terms.response == "halt")


def _held(state: OpenState) -> str | None:
    return "paused" if state.paused else "passive" if state.passive else None


def _measure(state: OpenState, child: uuid.UUID, price: Decimal) -> SlippageRecord | None:
    """A child of a schedule under a slippage tolerance filled at ``price``: on a
    breach, the response that changes what the schedule does next is taken now
    (``halt`` and the record are the sentinel's). The breach, or None."""
    found = slippage.breach(state.record, child, price, state.notional, state.executed)
    if found is None:
        return None
    response = found.response
    if response == "slow":
        terms = state.record.slippage
        assert terms is not None
        pov = state.record.pov
        if pov is not None:  # no slices ahead: a smaller share of each interval
            state.record = msgspec.structs.replace(state.record, pov=msgspec.structs.replace(
                pov, participation=pov.participation / (terms.stretch or 2)))
        else:
            found = msgspec.structs.replace(found, next_due=slippage.stretch(
                state.dues, state.next, terms.stretch or 2))
    elif response == "passive":
        state.passive = True
    elif response == "pause":
        state.paused = True
    return found
