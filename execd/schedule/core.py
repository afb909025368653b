"""Open schedules and what each asks for next, sans-I/O: ``due(now)``, ``settled(...)``.

:class:`SchedulerCore` holds every open parent order's plan (:mod:`execd.schedule.plan`)
and its progress, and answers three questions, each a pure function of what it was told
before (no clock is read: ``now`` is given, as the sentinel's time):

* :meth:`SchedulerCore.due`: the children to release by ``now``, oldest schedule first.
  Every slice of a schedule that is due by then goes out as **one** child, with the
  lots its earlier children left unfilled (the *carry*) added: so a clock that jumps,
  a tick that comes late, or a daemon that was down while slices fell due (the
  *catch-up rule*, README "Execution algorithms") never bursts several children of one
  parent at the market at once, and never loses a lot. A schedule sends its next child
  only once the one before has settled: a child's fill decides the carry.
* :meth:`SchedulerCore.settled`: a child's fill; when it was the schedule's last
  (every slice released, or the schedule ended), the parent's :class:`Done`.
* :meth:`SchedulerCore.end`: no more children for a parent (halt, cancel, reduce); its
  :class:`Done` at once when no child is out, else when that one settles.

A child's id is a UUIDv5 of the parent's id, the slice and the attempt
(:func:`execd.model.ids.child_intent_id`), so a restart that rebuilds the schedule from
the ledger asks for the same child, and the venue's client order id, derived from it,
finds an order already sent instead of sending it twice.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from msgspec import Struct

from execd.model.ids import child_intent_id
from execd.schedule.plan import Plan


class Release(Struct, frozen=True):
    """A child to send: its id, its parent, the first slice it covers, and its lots."""

    child: uuid.UUID
    parent: uuid.UUID
    slice: int
    lots: int


class Done(Struct, frozen=True):
    """A parent's end: lots planned and filled, the children's notional (price times
    quantity, for the fill-weighted average price), and why it ended early (None: its
    last slice settled)."""

    parent: uuid.UUID
    planned: int
    filled: int
    notional: Decimal
    children: int
    ended: str | None = None


class _Open:
    """One open schedule's progress (mutable, owned by the core)."""

    __slots__ = ("carry", "children", "ended", "filled", "next", "notional", "out", "plan")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.next = 0  # the first slice not released yet
        self.carry = 0  # lots earlier children left unfilled, for the next one
        self.out: tuple[uuid.UUID, int] | None = None  # the child out, and its lots
        self.filled = 0
        self.notional = Decimal(0)
        self.children = 0
        self.ended: str | None = None

    @property
    def planned(self) -> int:
        return sum(s.lots for s in self.plan.slices)


class SchedulerCore:
    """Every open schedule, in the order they were opened (the order of the input)."""

    def __init__(self) -> None:
        self._open: dict[uuid.UUID, _Open] = {}
        self._children: dict[uuid.UUID, uuid.UUID] = {}  # child out -> its parent

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, parent: uuid.UUID) -> bool:
        return parent in self._open

    def open(self, parent: uuid.UUID, plan: Plan) -> None:
        """Follow ``plan`` for ``parent`` from now on. ValueError if it is open already
        or the plan has no slice (a parent below one lot is refused before this)."""
        if parent in self._open:
            raise ValueError(f"schedule {parent} is open already")
        if not plan.slices:
            raise ValueError(f"schedule {parent} has no slice")
        self._open[parent] = _Open(plan)

    def due(self, now: int) -> list[Release]:
        """The children to send by ``now``: for each schedule with no child out, every
        slice due by then, as one child with the carry added (oldest schedule first)."""
        released = []
        for parent, state in self._open.items():
            if state.out is not None or state.ended is not None:
                continue
            slices = state.plan.slices
            first = state.next
            last = first
            while last < len(slices) and slices[last].due <= now:
                last += 1
            if last == first:
                continue
            lots = sum(s.lots for s in slices[first:last]) + state.carry
            child = child_intent_id(parent, first, 0)
            state.next, state.carry, state.out = last, 0, (child, lots)
            state.children += 1
            self._children[child] = parent
            released.append(Release(child, parent, first, lots))
        return released

    def settled(self, child: uuid.UUID, filled: int, price: Decimal | None,
                lot: Decimal) -> Done | None:
        """Child ``child`` ended having filled ``filled`` lots at ``price`` (its average;
        None when nothing filled): the unfilled lots carry into the next child. The
        parent's Done when nothing is left to send. KeyError for a child not out."""
        parent = self._children.pop(child)
        state = self._open[parent]
        assert state.out is not None
        assert state.out[0] == child
        lots = state.out[1]
        if not 0 <= filled <= lots:
            raise ValueError(f"child {child} filled {filled} of {lots} lots")
        state.out = None
        state.filled += filled
        if filled and price is not None:
            state.notional += price * filled * lot
        state.carry += lots - filled
        if state.ended is not None or state.next == len(state.plan.slices):
            return self._finish(parent)
        return None

    def end(self, parent: uuid.UUID, why: str) -> Done | None:
        """No more children for ``parent`` (``why``: the reason its outcome gives); its
        Done now if no child is out, else None (it comes with that child's settlement).
        None as well for a parent not open."""
        state = self._open.get(parent)
        if state is None:
            return None
        state.ended = state.ended or why
        return self._finish(parent) if state.out is None else None

    def _finish(self, parent: uuid.UUID) -> Done:
        state = self._open.pop(parent)
        return Done(parent, state.planned, state.filled, state.notional, state.children,
                    state.ended)
